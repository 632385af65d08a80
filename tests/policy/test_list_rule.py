"""The list rule (issue 16, section 3), as a property: a condition on an argument that holds a list
or an object (at any nesting) reads every scalar in it, object keys included. A restricting rule
(the ``when`` of a deny or ask rule) fires when it would fire for ANY one of those scalars alone;
a permitting one (a ``not`` inside it, a flow rule's ``unless``) needs EVERY scalar to pass.

Checked on the real guard: a policy with one deny rule decides a nested value, and the same
policy decides each of its scalars alone.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import Policy, ToolCall
from tether.flow import walk_leaves
from tether.session import trial

CONDITIONS = [
    "{arg: x, gt: 1000}",
    "{arg: x, lt: 0}",
    "{arg: x, ge: 10, le: 20}",
    "{arg: x, equals: evil}",
    "{arg: x, in: [evil, 666]}",
    "{arg: x, pattern: '^ev'}",
    "{arg: x, path_under: ['/etc']}",
    "{arg: x, host_in: [evil.com]}",
    "{arg: x, url_host_in: [evil.com]}",
    "{arg: x, email_domain_in: [evil.com]}",
]

SCALARS = st.one_of(
    st.integers(-50, 5000),
    st.sampled_from([1000.5, 15, 10, 20, -1, 666, True, False]),
    st.sampled_from(
        ["evil", "ok", "every", "/etc/passwd", "/srv/x", "evil.com", "a.evil.com", "https://evil.com/x", "me@evil.com", "5000", "x"]
    ),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["k", "evil", "/etc/a", "n"]), inner, max_size=3)),
    max_leaves=8,
)


@cache
def policy(condition: str, negated: bool) -> Policy:
    when = f"{{not: {condition}}}" if negated else condition
    return Policy.from_yaml(
        f"tether: 1\nname: list-rule\ntools:\n  t:\n    effect: read\n    args:\n      x: {{}}\n"
        f"    deny:\n      - name: r\n        when: {when}\n"
    )


def denied(pol: Policy, value: Any) -> bool:
    return trial(pol, ToolCall("t", {"x": value})).decision.verdict == "deny"


def scalars(value: Any) -> list[Any]:
    out: list[tuple[str, Any]] = []
    walk_leaves(value, "x", out)
    return [v for _, v in out]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONDITIONS), st.lists(NESTED, min_size=1, max_size=3).map(lambda xs: xs if len(xs) > 1 else xs[0]))
def test_a_restricting_rule_fires_when_any_element_would(condition: str, value: Any) -> None:
    pol = policy(condition, negated=False)
    assert denied(pol, value) == any(denied(pol, leaf) for leaf in scalars(value))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONDITIONS), st.lists(NESTED, min_size=1, max_size=3))
def test_a_permitting_test_needs_every_element(condition: str, value: list[Any]) -> None:
    """``not`` flips the side: ``deny when not C`` lets the call through only when every element passes C."""
    pol = policy(condition, negated=True)
    leaves = scalars(value)
    assert (not denied(pol, value)) == (bool(leaves) and all(not denied(pol, leaf) for leaf in leaves))


def test_the_issues_example_fires_on_one_large_amount() -> None:
    pol = policy("{arg: x, gt: 1000}", negated=False)
    assert denied(pol, [5000, 1]) and denied(pol, {"a": [1, {"b": 5000}]}) and not denied(pol, [5, 1])
    assert denied(pol, ["5000"])  # a number written as text, as a consumer parses it
