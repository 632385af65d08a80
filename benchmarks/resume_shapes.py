"""The slowest resume over sessions of different shapes, and the cost of recording a 1 MB output.

A resume reads the newest snapshot bound to the chain and folds the events after it, so its
cost follows the *work* logged since that snapshot, not the session's length. Each shape below
pushes one kind of work to just under the point where the session takes its next snapshot on
its own (the guard's defaults), then times ``Guard(...).open_session(id)`` as a fresh process
would:

* ``long_tail``: the most events after a snapshot (9,999 small checks after the last one);
* ``large_outputs``: the most bytes after a snapshot (outputs of about 1 MB, up to just under
  ``snapshot_bytes``);
* ``distinct_bodies``: a well-filled taint memory (thousands of messages quoting text seen
  nowhere: the snapshot itself is large);
* ``pending_approvals``: 256 approval requests waiting (the most a session keeps) plus calls.

``record_1mb_ms``: ``session.record_result`` of one 1 MB trusted output (median of 5), log included.

Usage: python benchmarks/resume_shapes.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether import Guard, Policy, Session, SQLiteStore

POLICY = """
tether: 1
name: resume-shapes
approval_timeout_s: 86400
tools:
  read_mail: {effect: read, output: untrusted, args: {folder: {type: string}}}
  read_doc: {effect: read, output: trusted, args: {name: {type: string}}}
  search: {effect: read, output: untrusted, args: {query: {type: string}}}
  send_message:
    effect: write
    args:
      to: {type: string, required: true, flow: {require: trusted, on_violation: ask}}
      body: {type: string, maxLength: 4000, flow: {forbid: [secret]}}
"""
TASK = "Answer alice@company.com about the invoices."


def _words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(n))


VOCAB = [_words(random.Random(i), 1) for i in range(20_000)]


def _megabyte(rng: random.Random) -> str:
    """About 1 MB of text that never repeats itself: Zipf-like words with an identifier every ~20."""
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        word = f"id-{rng.getrandbits(40):x}" if rng.random() < 0.05 else VOCAB[min(int(rng.paretovariate(1.0)) - 1, len(VOCAB) - 1)]
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:1_000_000]


def long_tail(s: Session, rng: random.Random, quick: bool) -> None:
    every = s.snapshots.every_events or 10_000
    while s.state.events % every != every - 3:
        s.check("search", {"query": f"q {s.state.events}"})


def large_outputs(s: Session, rng: random.Random, quick: bool) -> None:
    limit = s.snapshots.every_bytes or 8 << 20
    body = _megabyte(rng)
    for _ in range(limit // len(body) - 1):
        s.record_result(s.check("read_doc", {"name": "report"}).call_id, body)


def distinct_bodies(s: Session, rng: random.Random, quick: bool) -> None:
    s.record_result(s.check("read_mail", {"folder": "inbox"}).call_id, _words(rng, 200))
    for i in range(2_000 if quick else 20_000):
        s.check("send_message", {"to": "alice@company.com", "body": f"ref {i}: " + _words(rng, 20)})


def pending_approvals(s: Session, rng: random.Random, quick: bool) -> None:
    s.record_result(s.check("read_mail", {"folder": "inbox"}).call_id, "write to " + " ".join(f"x{i}@evil.example" for i in range(300)))
    for i in range(256):
        s.check("send_message", {"to": f"x{i}@evil.example", "body": "hello"})


SHAPES: dict[str, Callable[[Session, random.Random, bool], None]] = {
    "long_tail": long_tail,
    "large_outputs": large_outputs,
    "distinct_bodies": distinct_bodies,
    "pending_approvals": pending_approvals,
}


def resume_ms(shape: str, quick: bool, workdir: Path) -> dict[str, Any]:
    """Build one session of ``shape`` under the guard's defaults, then time a fresh resume of it."""
    policy = Policy.from_yaml(POLICY)
    db = workdir / f"{shape}.db"
    session = Guard(policy, SQLiteStore(db)).start_session(TASK)
    SHAPES[shape](session, random.Random(7), quick)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        opened = Guard(policy, SQLiteStore(db)).open_session(session.id)
        times.append((time.perf_counter() - t0) * 1000)
        assert opened.state.snapshot() == session.state.snapshot()
    return {"events": session.state.events, "db_mb": round(db.stat().st_size / 2**20, 1), "resume_ms": round(min(times), 1)}


def record_1mb_ms(workdir: Path) -> float:
    """Median time of recording one 1 MB trusted output (label, index, log), over 5 outputs."""
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(workdir / "record.db")).start_session(TASK)
    rng = random.Random(3)
    # A session in use: it has read untrusted text and sent some out (so outputs are checked for
    # taint), and its provenance index is live (a lookup has needed it).
    session.record_result(session.check("read_mail", {"folder": "inbox"}).call_id, _words(rng, 300))
    times = []
    for _ in range(5):
        body = _megabyte(rng)
        session.check("send_message", {"to": "alice@company.com", "body": _words(rng, 20)})
        call_id = session.check("read_doc", {"name": "report"}).call_id
        t0 = time.perf_counter()
        session.record_result(call_id, body)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def measure(quick: bool, progress: bool = True) -> dict[str, Any]:
    """``resume_ms_worst`` (with each shape's figures) and ``record_1mb_ms``."""
    out: dict[str, Any] = {"resume_shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            t0 = time.perf_counter()
            out["resume_shapes"][shape] = resume_ms(shape, quick, Path(tmp))
            if progress:
                print(f"  {shape}: {out['resume_shapes'][shape]} (built in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        out["resume_ms_worst"] = max(v["resume_ms"] for v in out["resume_shapes"].values())
        out["record_1mb_ms"] = record_1mb_ms(Path(tmp))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller distinct-bodies session")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    result = measure(opts.quick)
    print(json.dumps(result, indent=2) if opts.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
