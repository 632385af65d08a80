"""Call records stay bounded over a long session, without losing what still matters."""

from __future__ import annotations

import pytest

from tether import Guard, Policy, SessionError, ToolCall
from tether.session._state import MAX_CALL_RECORDS

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
