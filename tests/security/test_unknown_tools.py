"""A tool the policy does not name gets every check a named tool gets.

Under `default: ask` it is decided by a stand-in that may do anything: it counts as a write, and the
shape limits, policy-wide deny rules, budgets and rates apply before the ask.
Findings: docs/security-review.md (R5).
"""

from __future__ import annotations

from security_scenarios import ask_session

from tether import ToolCall


def test_r5_unknown_tools_respect_rates() -> None:
    """Finding R5 (round 2 review, medium): a tool the policy does not name respects the rates whose globs name it.

    Under `default: ask`, such a tool skipped every check after the session status: policy-wide deny
    rules, the session's call and wall-time budgets, and the rate rules whose globs name it; once a
    human approved it, it ran and was counted in calls_total only. A careful integrator writes
    `default: ask` to be asked about tools nobody listed, and a rate of one `send_*` per hour precisely
    so that approving one by one cannot add up.
    """
    gate, clock = ask_session()
    ran = 0
    for _ in range(3):
        clock.now += 60
        ran += gate.run(ToolCall("send_sms", {"to": "+15550100", "text": "hi"}), lambda: "sent").ran
    assert ran == 1


def test_r5_unknown_tools_respect_session_budgets() -> None:
    """Finding R5 (round 2 review): an unknown tool counts against max_calls, max_writes and the wall-time budget."""
    gate, clock = ask_session()
    ran = sum(gate.run(ToolCall(f"tool_{i}", {}), lambda: "ok").ran for i in range(6))
    assert ran == 3  # an unknown tool may write: it counts against max_writes (3) as well as max_calls (4)
    assert gate.session.state.calls_total == 3
    clock.now += 601
    assert gate.run(ToolCall("note", {"text": "late"}), lambda: "ok").decision.verdict == "deny"


def test_r5_unknown_tools_respect_policy_wide_deny_rules() -> None:
    """Finding R5 (round 2 review): policy-wide deny rules apply to an unknown tool."""
    gate, _ = ask_session()
    assert gate.run(ToolCall("read_config", {}), lambda: "sk-live-123").ran
    out = gate.run(ToolCall("upload", {"data": "sk-live-123"}), lambda: "uploaded")
    assert not out.ran and out.decision.verdict == "deny"


def test_r5_unknown_tools_are_shape_checked() -> None:
    """Finding R5 (round 2 review): the shape limits apply to an unknown tool's arguments."""
    gate, _ = ask_session()
    out = gate.run(ToolCall("upload", {"data": "x" * (2 << 20)}), lambda: "uploaded")
    assert not out.ran and out.decision.verdict == "deny"
