"""The shipped policies leave no argument of a write tool open for secrets (security review round 2, F11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Guard, Policy, Session, SQLiteStore, ToolCall
from tether.examples import example_policy_text

ROOT = Path(__file__).parents[2]
SHIPPED = [
    ROOT / "src" / "tether" / "examples" / "email_assistant.yaml",
    *sorted((ROOT / "src" / "tether" / "adapters" / "agentdojo" / "policies").glob("*.yaml")),
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_write_argument_forbids_secrets(path: Path) -> None:
    policy = Policy.from_file(path)
    assert not policy.warnings, policy.warnings
    for tool in policy.tools.values():
        effects = {tool.effect} | ({"write"} if tool.write_when is not None else set())
        if "write" not in effects:
            continue
        defaults = tool.defaults_for("write")
        assert defaults is not None, f"{path.stem}: {tool.name} has no default flow rule"
        for name in [*tool.args, "an_argument_nobody_declared"]:
            spec = tool.args.get(name)
            rules = defaults.effective(spec.flows if spec is not None else ())
            forbidden = set().union(*(r.forbid for r in rules)) if rules else set()
            assert "secret" in forbidden, f"{path.stem}: {tool.name}.{name} is an open channel for secrets"


def session(task: str) -> Session:
    policy = Policy.from_yaml(example_policy_text("email_assistant"), source="email_assistant.yaml")
    return Guard(policy, SQLiteStore(":memory:")).start_session(task)


KEY = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("send_email", {"to": ["bob@example.com"], "subject": KEY, "body": "hi"}),
        ("pay_invoice", {"iban": "DE89370400440532013000", "amount": 10, "reference": KEY}),
    ],
)
def test_email_assistant_subject_and_reference_are_closed(tool: str, args: dict[str, object]) -> None:
    s = session("Email bob@example.com and pay DE89370400440532013000")
    d = s.check(ToolCall("read_file", {"path": "~/.ssh/id_rsa"}))
    s.record_result(d.call_id, KEY)
    d = s.check(ToolCall(tool, args))
    assert d.verdict == "deny" and d.reasons[0].rule == "defaults.write.flow", d.explain()
