"""The inbox of a week-old store: reading a page of pending approvals and their counts, when
thousands of asks expired unanswered (sessions abandoned while they waited).

A SQLite store (on disk) holds ``--stale`` expired asks (10 per abandoned session) and ``--live``
live ones (5 per session). Measured in CPU time per request, in the same run:

* ``page``: what ``GET /api/approvals`` reads from the store, the first page of 100 and the total:
  ``Oversight.pending_page(limit=100)`` (filtered, paged and counted in the database) against
  the way it was read before (every request decoded, then filtered and sliced in Python);
* ``counts``: the pending count of each session (the sessions list): ``pending_counts`` (one
  ``GROUP BY``) against counting every decoded request.

Usage: python benchmarks/pending_inbox.py [--stale N] [--live N] [--repeat R] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.events import ApprovalRequested, CallProposed, Event
from tether.server import HIDDEN, Oversight
from tether.store import EventStore, PendingApproval, SQLiteStore

PAGE = 100


def asks(session_id: str, count: int, *, at: float, expires_at: float) -> list[Event]:
    """``count`` calls of a session waiting for a human, with arguments of a realistic size."""
    out: list[Event] = []
    for i in range(count):
        call_id = f"{session_id}-{i}"
        args = {"to": ["ops-team@company.com"], "body": f"quarterly report {i}: " + "x" * 400}
        out.append(CallProposed(session_id=session_id, time=at, call_id=call_id, tool="send_email", args=args, call_hash=call_id))
        out.append(
            ApprovalRequested(session_id=session_id, time=at, call_id=call_id, call_hash=call_id, expires_at=expires_at, summary="why")
        )
    return out


def fill(store: EventStore, stale: int, live: int, now: float) -> None:
    week_ago = now - 7 * 86400
    for s in range(-(-stale // 10)):
        store.append(f"abandoned-{s}", asks(f"abandoned-{s}", min(10, stale - 10 * s), at=week_ago, expires_at=week_ago + 3600))
    for s in range(-(-live // 5)):
        store.append(f"live-{s}", asks(f"live-{s}", min(5, live - 5 * s), at=now - 60, expires_at=now + 3600))


def page_before(store: EventStore, now: float) -> tuple[list[PendingApproval], int]:
    """The first page and the total as ``Oversight.pending_page`` read them before this change."""
    items = [p for p in store.pending_approvals() if p.expires_at >= now and not p.session_id.startswith(HIDDEN)]
    return items[:PAGE], len(items)


def counts_before(store: EventStore, now: float) -> dict[str, int]:
    """Each session's pending count as ``Oversight`` counted it before this change."""
    counts: dict[str, int] = {}
    for p in store.pending_approvals():
        if p.expires_at >= now and not p.session_id.startswith(HIDDEN):
            counts[p.session_id] = counts.get(p.session_id, 0) + 1
    return counts


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """The best CPU time of ``repeat`` calls, in milliseconds (CPU time is stable under load)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best * 1000


def measure(stale: int, live: int, repeat: int) -> dict[str, Any]:
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "inbox.db", durability="off")
        fill(store, stale, live, now)
        over = Oversight(store, clock=lambda: now)
        after_page = over.pending_page(limit=PAGE)
        assert after_page == page_before(store, now) and after_page[1] == live
        assert store.pending_counts(live_at=now, hide=HIDDEN) == counts_before(store, now)
        figures = {
            "stale": stale,
            "live": live,
            "page_before_ms": cpu_ms(lambda: page_before(store, now), repeat),
            "page_after_ms": cpu_ms(lambda: over.pending_page(limit=PAGE), repeat),
            "counts_before_ms": cpu_ms(lambda: counts_before(store, now), repeat),
            "counts_after_ms": cpu_ms(lambda: store.pending_counts(live_at=now, hide=HIDDEN), repeat),
        }
        store.close()
    figures["page_speedup"] = figures["page_before_ms"] / figures["page_after_ms"]
    figures["counts_speedup"] = figures["counts_before_ms"] / figures["counts_after_ms"]
    figures["load_average"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stale", type=int, default=10_000, help="expired, unanswered asks (default 10,000)")
    parser.add_argument("--live", type=int, default=200, help="live asks (default 200)")
    parser.add_argument("--repeat", type=int, default=20, help="calls of each reader; the best is reported (default 20)")
    parser.add_argument("--quick", action="store_true", help="3,000 stale asks, 5 calls of each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    stale, repeat = (3000, 5) if args.quick else (args.stale, args.repeat)
    figures = measure(stale, args.live, repeat)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{stale:,} stale and {args.live:,} live asks (load average {figures['load_average']:.1f}), CPU ms per request:")
    print(
        f"  page of {PAGE} + total: before {figures['page_before_ms']:.2f}, now {figures['page_after_ms']:.2f} (x{figures['page_speedup']:.1f})"
    )
    print(
        f"  counts per session:  before {figures['counts_before_ms']:.2f}, now {figures['counts_after_ms']:.2f} (x{figures['counts_speedup']:.1f})"
    )


if __name__ == "__main__":
    main()
