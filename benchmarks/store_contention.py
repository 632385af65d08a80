"""Many processes writing one session: total appends per second and how fairly they are shared.

Each worker process opens its own ``SQLiteStore`` on one file and does what a session's
``check`` does with the store, for ``--seconds``: build the two events of a check (a
``call_proposed`` and a ``decision``), spend ``--work-us`` of CPU standing in for the
decision, and append them with ``expect_seq`` set to the last event it has folded. When
another worker got there first (``StaleSession``) it reads the events it missed, checks
that they extend the chain it knows (``chain_break``), and decides again, as the session
does: where the store has ``turn()`` it does that inside its turn (holding the write lock,
so the retry cannot lose), unless ``--no-turn``; otherwise it retries optimistically. Reported: total checks per second, the fewest and most checks one worker logged,
and how many appends lost a race.

To compare two versions of the store, run the same command under each version back to
back (``PYTHONPATH=...``) and compare them within one run of the machine.

Usage: python benchmarks/store_contention.py [--procs 1,2,6,12] [--seconds 5] [--work-us 30] [--no-turn] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from tether.errors import StaleSession
from tether.events import CallProposed, DecisionMade, Event, SessionStarted
from tether.store import GENESIS, SQLiteStore, chain_break

SESSION = "contended"
POLICY_HASH = "sha256:" + "cd" * 32


def _events(worker: int, i: int) -> list[Event]:
    call_id = f"w{worker}-{i}"
    return [
        CallProposed(session_id=SESSION, call_id=call_id, tool="send_email", args={"to": ["a@b.c"], "body": f"m {i}"}, call_hash="h"),
        DecisionMade(session_id=SESSION, call_id=call_id, verdict="allow", reasons=[], policy_hash=POLICY_HASH),
    ]


def _spin(us: float) -> None:
    """Burn CPU for ``us`` microseconds (the decision a real check makes)."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def _catch_up(store: SQLiteStore, seq: int, last_hash: str) -> tuple[int, str]:
    """Read the events another worker appended and check that they extend the chain."""
    missed = store.read(SESSION, seq)
    if chain_break(missed, seq, last_hash) is not None:
        raise RuntimeError("chain broken")
    return (missed[-1].seq, missed[-1].hash) if missed else (seq, last_hash)


def _worker(path: str, worker: int, start_at: float, seconds: float, work_us: float, turns: bool, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = SQLiteStore(path)
    turns = turns and hasattr(store, "turn")
    seq, last_hash = 0, GENESIS
    missed = store.read(SESSION, 0)
    if missed:
        seq, last_hash = missed[-1].seq, missed[-1].hash
    done = lost = 0
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        _spin(work_us)
        try:
            stored = store.append(SESSION, _events(worker, done), expect_seq=seq)
        except StaleSession:
            lost += 1
            if not turns:
                seq, last_hash = _catch_up(store, seq, last_hash)
                continue
            # Wait for the write lock once, then catch up, decide and append: nobody can move
            # the head in between.
            with store.turn():
                seq, last_hash = _catch_up(store, seq, last_hash)
                _spin(work_us)
                stored = store.append(SESSION, _events(worker, done), expect_seq=seq)
        seq, last_hash = stored[-1].seq, stored[-1].hash
        done += 1
    store.close()
    out.put((worker, done, lost))


def run(procs: int, seconds: float, work_us: float, turns: bool) -> dict[str, float]:
    """One contention run with ``procs`` workers on a fresh store."""
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "contended.db")
        store = SQLiteStore(path)
        store.append(
            SESSION, [SessionStarted(session_id=SESSION, task="bench", policy_hash=POLICY_HASH, policy_name="bench", principal="bench")]
        )
        store.close()
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        start_at = time.time() + 0.5 + 0.05 * procs
        workers = [ctx.Process(target=_worker, args=(path, w, start_at, seconds, work_us, turns, out)) for w in range(procs)]
        for p in workers:
            p.start()
        results = [out.get() for _ in workers]
        for p in workers:
            p.join()
        check = SQLiteStore(path)
        report = check.verify()
        check.close()
        if not report.ok:
            raise RuntimeError(f"chain does not verify after the run: {report.problem}")
    counts = [r[1] for r in results]
    total = sum(counts)
    if report.events != 1 + 2 * total:
        raise RuntimeError(f"{report.events} events stored for {total} acknowledged checks")
    return {
        "procs": procs,
        "checks_per_s": round(total / seconds),
        "min_per_worker": min(counts),
        "max_per_worker": max(counts),
        "lost_races": sum(r[2] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", default="1,2,6,12", help="worker counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--work-us", type=float, default=30.0, help="CPU per decision, outside the store")
    parser.add_argument("--no-turn", action="store_true", help="retry optimistically even where the store has turn()")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args()
    rows = []
    for procs in (int(p) for p in opts.procs.split(",")):
        row = run(procs, opts.seconds, opts.work_us, not opts.no_turn)
        rows.append(row)
        if not opts.json:
            print(
                f"{row['procs']:>3} processes: {row['checks_per_s']:>7,} checks/s, per worker "
                f"{row['min_per_worker']:,} to {row['max_per_worker']:,}, {row['lost_races']:,} lost races"
            )
    if opts.json:
        print(json.dumps({"work_us": opts.work_us, "seconds": opts.seconds, "turns": not opts.no_turn, "runs": rows}))


if __name__ == "__main__":
    main()
