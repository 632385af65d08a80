"""``open_session`` reads the tail after the newest snapshot, not the chain: a resume costs the
snapshot plus what was logged after it, however long the session (``resume_session`` verifies
the whole chain first, by design; ``tether audit verify`` does that for every session)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether import Guard, Policy, SQLiteStore
from tether.store import StoredEvent

POLICY = """
tether: 1
name: resume-reads
tools:
  search: {effect: read, output: untrusted, args: {query: {type: string}}}
"""


class CountingStore:
    """A SQLite store that counts the events it hands out (everything else passes through)."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(path)
        self.events_read = 0

    def read(self, session_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        rows = self.inner.read(session_id, after_seq, limit=limit)
        self.events_read += len(rows)
        return rows

    def verify(self, session_ids: Sequence[str] | None = None, **kw: Any) -> Any:
        report = self.inner.verify(session_ids, **kw)
        self.events_read += report.events
        return report

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_open_session_reads_only_the_tail_after_the_snapshot(tmp_path: Path) -> None:
    policy = Policy.from_yaml(POLICY)
    guard = Guard(policy, SQLiteStore(tmp_path / "s.db"), snapshot_every=300)
    session = guard.start_session("Search the archive.")
    for n in range(700):
        session.record_result(session.check("search", {"query": f"q {n}"}).call_id, f"result {n}")
    total = session.state.last_seq
    snapshot = guard.store.latest_snapshot(session.id)
    assert snapshot is not None and total > 2000
    tail = total - snapshot.seq
    assert 0 < tail <= 300
    store = CountingStore(tmp_path / "s.db")
    opened = Guard(policy, store).open_session(session.id)  # type: ignore[arg-type]
    assert (opened.state.last_seq, opened.state.last_hash) == (session.state.last_seq, session.state.last_hash)
    assert store.events_read == tail + 1  # the tail, and the first event (which policy the session began under)
    store.events_read = 0
    Guard(policy, store).resume_session(session.id)  # type: ignore[arg-type]
    assert store.events_read >= total  # the whole chain is verified first
