"""Costs of the flow tracker's heavy paths, for comparing two checkouts in one run.

Measures (medians over repeats, milliseconds unless the key says otherwise):

* ``remember_20w_us``: a call with a 20-word body that carries untrusted data is counted
  (``note_executed``) and its output labelled (``output_label``), per call, microseconds; the
  note alone is ``note_20w_us``;
* ``record_1mb_ms``: one 1 MB trusted output recorded: ``add_source`` plus ``output_label``
  with untrusted values remembered (what ``session.record_result`` asks of the tracker);
* ``snapshot_ms`` / ``restore_ms``: ``to_snapshot()`` and ``from_snapshot()`` of a tracker with a
  full default index (4 MB of outputs, gram index built) and ``--pieces`` remembered pieces.

Run it against two checkouts back to back and compare ratios, e.g.::

    for src in /work/main/src src; do PYTHONPATH=$src python benchmarks/flow_costs.py --json; done
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import time
from typing import Any

from tether.flow import UNTRUSTED, FlowTracker, label

TRUSTED_OUT = label("trusted")


def _words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(n))


def _tracker(rng: random.Random) -> FlowTracker:
    tracker = FlowTracker()
    tracker.pin("pay the rent to my landlord and reply to the email from alice", TRUSTED_OUT, "task")
    tracker.add_source("mail: " + _words(rng, 400), UNTRUSTED, "mail")
    return tracker


def remember_costs(rng: random.Random, calls: int) -> dict[str, float]:
    tracker = _tracker(rng)
    note_us: list[float] = []
    cycle_us: list[float] = []
    for _ in range(calls):
        args = {"recipient": "bob@example.com", "body": _words(rng, 20)}
        t0 = time.perf_counter()
        tracker.note_executed(args, ("recipient", "body"))
        t1 = time.perf_counter()
        tracker.output_label(TRUSTED_OUT, "message sent, id 4821", args, ("recipient", "body"))
        t2 = time.perf_counter()
        note_us.append((t1 - t0) * 1e6)
        cycle_us.append((t2 - t0) * 1e6)
    return {"note_20w_us": round(statistics.median(note_us), 1), "remember_20w_us": round(statistics.median(cycle_us), 1)}


def record_1mb(rng: random.Random, repeats: int) -> dict[str, float]:
    times: list[float] = []
    for i in range(repeats):
        tracker = _tracker(rng)
        for _ in range(50):
            tracker.note_executed({"body": _words(rng, 20)}, ("body",))
        text = _words(rng, 170_000)[: 1 << 20]
        t0 = time.perf_counter()
        tracker.add_source(text, TRUSTED_OUT, f"out{i}")
        tracker.output_label(TRUSTED_OUT, text, {"path": "report.txt"}, ("path",))
        times.append((time.perf_counter() - t0) * 1e3)
    return {"record_1mb_ms": round(statistics.median(times), 1)}


def snapshot_costs(rng: random.Random, pieces: int, repeats: int) -> dict[str, Any]:
    tracker = _tracker(rng)
    for i in range(5):
        text = _words(rng, 180_000)[:1_000_000]
        tracker.add_source(text, TRUSTED_OUT, f"big{i}")
    tracker.origin(" ".join(text.split()[10:12]))  # builds the gram index (two known tokens: no early answer)
    body = _words(rng, pieces // 6)
    for start in range(0, len(body), 4096):
        tracker.note_executed({"body": body[start : start + 4096]}, ("body",))
    tracker.output_label(TRUSTED_OUT, "ok", None)
    snap_ms: list[float] = []
    restore_ms: list[float] = []
    data: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = tracker.to_snapshot()
        t1 = time.perf_counter()
        FlowTracker.from_snapshot(data)
        t2 = time.perf_counter()
        snap_ms.append((t1 - t0) * 1e3)
        restore_ms.append((t2 - t1) * 1e3)
    return {
        "taint_entries": tracker.taint.entries,
        "snapshot_ms": round(statistics.median(snap_ms), 1),
        "restore_ms": round(statistics.median(restore_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pieces", type=int, default=1_000_000, help="remembered pieces in the snapshot test")
    parser.add_argument("--only", choices=("remember", "record", "snapshot"), default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    out: dict[str, Any] = {}
    if args.only in (None, "remember"):
        out.update(remember_costs(rng, args.calls))
    if args.only in (None, "record"):
        out.update(record_1mb(rng, args.repeats))
    if args.only in (None, "snapshot"):
        out.update(snapshot_costs(rng, args.pieces, args.repeats))
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
