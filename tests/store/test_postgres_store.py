"""The PostgreSQL store under real contention and real failures: processes racing on one
session, a guard with budgets shared by processes, and a server restarted mid-run.

Every process here is a separate Python interpreter with its own connection, as separate
machines would have; the server is the throw-away cluster of ``tests/postgres_cluster.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.postgres_cluster import PostgresCluster

from tether import Guard, Policy
from tether.errors import StoreError
from tether.events import CallProposed, DecisionMade
from tether.store import PostgresStore, open_store

FIX = Path(__file__).parents[1] / "fixtures"
TASK = "Pay acme-supplies-001 10 EUR per delivery, and notify the team."

APPENDER = textwrap.dedent(
    """
    import sys
    from tether.errors import StaleSession
    from tether.events import CallProposed, DecisionMade
    from tether.store import open_store
    url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url)
    for i in range(n):
        cid = f"{tag}-{i}"
        batch = [CallProposed(session_id="race", call_id=cid, tool="t", args={"i": i}, call_hash="h"),
                 DecisionMade(session_id="race", call_id=cid, verdict="allow", policy_hash="p")]
        if i % 2:
            store.append("race", batch)  # wherever the head is
        else:
            while True:  # as a session does: read the head, append on it, retry when it moved
                head = store.head("race")
                try:
                    store.append("race", batch, expect_seq=0 if head is None else head.seq)
                    break
                except StaleSession:
                    continue
    store.close()
    """
)

PAYER = textwrap.dedent(
    """
    import sys
    from tether import Guard, ToolCall
    from tether.store import open_store
    url, sid, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = open_store(url)
    session = Guard.for_session(store, sid).open_session(sid)
    allowed = 0
    for i in range(n):
        d = session.check(ToolCall("pay", {"to": "acme-supplies-001", "amount": 10}, f"{tag}-{i}"))
        if d.allowed:
            allowed += 1
            session.record_result(d.call_id, "ok")
    print(allowed)
    """
)

RESTARTED = textwrap.dedent(
    """
    import sys, time
    from tether import Guard, StoreError, ToolCall
    from tether.store import open_store
    url, sid = sys.argv[1], sys.argv[2]
    store = open_store(url)
    guard = Guard.for_session(store, sid)
    session = guard.open_session(sid)

    def resume():
        while True:  # a session that lost its store stays closed until it is resumed from the log
            try:
                return guard.resume_session(sid)
            except StoreError:
                time.sleep(0.2)

    down = False
    after = 0
    deadline = time.monotonic() + 120
    i = 0
    while time.monotonic() < deadline and after < 10:
        i += 1
        d = session.check(ToolCall("pay", {"to": "acme-supplies-001", "amount": 1}, f"c{i}"))
        if not d.allowed:
            print("deny", d.call_id, d.reasons[0].rule, d.reasons[0].message.replace(chr(10), " "), flush=True)
            down = True
            session = resume()
            continue
        print("ok", d.call_id, flush=True)
        after += down
        try:
            session.record_result(d.call_id, "paid")
        except StoreError:
            print("unrecorded", d.call_id, flush=True)
            down = True
            session = resume()
    print("done", flush=True)
    """
)


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)


def test_many_processes_append_to_one_session_without_loss_or_duplicates(postgres_url: str) -> None:
    workers = [_python(APPENDER, postgres_url, f"w{k}", "60") for k in range(4)]
    for w in workers:
        w.communicate(timeout=120)
    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    store = PostgresStore(postgres_url)
    events = store.read("race")
    assert [e.seq for e in events] == list(range(1, 4 * 60 * 2 + 1))
    ids = Counter(e.call_id for e in (item.event() for item in events) if isinstance(e, CallProposed))
    assert len(ids) == 240 and max(ids.values()) == 1
    report = store.verify()
    assert report.ok and report.events == 480
    store.close()


def test_a_spend_budget_holds_across_processes_on_postgres(postgres_url: str) -> None:
    store = open_store(postgres_url)
    sid = Guard(Policy.from_file(FIX / "shared.yaml"), store).start_session(TASK).id
    workers = [_python(PAYER, postgres_url, sid, "15", f"w{k}") for k in range(3)]
    allowed = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    # max_spend 200 at 10 per payment: exactly 20 payments between the three processes.
    assert sum(allowed) == 20
    assert store.verify().ok
    events = [item.event() for item in store.read(sid)]
    ids = Counter(e.call_id for e in events if isinstance(e, CallProposed))
    assert len(ids) == 45 and max(ids.values()) == 1
    assert sum(1 for e in events if isinstance(e, DecisionMade) and e.verdict == "allow") == 20
    assert Guard.for_session(store, sid).resume_session(sid).state.spend == 200
    store.close()


def test_a_server_restart_denies_while_down_and_loses_nothing_acknowledged(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    store = open_store(postgres_url)
    sid = Guard(Policy.from_file(FIX / "shared.yaml"), store).start_session(TASK).id
    worker = _python(RESTARTED, postgres_url, sid)
    assert worker.stdout is not None
    lines: list[str] = []
    try:
        while sum(line.startswith("ok") for line in lines) < 10:
            line = worker.stdout.readline().strip()
            assert line, f"the worker ended before the server was stopped: {lines[-5:]}"
            lines.append(line)
        postgres_cluster.stop("immediate")  # as a crash would: no checkpoint, recovery from the WAL
        try:
            while not lines[-1].startswith(("deny", "unrecorded")):
                line = worker.stdout.readline().strip()
                assert line, "the worker ended while the server was down"
                lines.append(line)
            with pytest.raises(StoreError, match="cannot connect"):
                store.head(sid)
            time.sleep(1.0)
        finally:
            postgres_cluster.start()
        out, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()
    lines += out.split("\n")
    assert worker.returncode == 0 and lines[-2] == "done"
    denied = [line.split(" ", 3) for line in lines if line.startswith("deny")]
    # The store went down under a check (denied) or under a result (not recorded, then the
    # resumed session's first check found the store back or denied again).
    assert denied or any(line.startswith("unrecorded") for line in lines)
    assert all(rule == "store" and "cannot" in message for _, _, rule, message in denied)
    acknowledged = [line.split()[1] for line in lines if line.startswith("ok")]
    assert len(acknowledged) >= 20
    # Everything the worker was told it may run is in the log, allowed; the chain holds.
    report = store.verify()
    assert report.ok
    events = [e.event() for e in store.read(sid)]
    allowed = {e.call_id for e in events if isinstance(e, DecisionMade) and e.verdict == "allow"}
    assert set(acknowledged) <= allowed
    store.close()


def test_an_unreachable_server_is_a_clear_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot connect to event store postgresql://u:\\*\\*\\*@"):
        open_store(f"postgresql://u:secret@/db?host={tmp_path}&port=1", must_exist=True)


def test_must_exist_refuses_a_database_without_tether_tables(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="no event store at"):
        open_store(postgres_url, must_exist=True)
    open_store(postgres_url).close()
    open_store(postgres_url, must_exist=True).close()


def test_an_older_schema_migrates_forward_and_a_newer_one_is_refused(postgres_url: str) -> None:
    import psycopg

    from tether.store import _postgres_schema

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(_postgres_schema.MIGRATIONS[0].encode())
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')")
    store = PostgresStore(postgres_url)
    assert store.archived() == [] and store.append("s", [CallProposed(session_id="s", call_id="c", tool="t", args={}, call_hash="h")])
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(_postgres_schema.VERSION),)
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="newer Tether"):
        PostgresStore(postgres_url)


def test_an_answer_from_another_process_wakes_a_waiting_session_at_once(postgres_url: str) -> None:
    """The wait is pushed (NOTIFY), not polled: with 10 s between looks at the clock, an answer
    given elsewhere still reaches the waiting session within a second."""
    import threading

    store = open_store(postgres_url)
    session = Guard(Policy.from_file(FIX / "shared.yaml"), store).start_session(TASK)
    asked = session.check("pay", {"to": "acme-supplies-001", "amount": 60})
    assert asked.verdict == "ask"
    woke: list[tuple[bool, float]] = []

    def wait() -> None:
        woke.append((session.wait_for_approval(asked.call_id, timeout_s=30, poll_s=10), time.monotonic()))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    other = open_store(postgres_url)
    answered = time.monotonic()
    assert Guard.for_session(other, session.id).open_session(session.id).answer(asked.call_id, True, by="ana")
    waiter.join(20)
    assert woke and woke[0][0] is True and woke[0][1] - answered < 1.0
    other.close()
    store.close()


def test_processes_opening_an_empty_database_at_once_create_the_tables_once(postgres_url: str) -> None:
    script = "import sys\nfrom tether.store import open_store\nopen_store(sys.argv[1]).close()\nprint('ok')"
    openers = [_python(script, postgres_url) for _ in range(6)]
    assert [p.communicate(timeout=120)[0].strip() for p in openers] == ["ok"] * 6
    store = PostgresStore(postgres_url, create=False)
    assert store.sessions() == [] and store.archived() == []
    store.close()
