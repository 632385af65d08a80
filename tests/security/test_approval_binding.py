"""An approval approves exactly the call the human was shown, and only while the session runs.

A reused call id cannot move an approval to other arguments; pause and kill deny every pending ask,
in every process; an approval racing a kill never runs after it. Findings:
docs/security-review.md (F15, round 2 finding 7; "Approvals" held in the round 2 review).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from security_scenarios import USER_IBAN, approvals_session, run

from tether import Guard, Policy, SessionError, SQLiteStore, ToolCall
from tether.examples import example_policy_text

ASK_POLICY = """
tether: 1
name: ask
tools:
  pay:
    effect: write
    args:
      to: {type: string}
      amount: {type: integer}
    ask:
      - when: {always: true}
        reason: confirm every payment
"""


def test_F15_duplicate_call_id_swaps_pending_approval() -> None:
    """Finding F15 (round 1, medium): a duplicate call id cannot swap a pending approval.

    A second proposal with the id of a pending call replaced its record; the human's answer (bound to
    whatever hash the record held *now*) approved the new arguments: approving "call-1" after reviewing
    the alice call approved the mallory call. Matters whenever the integrator reuses an agent-supplied
    id (e.g. a tool_call_id). Refusing duplicate ids is a fix.
    """
    s = Guard(Policy.from_yaml(ASK_POLICY), SQLiteStore(":memory:")).start_session("pay alice 5")
    first = s.check(ToolCall("pay", {"to": "alice", "amount": 5}, id="call-1"))
    assert first.verdict == "ask"  # the human is shown alice/5 under id call-1
    second = s.check(ToolCall("pay", {"to": "mallory", "amount": 999}, id="call-1"))
    if second.verdict == "deny":
        return  # refusing duplicate ids is a fix
    assert s.answer("call-1", True, by="human")
    assert s.state.calls["call-1"].args == {"to": "alice", "amount": 5}, "approval moved to the swapped call"


@pytest.mark.parametrize("action", ["pause", "kill"])
def test_pause_and_kill_deny_pending_asks(action: str) -> None:
    """Round 2 finding 7 (issue 8): pause and kill deny pending asks.

    A pending ask could be approved after a kill or pause, and stayed listed; a resumed session does not
    revive old asks.
    """
    guard, s = approvals_session()
    d = s.check("pay", {"to": "acme-001", "amount": 500})
    assert d.verdict == "ask"
    s.control(action, by="ops")
    assert s.answer(d.call_id, True, by="ana") is False
    assert s.approval_status(d.call_id) == "denied"
    assert guard.store.pending_approvals() == []
    if action == "pause":
        s.control("resume", by="ops")
        assert s.answer(d.call_id, True, by="ana") is False  # a resumed session does not revive old asks


def test_answer_after_kill_from_another_process_is_refused(tmp_path: Path) -> None:
    """Round 2 finding 7 (issue 8): an answer after a kill from another process (or the CLI) is refused."""
    db = tmp_path / "t.db"
    _, s = approvals_session(db)
    d = s.check("pay", {"to": "acme-001", "amount": 500})
    other = Guard.for_session(SQLiteStore(db), s.id).open_session(s.id)
    other.control("kill", by="ops")
    listed = subprocess.run([sys.executable, "-m", "tether", "approvals", "list", "--db", str(db)], capture_output=True, text=True)
    assert d.call_id not in listed.stdout
    approve = subprocess.run(
        [sys.executable, "-m", "tether", "approvals", "approve", d.call_id, "--db", str(db)], capture_output=True, text=True
    )
    assert approve.returncode != 0
    assert s.answer(d.call_id, True, by="ana") is False
    with pytest.raises(SessionError):
        s.control("resume")


def _race_answer_and_kill(db: Path, policy: Policy, answer_first: bool) -> None:
    import threading

    s = Guard(policy, SQLiteStore(db)).start_session(f"pay the invoice to {USER_IBAN}")
    run(s, "list_inbox", {"limit": 5}, "the amount is 999")
    asked = s.check(ToolCall("pay_invoice", {"iban": USER_IBAN, "amount": 999}))
    assert asked.verdict == "ask"
    human = Guard(policy, SQLiteStore(db)).open_session(s.id)
    operator = Guard(policy, SQLiteStore(db)).open_session(s.id)
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda: answers.append(human.answer(asked.call_id, True, by="ana"))),
        threading.Thread(target=lambda: operator.control("kill", by="ops")),
    ]
    for t in threads if answer_first else threads[::-1]:
        t.start()
    for t in threads:
        t.join()
    kinds = [(e.kind, getattr(e, "verdict", None)) for e in (i.event() for i in SQLiteStore(db).read(s.id))]
    kill_at = kinds.index(("session_control", None))
    allowed_at = [i for i, k in enumerate(kinds) if k == ("approval_answered", "allow")]
    assert all(i < kill_at for i in allowed_at), kinds
    assert answers == [bool(allowed_at)]
    assert s.guard.resume_session(s.id).state.status == "killed"


def test_held_answer_and_kill_race_never_lets_an_approved_call_run_after_the_kill(tmp_path: Path) -> None:
    """Held under attack in the round 2 review ("Approvals"): an approval racing a kill from another
    process never runs after the kill (20 interleavings, both orders).
    """
    policy = Policy.from_yaml(example_policy_text("email_assistant"))
    for round_ in range(20):
        _race_answer_and_kill(tmp_path / "t.db", policy, answer_first=bool(round_ % 2))
