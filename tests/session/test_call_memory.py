"""Call records stay bounded over a long session, without losing what still matters."""

from __future__ import annotations

import pytest

from tether import Guard, Policy, SessionError, ToolCall
from tether.approvals import MAX_PENDING_APPROVALS
from tether.monitor import MAX_CALL_RECORDS

POLICY = """
tether: 1
name: calls
tools:
  read: {effect: read, output: untrusted, args: {q: {type: string}}}
  pay:
    effect: write
    output: trusted
    args: {amount: {type: number}}
    ask: [{when: {always: true}, reason: every payment is approved}]
"""


def test_call_records_are_bounded_and_open_calls_survive() -> None:
    session = Guard(Policy.from_yaml(POLICY), snapshot_every=None).start_session("read things, pay once")
    asked = session.check("pay", {"amount": 5})
    assert asked.verdict == "ask"
    late = session.check("read", {"q": "first"})  # allowed; its result comes much later
    for i in range(3 * MAX_CALL_RECORDS):
        session.check("read", {"q": f"q{i}"})  # allowed, results never recorded: records pile up
        assert len(session.state.calls) <= MAX_CALL_RECORDS + 1025
    # The ask is still answerable, and a call allowed long ago can still be recorded if it
    # was not pushed out by newer unrecorded calls; an id pushed out is refused, never reused.
    assert session.answer(asked.call_id, True, by="ana")
    with pytest.raises(SessionError, match="too old"):
        session.record_result(late.call_id, "late answer")
    again = session.check(ToolCall("read", {"q": "x"}, late.call_id))
    assert again.verdict == "deny" and again.reasons[0].rule == "call_id"


def test_pending_asks_are_bounded_and_expire_in_the_log() -> None:
    now = [1_700_000_000.0]
    guard = Guard(
        Policy.from_yaml(POLICY.replace("name: calls", "name: calls\napproval_timeout_s: 60")), snapshot_every=None, clock=lambda: now[0]
    )
    session = guard.start_session("pay many small things")
    verdicts = [session.check("pay", {"amount": i}).verdict for i in range(MAX_PENDING_APPROVALS + 10)]
    assert verdicts[:MAX_PENDING_APPROVALS] == ["ask"] * MAX_PENDING_APPROVALS
    denied = session.check("pay", {"amount": 1})
    assert denied.verdict == "deny" and denied.reasons[0].rule == "approvals.pending"
    assert session.state.approvals.pending_count() == MAX_PENDING_APPROVALS
    now[0] += 61  # every request has expired: the next call logs their timeouts
    assert session.check("pay", {"amount": 2}).verdict == "ask"
    assert session.state.approvals.pending_count() == 1
    timeouts = [e.event() for e in guard.store.read(session.id) if e.event().kind == "approval_answered"]
    assert len(timeouts) == MAX_PENDING_APPROVALS and all(t.by == "timeout" and not t.allowed for t in timeouts)
    for _ in range(3 * MAX_CALL_RECORDS):  # many more calls while asks wait: records stay bounded
        session.check("read", {"q": "x"})
    assert len(session.state.calls) <= MAX_CALL_RECORDS + 1025
