"""The PostgreSQL store's append: the careful path (read the head under the session's lock) and
the one-round-trip path (a pipeline built on the head the store last saw).

Both run in one transaction that takes the session's advisory lock first, so a ``turn`` of
another store holds them off. What keeps one linear chain is the database's own keys:
``events (session_id, seq)`` refuses a second event at a position, ``calls (session_id,
call_id)`` a second use of a call id, and the head moves only from the seq and hash it had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors

from tether.errors import DuplicateCall, StaleSession, StoreError
from tether.events import ApprovalAnswered, ApprovalRequested, CallProposed, Event
from tether.store._chain import GENESIS, StoredEvent, chain_hash
from tether.store._postgres_notify import CHANNEL

Conn = psycopg.Connection[tuple[Any, ...]]

LOCK_SPACE = 0x7465_7468
"""First key of the per-session advisory locks (``'teth'``); the second is a hash of the id."""

_INSERT_EVENT = "INSERT INTO events (session_id, seq, body, prev_hash, hash) VALUES (%s, %s, %s, %s, %s)"
_ADVANCE_HEAD = (
    # Fails (division by zero) unless exactly the expected head moved: the pipeline then rolls back.
    "WITH moved AS (UPDATE heads SET seq = %s, hash = %s, last_time = %s WHERE session_id = %s AND seq = %s AND hash = %s RETURNING 1) "
    "SELECT 1 / (SELECT count(*) FROM moved)::int"
)
_APPROVAL = (
    "INSERT INTO approvals (session_id, call_id, call_hash, tool, args, summary, requested_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (session_id, call_id) DO UPDATE SET "
    "call_hash = EXCLUDED.call_hash, tool = EXCLUDED.tool, args = EXCLUDED.args, summary = EXCLUDED.summary, "
    "requested_at = EXCLUDED.requested_at, expires_at = EXCLUDED.expires_at"
)


def session_key(session_id: str) -> int:
    """The second key of a session's advisory lock: a signed 32-bit hash of its id (two
    sessions that share one only take turns)."""
    return int.from_bytes(hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "little", signed=True)


def link(session_id: str, events: Sequence[Event], bodies: Sequence[bytes], seq: int, prev: str) -> list[StoredEvent]:
    """Chain ``events`` onto (``seq``, ``prev``)."""
    stored: list[StoredEvent] = []
    for event, body in zip(events, bodies, strict=True):
        seq += 1
        digest = chain_hash(prev, seq, body)
        stored.append(StoredEvent(session_id, seq, body, prev, digest, event))
        prev = digest
    return stored


def append_pipelined(
    conn: Conn,
    session_id: str,
    events: Sequence[Event],
    bodies: Sequence[bytes],
    known: tuple[int, str],
    sending_commit: Callable[[], None],
) -> list[StoredEvent] | None:
    """Append on the head ``known`` in one round trip; None (nothing written) when the head or a
    call id says otherwise, and the caller takes the careful path. ``sending_commit`` is called
    before the COMMIT goes out (from then on the outcome is unknown if the connection dies)."""
    stored = link(session_id, events, bodies, *known)
    head = stored[-1]
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, session_key(session_id)))
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT_EVENT, [(session_id, s.seq, s.body, s.prev_hash, s.hash) for s in stored])
            conn.execute(_ADVANCE_HEAD, (head.seq, head.hash, events[-1].time, session_id, known[0], known[1]))
            _index(conn, session_id, events, strict=True)
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{head.seq}:{session_id}"))
            sending_commit()
            conn.execute("COMMIT")
    except psycopg.Error as exc:
        if not conn.closed and not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        if isinstance(exc, pg_errors.UniqueViolation | pg_errors.DivisionByZero):
            return None
        raise
    return stored


def append_locked(
    conn: Conn, session_id: str, events: Sequence[Event], bodies: Sequence[bytes], expect_seq: int | None
) -> list[StoredEvent]:
    """The careful append, in its transaction, with the session's lock held: read the head,
    refuse a stale ``expect_seq`` or an archived session, link, write."""
    row = conn.execute("SELECT seq, hash FROM heads WHERE session_id = %s", (session_id,)).fetchone()
    seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
    if expect_seq is not None and seq != expect_seq:
        raise StaleSession(session_id, expect_seq, seq)
    if row is None and conn.execute("SELECT 1 FROM archived WHERE session_id = %s", (session_id,)).fetchone() is not None:
        raise StoreError(f"session {session_id!r} was archived; it cannot be continued in this store")
    stored = link(session_id, events, bodies, seq, prev)
    head = stored[-1]
    if row is None:
        conn.execute(
            "INSERT INTO heads (session_id, seq, hash, first_time, last_time) VALUES (%s, %s, %s, %s, %s)",
            (session_id, head.seq, head.hash, events[0].time, events[-1].time),
        )
    else:
        moved = conn.execute(
            "UPDATE heads SET seq = %s, hash = %s, last_time = %s WHERE session_id = %s AND seq = %s AND hash = %s",
            (head.seq, head.hash, events[-1].time, session_id, row[0], row[1]),
        )
        if moved.rowcount != 1:  # a writer that bypassed the lock: the database still keeps one chain
            raise StaleSession(session_id, int(row[0]), -1)
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_EVENT, [(session_id, s.seq, s.body, s.prev_hash, s.hash) for s in stored])
    _index(conn, session_id, events, strict=False)
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{head.seq}:{session_id}"))
    return stored


def _index(conn: Conn, session_id: str, events: Sequence[Event], *, strict: bool) -> None:
    """Keep the derived indexes (call ids, pending approvals) in the append's transaction.

    ``strict`` (in a pipeline, where no result can be looked at before the commit): a used call
    id fails the transaction on the primary key. Otherwise it is found and named
    (``DuplicateCall``)."""
    proposed: dict[str, CallProposed] = {}
    for event in events:
        if isinstance(event, CallProposed):
            proposed[event.call_id] = event
            if strict:
                conn.execute("INSERT INTO calls (session_id, call_id) VALUES (%s, %s)", (session_id, event.call_id))
                continue
            claimed = conn.execute(
                "INSERT INTO calls (session_id, call_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (session_id, event.call_id)
            )
            if claimed.rowcount != 1:
                raise DuplicateCall(session_id, event.call_id)
        elif isinstance(event, ApprovalRequested):
            call = proposed.get(event.call_id)
            args = orjson.dumps(call.args if call else None)
            row = (session_id, event.call_id, event.call_hash, call.tool if call else "", args, event.summary, event.time, event.expires_at)
            conn.execute(_APPROVAL, row)
        elif isinstance(event, ApprovalAnswered):
            conn.execute(
                "DELETE FROM approvals WHERE session_id = %s AND call_id = %s AND call_hash = %s",
                (session_id, event.call_id, event.call_hash),
            )
