"""SQLite and PostgreSQL event stores side by side, in one run on one machine.

PostgreSQL is a throw-away cluster started by this script (``tests/postgres_cluster.py``:
``initdb`` + ``pg_ctl`` in a temporary directory, unix socket only) with ``fsync`` on, as a
server is deployed; ``--postgres URL`` uses an existing database instead (its tables are
written to). Figures:

* ``append_*``: one writer appending one logged check (``call_proposed`` + ``decision``, with
  ``expect_seq``) at a time to one session: p50/p99 microseconds, per back end and durability.
  SQLite ``normal`` writes the WAL without syncing it; ``full`` syncs every commit. PostgreSQL
  ``normal`` (= ``full``) commits with ``synchronous_commit = on`` (the server flushes its WAL
  before answering); ``off`` does not wait for the flush.
* ``throughput_*``: appends per second with 1 and 4 writer processes, each appending to its own
  session (agents running side by side), for ``--seconds`` each.
* ``resume_*``: one session of ``--events`` events (1e6; 1e5 with ``--quick``) filled fast (the
  events of real checks of a read tool with their results, new ids, arguments and results,
  chained and appended by the SQLite store in batches; see ``build_session``), folded once by a
  guard that then takes a snapshot, and ``--tail`` (4,800) more events of real checks after it;
  copied row for row into PostgreSQL (COPY). Then, on each back end, a new process opens the
  store and runs ``Guard(...).open_session(id)`` (newest snapshot bound to the chain plus the
  events after it: ``resume_ms``, ``resume_cpu_ms``) or ``resume_session(id)`` (the whole chain
  verified first: ``resume_full_verify_ms``); best of 3, timed from opening the store.
  ``--resume-only`` skips the append and throughput figures.

Usage: python benchmarks/store_backends.py [--quick] [--json] [--postgres URL] [--seconds S] [--events N] [--tail N] [--resume-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tether import Guard, Policy
from tether.events import CallProposed, DecisionMade, Event, ResultRecorded
from tether.session import call_hash
from tether.store import EventStore, PostgresStore, SQLiteStore

POLICY = """
tether: 1
name: store-backends
tools:
  search: {effect: read, output: untrusted, args: {query: {type: string}}}
"""
CALL_HASH = "sha256:" + "ab" * 32
POLICY_HASH = "sha256:" + "cd" * 32


def check_events(session_id: str, i: int) -> list[Event]:
    call_id = os.urandom(16).hex()
    return [
        CallProposed(
            session_id=session_id, call_id=call_id, tool="send_email", args={"to": ["a@company.com"], "body": f"m {i}"}, call_hash=CALL_HASH
        ),
        DecisionMade(session_id=session_id, call_id=call_id, verdict="allow", reasons=[], policy_hash=POLICY_HASH),
    ]


def open_target(target: str, durability: str) -> EventStore:
    if target.startswith("postgresql://"):
        return PostgresStore(target, durability=durability)  # type: ignore[arg-type]
    return SQLiteStore(target, durability=durability)  # type: ignore[arg-type]


def append_latency(target: str, durability: str, n: int) -> dict[str, float]:
    store = open_target(target, durability)
    sid = f"latency-{durability}-{os.urandom(4).hex()}"
    seq = 0
    events = [check_events(sid, i) for i in range(n + 200)]
    times: list[float] = []
    for i, batch in enumerate(events):
        t0 = time.perf_counter_ns()
        seq = store.append(sid, batch, expect_seq=seq)[-1].seq
        if i >= 200:
            times.append((time.perf_counter_ns() - t0) / 1000)
    store.close()
    times.sort()
    return {"p50_us": round(times[len(times) // 2], 1), "p99_us": round(times[int(len(times) * 0.99)], 1)}


def writer(target: str, seconds: float) -> None:
    """One writer process: append checks to its own session until the time is up; print the count."""
    store = open_target(target, "normal")
    sid = f"writer-{os.getpid()}-{os.urandom(4).hex()}"
    seq, count = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seq = store.append(sid, check_events(sid, count), expect_seq=seq)[-1].seq
        count += 1
    store.close()
    print(count)


def throughput(target: str, writers: int, seconds: float) -> float:
    procs = [
        subprocess.Popen([sys.executable, __file__, "--writer", target, "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True)
        for _ in range(writers)
    ]
    total = sum(int(p.communicate()[0]) for p in procs)
    return round(total / seconds, 1)


def build_session(path: Path, events: int, tail: int) -> str:
    """A valid session of about ``events`` events, filled fast, whose last snapshot leaves ``tail``
    events to fold (the worst case just before the next automatic snapshot is about 5,000).

    A real guard starts the session and makes one check of a read tool with its result; the
    events of the next ``events - tail`` checks are those three events again with a new call id,
    new arguments (their real call hash) and a new result, chained and appended by the store in
    batches of 30,000 (one transaction each). A guard then resumes the session once, verifying
    and folding every event (``fill_fold_s``), and takes a snapshot; the last ``tail`` events are
    real checks and results through that session."""
    store = SQLiteStore(path, durability="off")
    policy = Policy.from_yaml(POLICY)
    session = Guard(policy, store).start_session("Search the archive.")
    session.record_result(session.check("search", {"query": "q 0"}).call_id, "result 0")
    sid = session.id
    proposed, decided, recorded = (e.event() for e in store.read(sid, 1))
    assert isinstance(proposed, CallProposed) and isinstance(decided, DecisionMade) and isinstance(recorded, ResultRecorded)
    seq = session.state.last_seq
    batch: list[Event] = []
    n = 1
    while seq + len(batch) < events - tail:
        call_id, args = f"fill-{n:08d}", {"query": f"q {n}"}
        batch += [
            proposed.model_copy(update={"call_id": call_id, "args": args, "call_hash": call_hash("search", args)}),
            decided.model_copy(update={"call_id": call_id}),
            recorded.model_copy(update={"call_id": call_id, "output": f"result {n}"}),
        ]
        n += 1
        if len(batch) >= 30_000:
            seq = store.append(sid, batch, expect_seq=seq)[-1].seq
            batch = []
    if batch:
        store.append(sid, batch, expect_seq=seq)
    t0 = time.perf_counter()
    session = Guard(policy, store).resume_session(sid)
    FILL["fill_fold_s"] = round(time.perf_counter() - t0, 1)
    assert session.save_snapshot()
    while session.state.events < events:
        n = session.state.events
        session.record_result(session.check("search", {"query": f"q {n}"}).call_id, f"result {n}")
    store.close()
    return sid


FILL: dict[str, float] = {}
"""Figures of the last :func:`build_session`."""


def copy_to_postgres(src: SQLiteStore, url: str, sid: str) -> None:
    """The session's rows, as they are, into PostgreSQL (COPY: a bulk load, not appends)."""
    PostgresStore(url).close()  # the tables
    head = src.head(sid)
    assert head is not None
    first, last = src.sessions()[0].first_time, src.sessions()[0].last_time
    snapshot = src.latest_snapshot(sid)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY events (session_id, seq, body, prev_hash, hash) FROM STDIN") as copy:
            after = 0
            while True:
                rows = src.read(sid, after, limit=50_000)
                if not rows:
                    break
                for e in rows:
                    copy.write_row((sid, e.seq, e.body, e.prev_hash, e.hash))
                after = rows[-1].seq
        cur.execute("INSERT INTO heads VALUES (%s, %s, %s, %s, %s)", (sid, head.seq, head.hash, first, last))
        policy = Policy.from_yaml(POLICY)
        cur.execute(
            "INSERT INTO policies VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (policy.hash, policy.name, src.get_policy(policy.hash))
        )
        if snapshot is not None:
            s = snapshot
            cur.execute("INSERT INTO snapshots VALUES (%s, %s, %s, %s, %s, %s)", (sid, s.seq, s.hash, s.policy_hash, s.digest, s.body))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events")


RESUME = """
import json, sys, time
from tether import Guard, Policy
from tether.store import open_store
target, sid, how, policy = sys.argv[1:5]
t1, c1 = time.perf_counter(), time.process_time()
store = open_store(target)
guard = Guard(Policy.from_yaml(policy), store)
session = guard.open_session(sid) if how == "open" else guard.resume_session(sid)
wall, cpu = time.perf_counter() - t1, time.process_time() - c1
assert session.state.last_seq > 0
print(json.dumps({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "events": session.state.last_seq}))
"""
"""A new process that opens the store and resumes the session (timed from opening the store)."""


def resume_times(target: str, sid: str) -> dict[str, float]:
    """``open_session`` (newest snapshot bound to the chain, then the tail) and ``resume_session``
    (the whole chain verified first), each in a new process as an agent or API worker would:
    best of 3, wall and CPU milliseconds."""
    out: dict[str, float] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name, how in (("resume_ms", "open"), ("resume_full_verify_ms", "verify")):
        runs = []
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-c", RESUME, target, sid, how, POLICY], capture_output=True, text=True, env=env, check=True
            )
            runs.append(json.loads(done.stdout))
        out[name] = round(min(r["wall_ms"] for r in runs), 1)
        out[name.replace("_ms", "_cpu_ms")] = round(min(r["cpu_ms"] for r in runs), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgres", default=None, help="An existing database's URL (default: start a throw-away cluster).")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--tail", type=int, default=4_800, help="Events after the last snapshot (default: just before the next).")
    parser.add_argument("--resume-only", action="store_true", help="Only the resume figures (skip appends and throughput).")
    parser.add_argument("--writer", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    if args.writer:
        writer(args.writer, seconds)
        return
    n = 2_000 if args.quick else 20_000
    size = args.events or (100_000 if args.quick else 1_000_000)
    cluster = None
    if args.postgres is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/postgres_cluster.py
        from tests.postgres_cluster import PostgresCluster

        cluster = PostgresCluster(fsync=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pg = args.postgres or cluster.new_database()  # type: ignore[union-attr]
            sqlite = str(Path(tmp) / "bench.db")
            out: dict[str, Any] = {
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "load_avg_1m_start": round(os.getloadavg()[0], 1),
                "postgres_fsync": True if cluster else None,
            }
            for name, target, modes in (("sqlite", sqlite, ("normal", "full")), ("postgres", pg, ("normal", "off"))):
                if args.resume_only:
                    break
                for mode in modes:
                    out[f"append_{name}_{mode}"] = append_latency(target, mode, n)
                for writers in (1, 4):
                    out[f"throughput_{name}_{writers}w_per_s"] = throughput(target, writers, seconds)
            if not args.resume_only:
                for name in ("sqlite", "postgres"):
                    out[f"throughput_{name}_4w_over_1w"] = round(out[f"throughput_{name}_4w_per_s"] / out[f"throughput_{name}_1w_per_s"], 2)
                out["append_p50_postgres_over_sqlite"] = round(
                    out["append_postgres_normal"]["p50_us"] / out["append_sqlite_normal"]["p50_us"], 2
                )
            big = Path(tmp) / "big.db"
            t0 = time.perf_counter()
            sid = build_session(big, size, args.tail)
            out["resume_build_s"] = round(time.perf_counter() - t0, 1)
            out.update(FILL)
            src = SQLiteStore(big)
            out["resume_events"] = src.head(sid).seq  # type: ignore[union-attr]
            snapshot = src.latest_snapshot(sid)
            assert snapshot is not None
            out["resume_tail_events"] = out["resume_events"] - snapshot.seq
            out["resume_snapshot_kb"] = round(len(snapshot.body) / 1024)
            big_pg = args.postgres or cluster.new_database()  # type: ignore[union-attr]
            copy_to_postgres(src, big_pg, sid)
            src.close()
            for name, target in (("sqlite", str(big)), ("postgres", big_pg)):
                for key, value in resume_times(target, sid).items():
                    out[f"{key}_{name}"] = value
            out["resume_ms_postgres_over_sqlite"] = round(out["resume_ms_postgres"] / out["resume_ms_sqlite"], 2)
            out["resume_full_verify_postgres_over_sqlite"] = round(
                out["resume_full_verify_ms_postgres"] / out["resume_full_verify_ms_sqlite"], 2
            )
            out["load_avg_1m_end"] = round(os.getloadavg()[0], 1)
    finally:
        if cluster is not None:
            cluster.remove()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:45} {value}")


if __name__ == "__main__":
    main()
