"""``known_head``: the head a store vouches for without reading the log (what lets a guard
worker skip its catch-up read). Both back ends vouch for their own last append and stop
vouching for it once another connection has appended: SQLite at once (``PRAGMA data_version``),
PostgreSQL when the notification arrives (LISTEN/NOTIFY)."""

from __future__ import annotations

import time

from tests.store.conftest import Backend

from tether.events import CallProposed, DecisionMade
from tether.store import PostgresStore, SQLiteStore

SID = "s"


def _check(store: SQLiteStore | PostgresStore, call_id: str, expect_seq: int) -> int:
    """Append a logged check; returns the new head."""
    events = [
        CallProposed(session_id=SID, call_id=call_id, tool="t", args={"a": 1}, call_hash="h"),
        DecisionMade(session_id=SID, call_id=call_id, verdict="allow", policy_hash="p"),
    ]
    return store.append(SID, events, expect_seq=expect_seq)[-1].seq


def _store(backend: Backend) -> SQLiteStore | PostgresStore:
    store = backend.open()
    assert isinstance(store, SQLiteStore | PostgresStore)
    return store


def test_a_store_vouches_for_its_own_append_until_another_connection_appends(backend: Backend) -> None:
    a, b = _store(backend), _store(backend)
    assert a.known_head(SID) is None  # the first look vouches for nothing (PostgreSQL starts listening)
    seq, n = 0, 0
    deadline = time.monotonic() + 10
    while True:  # PostgreSQL vouches only for appends made while its listener was listening
        n += 1
        seq = _check(a, f"c{n}", seq)
        if a.known_head(SID) == seq:
            break
        assert time.monotonic() < deadline, "the store never vouched for its own append"
        time.sleep(0.05)
    assert a.known_head(SID) == seq and a.known_head("another session") is None
    later = _check(b, "by-b", seq)
    deadline = time.monotonic() + 10
    while a.known_head(SID) == seq:  # at once on SQLite; when the notification arrives on PostgreSQL
        assert backend.name == "postgres" and time.monotonic() < deadline, "a commit by another connection went unseen"
        time.sleep(0.01)
    assert a.known_head(SID) in (None, later)
    head = a.head(SID)
    assert head is not None and head.seq == later
