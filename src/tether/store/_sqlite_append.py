"""The SQLite store's append: link the events onto the head, move the head conditionally, insert
the events and keep the derived indexes (call ids, pending approvals), in the append's transaction.

The chain is linked before the write lock from the head the store last saw; under the lock one
conditional ``UPDATE`` of the head proves it is still the head (else the head is read and the
events linked again), so a writer never commits on a head another one moved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import orjson

from tether.errors import StaleSession, StoreError
from tether.events import ApprovalAnswered, ApprovalRequested, CallProposed, Event, PlanDeclared
from tether.store._chain import GENESIS, StoredEvent, chain_hash
from tether.store._sqlite_schema import SEQ_LIMIT, claim_call

ADVANCE_HEAD = "UPDATE heads SET seq = ?, hash = ?, last_time = ? WHERE session_id = ? AND seq = ? AND hash = ?"
"""Move a session's head, only from the seq and hash it had."""
INSERT_EVENTS = "INSERT INTO chain (id, sid, seq, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)"
"""Insert chain rows (``id`` is the interned session id times ``SEQ_LIMIT`` plus the seq)."""
Rows = list[tuple[int, int, int, bytes, str, str]]
"""Rows of the ``chain`` table, as ``INSERT_EVENTS`` takes them."""


def append_locked(
    db: sqlite3.Connection,
    session_id: str,
    sid: int | None,
    events: Sequence[Event],
    bodies: list[bytes],
    expect_seq: int | None,
    known: tuple[int, str] | None,
    linked: tuple[list[StoredEvent], Rows] | None,
    remember: Callable[[str, int, str], None],
) -> tuple[list[StoredEvent], int]:
    """Append under the write lock: from the head linked before the lock when it is still the head
    (one conditional update), else from the head read now; ``StaleSession`` (the head read is
    passed to ``remember``) when it is not ``expect_seq``. The stored events and the session's
    interned id."""
    last_time = events[-1].time
    if linked is not None and known is not None:
        head = linked[0][-1]
        if db.execute(ADVANCE_HEAD, (head.seq, head.hash, last_time, session_id, known[0], known[1])).rowcount != 1:
            linked = None
    if linked is None:
        # No usable hint, or another writer moved the head: read it (we hold the lock).
        row = db.execute("SELECT seq, hash FROM heads WHERE session_id = ?", (session_id,)).fetchone()
        seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        if expect_seq is not None and seq != expect_seq:
            remember(session_id, seq, prev)
            raise StaleSession(session_id, expect_seq, seq)
        if row is None and db.execute("SELECT 1 FROM archived WHERE session_id = ?", (session_id,)).fetchone() is not None:
            raise StoreError(f"session {session_id!r} was archived; it cannot be continued in this store")
        if sid is None:
            sid = intern_session(db, session_id)
        linked = link(session_id, sid, events, bodies, seq, prev)
        head = linked[0][-1]
        if row is None:
            db.execute(
                "INSERT INTO heads (session_id, seq, hash, first_time, last_time) VALUES (?, ?, ?, ?, ?)",
                (session_id, head.seq, head.hash, events[0].time, last_time),
            )
        else:
            db.execute(ADVANCE_HEAD, (head.seq, head.hash, last_time, session_id, seq, prev))
    stored, rows = linked
    assert sid is not None  # linked before the lock only with a known sid
    db.executemany(INSERT_EVENTS, rows)
    index_events(db, session_id, sid, events)
    return stored, sid


def index_events(db: sqlite3.Connection, session_id: str, sid: int, events: Sequence[Event]) -> None:
    """Keep the derived indexes (call ids, pending approvals) in the append's transaction."""
    proposed: dict[str, CallProposed | PlanDeclared] = {}
    for event in events:
        if isinstance(event, CallProposed | PlanDeclared):  # a plan is approved like a call of ``tether.plan``
            proposed[event.call_id] = event
            claim_call(db, sid, session_id, event.call_id)
        elif isinstance(event, ApprovalRequested):
            call = proposed.get(event.call_id)
            db.execute(
                "INSERT OR REPLACE INTO approvals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    event.call_id,
                    event.call_hash,
                    call.tool if call else "",
                    orjson.dumps(call.args if call else None),
                    event.summary,
                    event.time,
                    event.expires_at,
                ),
            )
        elif isinstance(event, ApprovalAnswered):
            db.execute(
                "DELETE FROM approvals WHERE session_id = ? AND call_id = ? AND call_hash = ?",
                (session_id, event.call_id, event.call_hash),
            )


def link(session_id: str, sid: int, events: Sequence[Event], bodies: list[bytes], seq: int, prev: str) -> tuple[list[StoredEvent], Rows]:
    """Chain ``events`` onto (``seq``, ``prev``): the stored events and their table rows."""
    if seq + len(events) >= SEQ_LIMIT:
        raise StoreError(f"session {session_id!r} would pass {SEQ_LIMIT} events")
    stored: list[StoredEvent] = []
    rows: Rows = []
    base = sid * SEQ_LIMIT
    for event, body in zip(events, bodies, strict=True):
        seq += 1
        digest = chain_hash(prev, seq, body)
        stored.append(StoredEvent(session_id, seq, body, prev, digest, event))
        rows.append((base + seq, sid, seq, body, prev, digest))
        prev = digest
    return stored, rows


def intern_session(db: sqlite3.Connection, session_id: str) -> int:
    """The session's interned id, created on its first append (in the append's transaction)."""
    row = db.execute("SELECT sid FROM session_ids WHERE session_id = ?", (session_id,)).fetchone()
    if row is not None:
        return int(row[0])
    sid = db.execute("INSERT INTO session_ids (session_id) VALUES (?)", (session_id,)).lastrowid
    assert sid is not None
    return sid
