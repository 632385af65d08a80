"""Security round 2, findings 6-7: approvals are re-decided when answered; control denies pending asks.

Each row is an attack that worked before: the agent proposes calls that each need a
human, the human approves them one by one (each looks fine on its own), and the
approvals together break a budget or rate that every single proposal respected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tether import Guard, Policy, Session, SessionError, SQLiteStore
from tether.events import ApprovalAnswered

POLICY = """
tether: 1
name: approvals-round2
budgets: {max_spend: 2000, max_calls: 50, max_writes: 20}
rates:
  - {tools: ["post"], max: 2, window_s: 3600}
tools:
  pay:
    effect: write
    output: trusted
    spend: amount
    budget: {max_calls: 10}
    args:
      to: {type: string}
      amount: {type: number}
    ask: [{when: {arg: amount, gt: 100}, reason: large payment}]
  transfer:
    effect: write
    output: trusted
    budget: {max_calls: 2}
    args: {to: {type: string}}
    ask: [{when: {always: true}, reason: every transfer is approved}]
  post:
    effect: write
    output: trusted
    args: {text: {type: string}}
    ask: [{when: {always: true}, reason: posts are approved}]
  note:
    effect: write
    output: trusted
    args: {text: {type: string}}
    ask: [{when: {always: true}, reason: notes are approved}]
"""


def _session(path: Path | None = None) -> tuple[Guard, Session]:
    store = SQLiteStore(path if path is not None else ":memory:")
    guard = Guard(Policy.from_yaml(POLICY), store)
    return guard, guard.start_session("pay the suppliers acme-001, post updates, take notes", principal="ana")


@pytest.mark.parametrize(
    ("tool", "args", "asks", "allowed", "rule"),
    [
        ("pay", {"to": "acme-001", "amount": 900}, 3, 2, "budgets.max_spend"),  # 2,700 under a 2,000 budget
        ("transfer", {"to": "acme-001"}, 3, 2, "tools.transfer.budget.max_calls"),
        ("post", {"text": "update"}, 3, 2, "rates[0]"),
    ],
)
def test_approving_asks_never_breaks_a_budget_or_rate(tool: str, args: dict[str, object], asks: int, allowed: int, rule: str) -> None:
    guard, s = _session()
    ids = []
    for i in range(asks):
        d = s.check(tool, {**args, **({"text": f"update {i}"} if tool == "post" else {})})
        assert d.verdict == "ask"  # each proposal alone is within budget: the guard asks
        ids.append(d.call_id)
    answers = [s.answer(call_id, True, by="ana") for call_id in ids]
    assert answers.count(True) == allowed
    refused = [e.event() for e in guard.store.read(s.id) if e.event().kind == "approval_answered"][-1]
    assert isinstance(refused, ApprovalAnswered) and refused.approved and refused.verdict == "deny"
    assert any(r.rule == rule for r in refused.reasons)


def test_write_budget_is_rechecked_at_approval() -> None:
    guard = Guard(Policy.from_yaml(POLICY.replace("max_writes: 20", "max_writes: 1")))
    s = guard.start_session("notes")
    first, second = s.check("note", {"text": "a"}), s.check("note", {"text": "b"})
    assert s.answer(first.call_id, True, by="ana") and not s.answer(second.call_id, True, by="ana")


@pytest.mark.parametrize("action", ["pause", "kill"])
def test_pause_and_kill_deny_pending_asks(action: str) -> None:
    guard, s = _session()
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
    db = tmp_path / "t.db"
    _, s = _session(db)
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


def test_approval_in_one_process_is_rechecked_against_spend_in_another(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, agent = _session(db)
    asked = agent.check("pay", {"to": "acme-001", "amount": 1500})
    assert asked.verdict == "ask"
    # Meanwhile another process of the same session spends most of the budget.
    worker = Guard.for_session(SQLiteStore(db), agent.id).open_session(agent.id)
    for _ in range(6):
        d = worker.check("pay", {"to": "acme-001", "amount": 100})
        assert d.allowed
    # The human approves from a third process: the payment would now exceed the budget.
    approve = subprocess.run(
        [sys.executable, "-m", "tether", "approvals", "approve", asked.call_id, "--db", str(db)], capture_output=True, text=True
    )
    assert approve.returncode == 1 and "max_spend" in approve.stdout + approve.stderr
    assert agent.wait_for_approval(asked.call_id, timeout_s=1) is False
