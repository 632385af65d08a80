"""One long session: does memory stay bounded and does recording stay flat in time?

What is measured (one process, one session, a durable SQLite log on a temporary file):

* N checks (default 100,000) of a small policy: reads of 1 KB outputs (half untrusted mail,
  half trusted account data, with IBANs and addresses in them) and writes with flow rules
  (payments to recipients from the task, from the mail, or made up; messages with free text).
  About 28% of the checks are reads whose output is recorded (``session.record_result``).
* ``rss_growth_mb_per_100k_checks``: resident memory after the run minus before it (after the
  session started), scaled to 100,000 checks.
* ``record_p50_ms_first_10k`` / ``record_p50_ms_last_10k``: median time of ``record_result``
  over the first and the last 10,000 recorded outputs (a quarter of them with ``--quick``).
* ``check_with_log_p50_us`` / ``check_with_log_p99_us``: ``session.check`` including the durable
  append of its events; ``decision_p50_us`` / ``decision_p99_us``: the decision alone on the final
  state, for the same kind of writes.
* ``memory``: the flow tracker's own size (bounded by ``FlowLimits``) and an estimate of the
  session's per-call records, which are not bounded by the tracker.
* ``taint_overflowed_at_check`` / ``taint_saturated_at_check``: the check after which the taint
  memory (values sent out, ``FlowLimits.max_taint_entries``) first spilled into its overflow filter,
  and after which that filter was saturated (from then on every output gets the overflow's label,
  so trusted outputs no longer ground anything); ``null`` when it never happened.
* ``resume_ms_worst`` (with ``resume_shapes``): the slowest ``open_session`` over sessions of four
  shapes (long tail of events, large outputs, many distinct bodies, many pending approvals), each
  built to just before its next automatic snapshot; ``record_1mb_ms``: recording one 1 MB trusted
  output in a session in use (see ``benchmarks/resume_shapes.py``).
* ``resume_ms_1m_events``: a fresh ``Guard(...).open_session(id)`` (the newest snapshot bound to the
  chain, plus the events after it, verified) once the session's log holds 1,000,000 events (it is
  grown with more checks after the main run; measured, not extrapolated; ``--quick`` skips the growth
  and reports ``resume_open_ms`` at its own size). ``resume_full_verify_ms*``: ``resume_session(id)``,
  which also recomputes the whole chain.

With ``--distinct-bodies`` every message also quotes a reference seen nowhere, so the session keeps
sending out new text (about 47 new taint pieces a message): the case of an agent that runs for days.

Usage: python benchmarks/long_session.py [--quick] [--checks N] [--distinct-bodies] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import resume_shapes  # a sibling script (its folder is on sys.path when this one runs)

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.monitor import decide

POLICY = """
tether: 1
name: long-session
tools:
  read_mail:
    effect: read
    output: untrusted
    args:
      folder: {type: string, maxLength: 40}
  read_account:
    effect: read
    output: trusted
  search:
    effect: read
    output: untrusted
    args:
      query: {type: string, maxLength: 200}
  send_payment:
    effect: write
    args:
      recipient: {type: string, required: true, maxLength: 64, flow: {require: trusted, on_violation: ask}}
      amount: {type: number, exclusiveMinimum: 0}
      subject: {type: string, maxLength: 140, flow: {forbid: [secret]}}
  send_message:
    effect: write
    args:
      to: {type: string, required: true, flow: {require: trusted}}
      body: {type: string, maxLength: 4000, flow: {forbid: [secret]}}
"""
TASK = "Keep paying the rent to GB29NWBK60161331926819 and answer alice@company.com about the invoices."
WORDS = [
    "the",
    "invoice",
    "meeting",
    "project",
    "report",
    "budget",
    "quarterly",
    "review",
    "please",
    "attached",
    "schedule",
    "customer",
    "order",
    "shipment",
    "delayed",
    "update",
    "account",
    "security",
    "team",
    "lunch",
    "friday",
    "monday",
    "office",
    "travel",
    "hotel",
    "booking",
    "flight",
    "confirm",
    "cancel",
    "payment",
    "received",
    "thanks",
    "regards",
    "urgent",
    "note",
    "draft",
    "final",
    "version",
    "contract",
    "signed",
]
PAGE = 1000


def _vocabulary(size: int, seed: int = 11) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf frequencies: text with a realistic number of distinct substrings."""
    rng = random.Random(seed)
    words = list(WORDS)
    while len(words) < size:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 11))))
    return words, list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))


VOCAB, CUM = _vocabulary(20_000)


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rand_iban(rng: random.Random) -> str:
    return (
        rng.choice(["FR", "ES", "NL", "IT"]) + f"{rng.randrange(10, 99)}" + "".join(rng.choice("ABCDEFGHJK0123456789") for _ in range(18))
    )


def rand_email(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}.{rng.randrange(10000)}@{rng.choice(['mail', 'corp', 'example'])}{rng.randrange(1000)}.com"


def page(rng: random.Random, ids: list[str]) -> str:
    """About 1 KB of mail-like text (Zipf-distributed words) with an identifier every ~20 words."""
    parts: list[str] = []
    n = 0
    while n < PAGE:
        if rng.random() < 0.05:
            word = rng.choice([rand_iban, rand_email])(rng)
            ids.append(word)
        else:
            word = rng.choices(VOCAB, cum_weights=CUM)[0]
        parts.append(word)
        n += len(word) + 1
    return " ".join(parts)[:PAGE]


def call_records_bytes(calls: dict[str, Any]) -> int:
    """Estimated bytes of the session's per-call records (from a sample of 1,000)."""
    sample = list(calls.values())[-1000:]
    if not sample:
        return 0

    def deep(value: Any) -> int:
        size = sys.getsizeof(value)
        if isinstance(value, dict):
            size += sum(deep(k) + deep(v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            size += sum(deep(v) for v in value)
        return size

    per = sum(sys.getsizeof(r) + deep(r.args) + deep(r.call_id) + deep(r.call_hash) + deep(r.tool) for r in sample) / len(sample)
    return int(per * len(calls))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_decisions(policy: Policy, session: Any, ids: list[str], rng: random.Random) -> list[float]:
    """The decision alone (no log) on the session's final state, for the same mix of writes."""
    calls = []
    for _ in range(2000):
        if rng.random() < 0.5:
            recipient = "GB29NWBK60161331926819" if rng.random() < 0.5 else rng.choice(ids or [rand_iban(rng)])
            calls.append(
                ToolCall(
                    "send_payment", {"recipient": recipient, "amount": 80, "subject": " ".join(rng.choices(VOCAB, cum_weights=CUM, k=4))}
                )
            )
        else:
            calls.append(ToolCall("send_message", {"to": "alice@company.com", "body": " ".join(rng.choices(VOCAB, cum_weights=CUM, k=20))}))
    out = []
    now = time.time()
    for call in calls:
        t0 = time.perf_counter_ns()
        decide(policy, session.state, call, "sha256:x", now)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _timed_ms(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000


def measure_resume(policy: Policy, db: Path, session: Any, grow_to: int | None, progress: bool) -> dict[str, Any]:
    """Resume the session from the store, as a fresh process would: ``open_session`` (from the newest
    snapshot bound to the chain, verifying the events after it) and ``resume_session`` (verifying the
    whole chain first). With ``grow_to``, the session is first extended with more checks until its log
    holds that many events, and resumed at that size: the figure is measured, not extrapolated."""
    out: dict[str, Any] = {}
    opened, ms = _timed_ms(lambda: Guard(policy, SQLiteStore(db)).open_session(session.id))
    assert opened.state.snapshot() == session.state.snapshot()
    out["resume_events_measured"] = session.state.events
    out["resume_open_ms"] = round(ms, 1)
    _, ms = _timed_ms(lambda: Guard(policy, SQLiteStore(db)).resume_session(session.id))
    out["resume_full_verify_ms"] = round(ms, 1)
    if grow_to is None:
        out["resume_ms_1m_events"] = None  # --quick: not grown to 1e6 events; see resume_open_ms at its size
        out["resume_extrapolated"] = False
        return out
    started = time.perf_counter()
    i = 0
    while session.state.events < grow_to:
        session.check("search", {"query": f"follow-up {i}"})
        i += 1
        if progress and i % 50_000 == 0:
            print(f"  growing: {session.state.events:>9,} events  {time.perf_counter() - started:6.1f} s", file=sys.stderr)
    reopened, ms = _timed_ms(lambda: Guard(policy, SQLiteStore(db)).open_session(session.id))
    assert reopened.state.snapshot() == session.state.snapshot()
    out["resume_events"] = session.state.events
    out["resume_ms_1m_events"] = round(ms, 1)
    out["resume_extrapolated"] = False
    _, ms = _timed_ms(lambda: Guard(policy, SQLiteStore(db)).resume_session(session.id))
    out["resume_full_verify_ms_1m_events"] = round(ms, 1)
    return out


def run(checks: int, db: Path, seed: int, progress: bool, grow_to: int | None = None, distinct: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    policy = Policy.from_yaml(POLICY)
    guard = Guard(policy, SQLiteStore(db))
    session = guard.start_session(TASK)
    ids: list[str] = []
    check_us: list[float] = []
    record_ms: list[float] = []
    verdicts = {"allow": 0, "deny": 0, "ask": 0}
    overflowed_at: int | None = None
    saturated_at: int | None = None
    clock = time.perf_counter_ns
    rss_before = rss_mb()
    started = time.perf_counter()
    for i in range(checks):
        r = rng.random()
        if r < 0.28:
            tool = "read_mail" if rng.random() < 0.5 else "read_account"
            args: dict[str, Any] = {"folder": "inbox"} if tool == "read_mail" else {}
        elif r < 0.40:
            tool, args = "search", {"query": " ".join(rng.sample(WORDS, 3))}
        elif r < 0.75:
            pick = rng.random()
            recipient = "GB29NWBK60161331926819" if pick < 0.5 else (rng.choice(ids) if pick < 0.8 and ids else rand_iban(rng))
            tool = "send_payment"
            args = {
                "recipient": recipient,
                "amount": rng.choice([80, 1200, 250]),
                "subject": " ".join(rng.choices(VOCAB, cum_weights=CUM, k=4)),
            }
        else:
            body = " ".join(rng.choices(VOCAB, cum_weights=CUM, k=20))
            if distinct:  # every message also quotes a reference seen nowhere: distinct text sent out
                body += f" ref {rng.getrandbits(160):040x}"
            tool, args = "send_message", {"to": "alice@company.com", "body": body}
        t0 = clock()
        decision = session.check(tool, args)
        check_us.append((clock() - t0) / 1000)
        verdicts[decision.verdict] += 1
        if r < 0.28 and decision.allowed:
            text = page(rng, ids)
            t0 = clock()
            session.record_result(decision.call_id, text)
            record_ms.append((clock() - t0) / 1e6)
        taint = session.state.flow.taint
        if saturated_at is None and taint.overflow.untrusted:
            overflowed_at = overflowed_at or i + 1
            if taint.saturated:
                saturated_at = i + 1
        if len(ids) > 2000:
            del ids[:1000]
        if progress and (i + 1) % 10_000 == 0:
            print(
                f"  {i + 1:>7,} checks  {time.perf_counter() - started:6.1f} s  rss {rss_mb():7.1f} MiB  "
                f"record p50 (last 1000) {statistics.median(record_ms[-1000:]):.3f} ms",
                file=sys.stderr,
            )
    rss_after = rss_mb()
    elapsed = time.perf_counter() - started
    events = session.state.events
    flow = session.state.flow
    memory = {
        "flow_tracker_mb": round(flow.memory_bytes() / 2**20, 1),
        "call_records_mb_estimate": round(call_records_bytes(session.state.calls) / 2**20, 1),
        "indexed_bytes": flow.index.chars,
        "indexed_sources": len(flow.index),
        "taint_entries": flow.taint.entries,
        "taint_overflow": flow.taint.overflow.describe(),
        "taint_saturated": flow.taint.saturated,
    }
    decision_us = time_decisions(policy, session, ids, rng)
    resume = measure_resume(policy, db, session, grow_to if grow_to else None, progress)
    window = min(10_000, max(1, len(record_ms) // 2))
    return {
        "checks": checks,
        "distinct_bodies": distinct,
        "records": len(record_ms),
        "events": events,
        "verdicts": verdicts,
        "elapsed_s": round(elapsed, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb_per_100k_checks": round((rss_after - rss_before) * 100_000 / checks, 1),
        "record_window": window,
        "record_p50_ms_first_10k": round(statistics.median(record_ms[:window]), 3),
        "record_p50_ms_last_10k": round(statistics.median(record_ms[-window:]), 3),
        "record_p99_ms": round(pct(record_ms, 0.99), 3),
        "decision_p50_us": round(pct(decision_us, 0.50), 1),
        "decision_p99_us": round(pct(decision_us, 0.99), 1),
        "check_with_log_p50_us": round(pct(check_us, 0.50), 1),
        "check_with_log_p99_us": round(pct(check_us, 0.99), 1),
        "taint_overflowed_at_check": overflowed_at,
        "taint_saturated_at_check": saturated_at,
        **resume,
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 checks instead of 100,000")
    parser.add_argument("--checks", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resume-events", type=int, default=1_000_000, help="grow the session to this many events, then time a resume")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--distinct-bodies",
        action="store_true",
        help="every message quotes a 40-character reference seen nowhere (about 47 new taint pieces each)",
    )
    opts = parser.parse_args()
    checks = opts.checks or (20_000 if opts.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        grow_to = None if opts.quick else opts.resume_events
        result = run(checks, Path(tmp) / "long.db", opts.seed, progress=True, grow_to=grow_to, distinct=opts.distinct_bodies)
    # The resume of the slowest session shape, and recording a 1 MB output (benchmarks/resume_shapes.py).
    result.update(resume_shapes.measure(opts.quick))
    if opts.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")


if __name__ == "__main__":
    main()
