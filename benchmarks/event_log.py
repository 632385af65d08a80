"""Event log throughput: durable appends per second and chain verification per second.

Appends go to a SQLite file in WAL mode through ``SQLiteStore.append``, which
serialises each typed event (the store owns the canonical JSON), hashes it onto its
session's chain and checks the head the writer expects, inside one transaction per batch.
Durability ``normal`` (synchronous=NORMAL under WAL) survives a crash of the
process; ``full`` (synchronous=FULL) also survives power loss. Both are
reported, batched (100 events per transaction) and unbatched (one per
transaction, which is what a guard that commits every decision does).

Usage: python benchmarks/event_log.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tether.events import CallProposed, DecisionMade, Event, ResultRecorded, event_to_json
from tether.flow import TRUSTED
from tether.store import SQLiteStore


def make_events(n: int, session_id: str) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            event = CallProposed(
                session_id=session_id,
                call_id=f"c{i}",
                tool="send_email",
                args={"to": ["alice@company.com"], "body": f"message {i}"},
                call_hash="sha256:" + "ab" * 32,
            )
        elif kind == 1:
            event = DecisionMade(session_id=session_id, call_id=f"c{i}", verdict="allow", reasons=[], policy_hash="sha256:" + "cd" * 32)
        else:
            event = ResultRecorded(
                session_id=session_id,
                call_id=f"c{i}",
                output=f"sent message {i} to alice@company.com",
                label=TRUSTED,
            )
        out.append(event)
    return out


def run_appends(path: Path, durability: str, data: list[Event], batch: int, sessions: int) -> float:
    store = SQLiteStore(path, durability=durability)  # type: ignore[arg-type]
    per_session = len(data) // sessions
    t0 = time.perf_counter()
    for s in range(sessions):
        chunk = data[s * per_session : (s + 1) * per_session]
        sid = f"session-{durability}-{batch}-{s}"
        head = 0
        for i in range(0, len(chunk), batch):
            head = store.append(sid, chunk[i : i + batch], expect_seq=head)[-1].seq
    elapsed = time.perf_counter() - t0
    store.close()
    return per_session * sessions / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (under 30 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if opts.json else print

    n_batched = 60_000 if opts.quick else 300_000
    n_single = 3_000 if opts.quick else 20_000
    data = make_events(n_batched, "s")
    t0 = time.perf_counter()
    for event in data:
        event_to_json(event)
    serialise_per_s = n_batched / (time.perf_counter() - t0)
    results: dict[str, object] = {"durability": "normal", "serialise_per_s": round(serialise_per_s)}
    log(f"event serialisation (typed event -> canonical JSON): {serialise_per_s:,.0f} events/s (also inside every append below)")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "events.db"
        for durability in ("normal", "full"):
            batched = run_appends(db, durability, data, 100, 10)
            single = run_appends(db, durability, data[:n_single], 1, 10)
            results[f"appends_per_s_{durability}_batch100"] = round(batched)
            results[f"appends_per_s_{durability}_single"] = round(single)
            log(f"appends, durability={durability}: {batched:,.0f}/s in batches of 100; {single:,.0f}/s one per transaction")
        results["appends_per_s"] = results["appends_per_s_normal_batch100"]
        store = SQLiteStore(db)
        t0 = time.perf_counter()
        report = store.verify()
        elapsed = time.perf_counter() - t0
        assert report.ok, report.problem
        results["verify_per_s"] = round(report.events / elapsed)
        results["verified_events"] = report.events
        log(f"verify: {report.events:,} events in {elapsed:.2f} s = {report.events / elapsed:,.0f} events/s")
        store.close()
    if opts.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
