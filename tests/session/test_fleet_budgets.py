"""Budgets per principal (``principal_budgets``): shared by every session of one principal,
whichever process serves it, never overrun (real processes racing on one SQLite file)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.events import BudgetReserved, DecisionMade
from tether.monitor import LedgerState, ledger_id

POLICY = """
tether: 1
name: fleet
principal_budgets:
  max_spend: 95
  max_calls: 40
  tool_calls: {notify: 12}
tools:
  pay:
    effect: write
    output: trusted
    spend: amount
    args:
      to: {type: string}
      amount: {type: number}
  notify:
    effect: write
    output: trusted
    args:
      text: {type: string}
"""

WORKER = textwrap.dedent(
    """
    import sys
    from tether import Guard, SQLiteStore, ToolCall
    db, sid, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = SQLiteStore(db, timeout_s=60)
    session = Guard.for_session(store, sid).open_session(sid)
    allowed = 0
    for i in range(n):
        tool, args = ("pay", {"to": "acme-001", "amount": 10}) if i % 2 == 0 else ("notify", {"text": "paid acme-001"})
        d = session.check(ToolCall(tool, args, f"{tag}-{i}"))
        if d.allowed:
            allowed += 1
            session.record_result(d.call_id, "ok")
    print(allowed)
    """
)


def test_several_processes_and_sessions_of_one_principal_never_overrun(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    policy = Policy.from_yaml(POLICY)
    guard = Guard(policy, SQLiteStore(db))
    task = "Pay acme-001 10 EUR per delivery and notify: paid acme-001."
    ana = [guard.start_session(task, principal="ana").id for _ in range(3)]
    bob = guard.start_session(task, principal="bob").id
    # Two processes on each of ana's sessions (six writers in all), one on bob's.
    jobs = [(sid, f"w{k}-{sid[:6]}") for k in range(2) for sid in ana] + [(bob, "bob")]
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(db), sid, "24", tag], stdout=subprocess.PIPE, text=True) for sid, tag in jobs
    ]
    allowed = [int(w.communicate(timeout=240)[0]) for w in workers]

    store = SQLiteStore(db)
    decisions = {
        sid: [e for e in (i.event() for i in store.read(sid)) if isinstance(e, DecisionMade) and e.verdict == "allow"] for sid in ana
    }
    pays = sum(1 for sid in ana for d in decisions[sid] if d.call_id.split("-")[-1].isdigit() and int(d.call_id.split("-")[-1]) % 2 == 0)
    notes = sum(len(decisions[sid]) for sid in ana) - pays
    assert pays == 9  # 9 x 10 <= 95: the shared spend budget, used to the last unit and never past it
    assert notes == 12  # the shared per-tool budget
    assert sum(allowed[:-1]) == pays + notes
    assert allowed[-1] == 21  # bob has budgets of his own (the same sizes), untouched by ana's sessions

    # The ledger holds exactly one reservation per allowed call.
    ledger = LedgerState("ana")
    for item in store.read(ledger_id("ana")):
        ledger.apply(item.event(), policy)
    reserved = [i.event() for i in store.read(ledger_id("ana")) if isinstance(i.event(), BudgetReserved)]
    assert len(reserved) == pays + notes and ledger.spend == 90.0 and ledger.per_tool["notify"] == 12
    assert store.verify().ok


def test_an_approved_ask_takes_its_share_and_a_denied_one_does_not(tmp_path: Path) -> None:
    policy = Policy.from_yaml(
        POLICY.replace("  notify:\n    effect: write", "  notify:\n    effect: write\n    ask: [{when: {effect: write}, reason: check}]")
    )
    guard = Guard(policy, SQLiteStore(tmp_path / "t.db"))
    a = guard.start_session("notify: hello", principal="ana")
    b = guard.start_session("notify: hello", principal="ana")
    asks = [s.check(ToolCall("notify", {"text": "hello"})) for s in (a, a, b)]
    assert [d.verdict for d in asks] == ["ask"] * 3
    assert a.answer(asks[0].call_id, True, by="ana")
    assert not a.answer(asks[1].call_id, False, by="ana")
    ledger = b.ledger()
    assert ledger is not None and ledger.state.per_tool["notify"] == 1
    assert b.answer(asks[2].call_id, True, by="ana")
    assert ledger.state.calls == 2


def test_a_shared_rate_counts_calls_of_every_session(tmp_path: Path) -> None:
    policy = Policy.from_yaml(POLICY.replace("  tool_calls: {notify: 12}", "  rates: [{tools: [notify], max: 2, window_s: 60}]"))
    now = [1_800_000_000.0]
    guard = Guard(policy, SQLiteStore(tmp_path / "t.db"), clock=lambda: now[0])
    a, b = (guard.start_session("notify: hi", principal="ana") for _ in range(2))
    assert a.check(ToolCall("notify", {"text": "hi"})).allowed
    assert b.check(ToolCall("notify", {"text": "hi"})).allowed
    third = a.check(ToolCall("notify", {"text": "hi"}))
    assert third.verdict == "deny" and third.reasons[0].rule == "principal_budgets.rates[0]"
    now[0] += 61
    assert b.check(ToolCall("notify", {"text": "hi"})).allowed
