"""Budgets and rates hold on every path: typed spend amounts, approvals re-decided when answered, other processes.

Each row of the approval table is an attack that worked before: the agent proposes calls that each
need a human, the human approves them one by one (each looks fine on its own), and the approvals
together break a budget or rate that every single proposal respected. Tools the policy does not name
are counted too (R5, in test_unknown_tools.py). Findings: docs/security-review.md (F12, round 2 finding 6).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from security_scenarios import APPROVALS, approvals_session

from tether import Guard, Policy, PolicyError, SQLiteStore
from tether.events import ApprovalAnswered

SPEND_POLICY = """
tether: 1
name: spend
budgets: {max_spend: 100}
tools:
  pay:
    effect: write
    spend: amount
    args:
      amount: {required: true, maximum: 100}
"""


def test_F12_untyped_spend_argument_bypasses_budget() -> None:
    """Finding F12 (round 1, medium): a `spend` argument must be typed as a number.

    `spend` could name an argument with no `type`; a string (or list) amount then passed the numeric
    bounds (JSON Schema ignores them for strings) and was never added to max_spend.
    """
    with pytest.raises(PolicyError, match="must declare type number"):
        Policy.from_yaml(SPEND_POLICY)
    typed = SPEND_POLICY.replace("amount: {required: true,", "amount: {type: number, required: true,")
    s = Guard(Policy.from_yaml(typed), SQLiteStore(":memory:")).start_session("pay")
    assert s.check("pay", {"amount": 1000000}).verdict == "deny"
    assert s.check("pay", {"amount": "1000000"}).verdict == "deny"


@pytest.mark.parametrize(
    ("tool", "args", "asks", "allowed", "rule"),
    [
        ("pay", {"to": "acme-001", "amount": 900}, 3, 2, "budgets.max_spend"),  # 2,700 under a 2,000 budget
        ("transfer", {"to": "acme-001"}, 3, 2, "tools.transfer.budget.max_calls"),
        ("post", {"text": "update"}, 3, 2, "rates[0]"),
    ],
)
def test_approving_asks_never_breaks_a_budget_or_rate(tool: str, args: dict[str, object], asks: int, allowed: int, rule: str) -> None:
    """Round 2 finding 6 (issue 8): approving asks one by one never breaks a budget or rate.

    Approval counted the call without deciding again: three 900 EUR approvals under a 2,000 budget.
    `Session.answer` now re-decides; the denial is logged next to the human's answer.
    """
    guard, s = approvals_session()
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
    """Round 2 finding 6 (issue 8): the write budget is re-checked when an ask is approved."""
    guard = Guard(Policy.from_yaml(APPROVALS.replace("max_writes: 20", "max_writes: 1")))
    s = guard.start_session("notes")
    first, second = s.check("note", {"text": "a"}), s.check("note", {"text": "b"})
    assert s.answer(first.call_id, True, by="ana") and not s.answer(second.call_id, True, by="ana")


def test_approval_in_one_process_is_rechecked_against_spend_in_another(tmp_path: Path) -> None:
    """Round 2 finding 6 (issue 8): an approval given in one process is re-decided against what another process spent."""
    db = tmp_path / "t.db"
    _, agent = approvals_session(db)
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
