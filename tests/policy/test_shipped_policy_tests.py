"""Every shipped policy comes with table-driven tests (``tether policy test``), and they pass.

The test files live beside the policies, in the package (``tests/`` folders under
``tether/examples`` and ``tether/adapters/agentdojo/policies``), so that users run them with
``tether policy test tether:NAME`` and copy them as a start for their own.
"""

from __future__ import annotations

import pytest

from tether import Policy
from tether.examples import shipped_policies
from tether.session import load_cases, run_cases

SHIPPED = shipped_policies()


def test_the_shipped_policies_are_the_known_six() -> None:
    assert {p.ref for p in SHIPPED} >= {
        "tether:email_assistant",
        "tether:weather",
        "agentdojo:banking",
        "agentdojo:slack",
        "agentdojo:travel",
        "agentdojo:workspace",
    }


@pytest.mark.parametrize("shipped", SHIPPED, ids=[p.ref for p in SHIPPED])
def test_every_shipped_policy_has_tests_and_passes_them(shipped: object) -> None:
    from tether.examples import ShippedPolicy

    assert isinstance(shipped, ShippedPolicy)
    assert shipped.tests, f"{shipped.ref} has no test file"
    policy = Policy.from_yaml(shipped.text, source=shipped.ref)
    cases = [case for name, text in shipped.tests for case in load_cases(name, text)]
    verdicts = {c.expect for c in cases}
    assert len(cases) >= 4 and "allow" in verdicts and verdicts & {"deny", "ask"}, "tests must show both sides"
    run = run_cases(policy, cases)
    assert not run.failed, "\n".join(f"{r.case.where} {r.case.name}: {r.problem}" for r in run.failed)
