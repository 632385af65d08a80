"""WAL pages one logged check's append writes, by table: the cost that dominates an append.

In WAL mode a commit writes every page it changed to the log (two ``pwrite`` calls each,
about 8 us per 4 KiB page on a small VM), so the pages an append touches set most of its
cost. This appends ``--n`` checks (the two events ``session.check`` writes, as
``store_append.py`` builds them) round-robin over ``--sessions`` sessions holding
``--prefill`` events in all, then reads the page number of every WAL frame they wrote and
names its table with SQLite's ``dbstat`` (``sqlite_schema`` is page 1, whose header
changes when the file grows).

Usage: python benchmarks/store_pages.py [--n 400] [--prefill 100000] [--sessions 1,20] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import struct
import tempfile
from pathlib import Path

from store_append import check_events

from tether.store import SQLiteStore


def pages(path: Path, n: int, prefill: int, sessions: int) -> dict[str, float]:
    """WAL frames per append, in all and by table."""
    store = SQLiteStore(path, durability="normal")
    names = [f"bench-{k}" for k in range(sessions)]
    for i in range(prefill // 2):
        sid = names[i % sessions]
        store.append(sid, check_events(sid, -1 - i))
    db = store._db  # the benchmark reads SQLite's own bookkeeping
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(n):
        sid = names[i % sessions]
        store.append(sid, check_events(sid, i))
    size = db.execute("PRAGMA page_size").fetchone()[0]
    log = Path(f"{path}-wal").read_bytes()
    frames = [struct.unpack_from(">I", log, 32 + k * (size + 24))[0] for k in range((len(log) - 32) // (size + 24))]
    owner = dict((page, name) for name, page in db.execute("SELECT name, pageno FROM dbstat"))
    store.close()
    by_table = collections.Counter(owner.get(page, "?") for page in frames)
    return {"all": round(len(frames) / n, 2)} | {name: round(count / n, 2) for name, count in by_table.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="appends measured (fewer than a checkpoint's worth)")
    parser.add_argument("--prefill", type=int, default=100_000, help="events in the store before measuring")
    parser.add_argument("--sessions", default="1,20", help="sessions appended to round-robin, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in opts.sessions.split(",")):
            r = pages(Path(tmp) / f"{count}.db", opts.n, opts.prefill, count)
            results[f"pages_per_append_{count}_sessions"] = r
            if not opts.json:
                print(f"{count} session(s): {r.pop('all')} WAL pages per append ({', '.join(f'{k} {v}' for k, v in r.items())})")
    if opts.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
