"""Several real processes serving one session: budgets, rates, call ids and approvals hold.

Each worker is a separate Python process that opens the same SQLite file and the same
session id (under the policy the store keeps) and races the others. The log is then
folded from scratch and checked: a budget is never exceeded, a call id never appears
twice, and an answer given in one process is seen by another.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.events import CallProposed, DecisionMade

FIX = Path(__file__).parents[1] / "fixtures"
TASK = "Pay acme-supplies-001 10 EUR per delivery, and notify the team."

WORKER = textwrap.dedent(
    """
    import sys
    from tether import Guard, SQLiteStore, ToolCall
    db, sid, tool, n, tag, ids = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
    store = SQLiteStore(db, timeout_s=60)
    session = Guard.for_session(store, sid).open_session(sid)
    allowed = 0
    for i in range(n):
        args = {"to": "acme-supplies-001", "amount": 10} if tool == "pay" else {"text": f"{tag} {i}"}
        # With ids=shared every worker proposes the same call ids: each may be logged once only.
        d = session.check(ToolCall(tool, args, f"call-{i}" if ids == "shared" else f"{tag}-call-{i}"))
        if d.allowed:
            allowed += 1
            session.record_result(d.call_id, "ok")
    print(allowed)
    """
)


def _spawn(db: Path, sid: str, tool: str, n: int, tag: str, ids: str = "own") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(db), sid, tool, str(n), tag, ids], stdout=subprocess.PIPE, text=True)


def _start(db: Path) -> str:
    guard = Guard(Policy.from_file(FIX / "shared.yaml"), SQLiteStore(db))
    return guard.start_session(TASK).id


def test_reused_call_ids_are_logged_once_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    workers = [_spawn(db, sid, "notify", 5, f"w{k}", ids="shared") for k in range(3)]
    allowed = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert sum(allowed) == 5  # each id runs once; the other processes' reuses are denied
    events = [item.event() for item in SQLiteStore(db).read(sid)]
    ids = Counter(e.call_id for e in events if isinstance(e, CallProposed))
    assert max(ids.values()) == 1 and len(ids) == 15
    denied = [e for e in events if isinstance(e, DecisionMade) and e.verdict == "deny"]
    assert len(denied) == 10 and all(e.reasons[0].rule == "call_id" for e in denied)


def test_spend_budget_and_call_ids_hold_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    workers = [_spawn(db, sid, "pay", 20, f"w{k}") for k in range(3)]
    allowed = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    # max_spend 200 at 10 per payment: exactly 20 payments between all three processes.
    assert sum(allowed) == 20
    store = SQLiteStore(db)
    assert store.verify().ok
    events = [item.event() for item in store.read(sid)]
    ids = Counter(e.call_id for e in events if isinstance(e, CallProposed))
    assert max(ids.values()) == 1, "a call id was logged twice"
    assert sum(1 for e in events if isinstance(e, DecisionMade) and e.verdict == "allow") == 20
    fresh = Guard.for_session(store, sid).resume_session(sid)
    assert fresh.state.spend == 200


def test_rate_limit_holds_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    workers = [_spawn(db, sid, "notify", 12, f"w{k}") for k in range(2)]
    allowed = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert sum(allowed) == 15  # rates: notify at most 15 per hour, whoever calls


def test_answer_from_another_process_is_seen_after_own_writes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    session = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    asked = session.check("pay", {"to": "acme-supplies-001", "amount": 90})
    assert asked.verdict == "ask"
    # A human answers from another shell, with only the store's path and the call id.
    cli = subprocess.run(
        [sys.executable, "-m", "tether", "approvals", "approve", asked.call_id[:10], "--db", str(db), "--by", "ana"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    # The agent logs something else before it polls: it must still see the answer.
    note = session.check("notify", {"text": "waiting for approval"})
    assert note.allowed
    assert session.approval_status(asked.call_id) == "approved"
    assert session.wait_for_approval(asked.call_id, timeout_s=1)
    session.record_result(asked.call_id, "paid")
    assert session.state.spend == 90


def test_two_session_objects_in_one_process_interleave(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    a = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    b = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    verdicts = []
    for i in range(25):
        s = a if i % 2 else b
        d = s.check("pay", {"to": "acme-supplies-001", "amount": 10})
        verdicts.append(d.verdict)
        if d.allowed:
            s.record_result(d.call_id, "ok")
    assert verdicts.count("allow") == 20 and verdicts[20:] == ["deny"] * 5
    a.refresh()
    b.refresh()
    assert a.state.snapshot() == b.state.snapshot()


def test_a_reused_id_stays_denied_when_the_writer_loses_a_race(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    sid = _start(db)
    a = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    b = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    assert a.check(ToolCall("notify", {"text": "x"}, "id-1")).allowed
    b.refresh()  # b knows id-1 is taken...
    assert a.check(ToolCall("notify", {"text": "y"}, "id-2")).allowed  # ...but is stale again
    again = b.check(ToolCall("notify", {"text": "z"}, "id-1"))
    assert again.verdict == "deny" and again.reasons[0].rule == "call_id"
