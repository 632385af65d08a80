"""Cost of one logged check's append: ``SQLiteStore.append`` of the two events ``session.check`` writes.

Each append is a ``call_proposed`` and a ``decision`` event for a fresh call id, appended
with ``expect_seq`` to one session in a SQLite file (WAL), exactly as the session does
after deciding. Event serialisation is included (the store owns the canonical JSON);
the decision is not. Reported per durability mode: p50, p99 and mean microseconds per
append, after a warm-up, over ``--n`` appends to a session that already holds
``--prefill`` events (so the tables are not trivially small), and the process's CPU time
(user + system) per append, which other load on a shared machine disturbs less.

To compare two versions of the store, run the same command under each version back
to back (``PYTHONPATH=...``) on the same machine and compare the ratios.

Usage: python benchmarks/store_append.py [--n 20000] [--prefill 100000] [--modes normal,full,off] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tether.events import CallProposed, DecisionMade, Event
from tether.store import SQLiteStore

POLICY_HASH = "sha256:" + "cd" * 32
CALL_HASH = "sha256:" + "ab" * 32


def check_events(session_id: str, i: int) -> list[Event]:
    """The two events one allowed check appends. Call ids are random, as the session's are
    (``new_id()``); ``i`` is in the body only, since a counter in the id would sort the ids
    and spare any index keyed by them its random page per append."""
    call_id = os.urandom(16).hex()
    return [
        CallProposed(
            session_id=session_id,
            call_id=call_id,
            tool="send_email",
            args={"to": ["alice@company.com"], "body": f"message {i}"},
            call_hash=CALL_HASH,
        ),
        DecisionMade(session_id=session_id, call_id=call_id, verdict="allow", reasons=[], policy_hash=POLICY_HASH),
    ]


def measure(path: Path, durability: str, n: int, prefill: int) -> dict[str, float]:
    """Per-append latency (us) for ``n`` appends after ``prefill`` events and a warm-up."""
    store = SQLiteStore(path, durability=durability)  # type: ignore[arg-type]
    sid = f"bench-{durability}"
    seq = 0
    batch: list[Event] = []
    for i in range(prefill // 2):
        batch.extend(check_events(sid, -1 - i))
        if len(batch) >= 1000:
            seq = store.append(sid, batch, expect_seq=seq)[-1].seq
            batch = []
    if batch:
        seq = store.append(sid, batch, expect_seq=seq)[-1].seq
    events = [check_events(sid, i) for i in range(n + 500)]
    for i in range(500):
        seq = store.append(sid, events[i], expect_seq=seq)[-1].seq
    times: list[float] = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    for i in range(500, n + 500):
        t0 = clock()
        seq = store.append(sid, events[i], expect_seq=seq)[-1].seq
        times.append((clock() - t0) / 1000)
    cpu = time.process_time() - cpu0
    store.close()
    times.sort()
    return {
        "p50_us": round(times[len(times) // 2], 1),
        "p99_us": round(times[int(len(times) * 0.99)], 1),
        "mean_us": round(statistics.fmean(times), 1),
        "cpu_us": round(cpu / n * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="timed appends per mode")
    parser.add_argument("--prefill", type=int, default=100_000, help="events in the session before timing")
    parser.add_argument("--modes", default="normal,full,off", help="durability modes, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args()
    results: dict[str, object] = {"n": opts.n, "prefill": opts.prefill}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in opts.modes.split(","):
            r = measure(Path(tmp) / f"{mode}.db", mode, opts.n, opts.prefill)
            for key, value in r.items():
                results[f"append_{mode}_{key}"] = value
            if not opts.json:
                print(
                    f"append of one check (2 events), durability={mode}: p50 {r['p50_us']} us, p99 {r['p99_us']} us, "
                    f"mean {r['mean_us']} us, CPU {r['cpu_us']} us"
                )
    if opts.json:
        print(json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
