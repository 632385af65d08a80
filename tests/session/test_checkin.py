"""Check-ins: after N writes or T minutes since a human last answered or checked in, the next write asks."""

from __future__ import annotations

from pathlib import Path

from tether import Guard, Policy, SQLiteStore, ToolCall

POLICY = """
tether: 1
name: checkins
checkin: {after_writes: 2, after_minutes: 30}
tools:
  note:
    effect: write
    output: trusted
    args: {text: {type: string}}
  look:
    effect: read
    output: trusted
    args: {}
"""


def test_writes_and_minutes_since_a_human_looked_make_the_next_write_ask(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    guard = Guard(Policy.from_yaml(POLICY), SQLiteStore(tmp_path / "t.db"), clock=lambda: now[0])
    s = guard.start_session("note: hi", principal="ana")
    assert [s.check(ToolCall("note", {"text": "hi"})).verdict for _ in range(2)] == ["allow", "allow"]
    due = s.check(ToolCall("note", {"text": "hi"}))
    assert due.verdict == "ask" and due.reasons[0].rule == "checkin.after_writes"
    assert s.check(ToolCall("look", {})).allowed  # reads never wait for a check-in
    assert s.answer(due.call_id, True, by="ana")  # a human's answer is a check-in
    assert s.state.writes_since_checkin == 0
    assert s.check(ToolCall("note", {"text": "hi"})).allowed
    now[0] += 31 * 60
    late = s.check(ToolCall("note", {"text": "hi"}))
    assert [r.rule for r in late.reasons] == ["checkin.after_minutes"]
    s.checkin(by="ana", note="looked at the timeline")
    assert s.check(ToolCall("note", {"text": "hi"})).allowed
    # The state folds the same from the log (another process, or after a crash).
    reopened = Guard.for_session(SQLiteStore(tmp_path / "t.db"), s.id).open_session(s.id)
    assert (reopened.state.last_checkin, reopened.state.writes_since_checkin) == (s.state.last_checkin, s.state.writes_since_checkin)
