"""The embedded event store: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tether.errors import DuplicateCall, StaleSession, StoreError
from tether.events import ApprovalAnswered, ApprovalRequested, CallProposed, Event, event_to_json
from tether.store._chain import (
    GENESIS,
    ChainHead,
    Durability,
    PendingApproval,
    SessionSummary,
    SnapshotRecord,
    StoredEvent,
    VerifyReport,
    chain_hash,
    verify_rows,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heads (
    session_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    first_time REAL NOT NULL,
    last_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    session_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    PRIMARY KEY (session_id, call_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approvals (
    session_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    call_hash TEXT NOT NULL,
    tool TEXT NOT NULL,
    args BLOB NOT NULL,
    summary TEXT NOT NULL,
    requested_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (session_id, call_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policies (hash TEXT PRIMARY KEY, name TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    digest TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '2');
"""
# Only the events and heads tables are the record; calls, approvals and snapshots are
# indexes derived from it (the guard re-checks them against the chain before relying on them).

_SYNC = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_KEEP_SNAPSHOTS = 2


class SQLiteStore:
    """Append-only, hash-chained event log in a SQLite database.

    Several processes may share one file: each append runs in an immediate
    transaction that checks the session's head against the sequence number the
    writer expects, so chains stay linear and no writer commits on stale state.
    ``path=":memory:"`` gives a private in-memory store.
    """

    def __init__(self, path: str | Path = "tether.db", *, durability: Durability = "normal", timeout_s: float = 30.0) -> None:
        self.path = str(path)
        """The database file."""
        self.durability: Durability = durability
        """How hard commits work to survive a crash (see :data:`Durability`)."""
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_SYNC[durability]}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open event store {self.path!r}: {exc}") from exc

    def append(self, session_id: str, events: Sequence[Event], *, expect_seq: int | None = None) -> list[StoredEvent]:
        """Append ``events`` to ``session_id``'s chain in one transaction (see ``EventStore.append``)."""
        if not events:
            return []
        bodies = [event_to_json(e) for e in events]
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    stored = self._append_locked(db, session_id, events, bodies, expect_seq)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot append to event store {self.path!r}: {exc}") from exc
            return stored

    def _append_locked(
        self, db: sqlite3.Connection, session_id: str, events: Sequence[Event], bodies: list[bytes], expect_seq: int | None
    ) -> list[StoredEvent]:
        row = db.execute("SELECT seq, hash, first_time FROM heads WHERE session_id = ?", (session_id,)).fetchone()
        seq, prev, first = (row[0], row[1], row[2]) if row else (0, GENESIS, None)
        if expect_seq is not None and seq != expect_seq:
            raise StaleSession(session_id, expect_seq, seq)
        stored: list[StoredEvent] = []
        rows = []
        proposed: dict[str, CallProposed] = {}
        for event, body in zip(events, bodies, strict=True):
            seq += 1
            digest = chain_hash(prev, seq, body)
            stored.append(StoredEvent(session_id, seq, body, prev, digest, event))
            rows.append((session_id, seq, body, prev, digest))
            prev = digest
            if isinstance(event, CallProposed):
                proposed[event.call_id] = event
                try:
                    db.execute("INSERT INTO calls (session_id, call_id) VALUES (?, ?)", (session_id, event.call_id))
                except sqlite3.IntegrityError:
                    raise DuplicateCall(session_id, event.call_id) from None
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
        db.executemany("INSERT INTO events (session_id, seq, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?)", rows)
        start = first if first is not None else events[0].time
        db.execute(
            "INSERT INTO heads (session_id, seq, hash, first_time, last_time) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(session_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, last_time = excluded.last_time",
            (session_id, seq, prev, start, events[-1].time),
        )
        return stored

    def read(self, session_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        """The session's events after ``after_seq``, in chain order."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, body, prev_hash, hash FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (session_id, after_seq, -1 if limit is None else limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc
        if any(not isinstance(r[1], bytes) for r in rows):
            raise StoreError(
                f"session {session_id!r} has an event body that is not bytes (the row was rewritten); run 'tether audit verify'"
            )
        return [StoredEvent(session_id, r[0], r[1], r[2], r[3]) for r in rows]

    def head(self, session_id: str) -> ChainHead | None:
        """Where the session's chain ends."""
        row = self._one("SELECT seq, hash FROM heads WHERE session_id = ?", (session_id,))
        return None if row is None else ChainHead(session_id, row[0], row[1])

    def sessions(self) -> list[SessionSummary]:
        """Every session, oldest first."""
        rows = self._all("SELECT session_id, seq, first_time, last_time, hash FROM heads ORDER BY first_time, session_id", ())
        return [SessionSummary(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def verify(self, session_ids: Sequence[str] | None = None, *, expect: Sequence[ChainHead] = ()) -> VerifyReport:
        """Recompute every hash; report the first event where a chain breaks (see ``EventStore.verify``)."""
        with self._lock:
            try:
                if session_ids is None:
                    heads = {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT session_id, seq, hash FROM heads")}
                    cursor = self._db.execute("SELECT session_id, seq, body, prev_hash, hash FROM events ORDER BY session_id, seq")
                    return verify_rows(cursor, heads, expect)
                ids = list(dict.fromkeys([*session_ids, *(h.session_id for h in expect)]))
                total_sessions = total_events = 0
                for sid in ids:
                    heads = {
                        r[0]: (r[1], r[2]) for r in self._db.execute("SELECT session_id, seq, hash FROM heads WHERE session_id = ?", (sid,))
                    }
                    cursor = self._db.execute(
                        "SELECT session_id, seq, body, prev_hash, hash FROM events WHERE session_id = ? ORDER BY seq", (sid,)
                    )
                    report = verify_rows(cursor, heads, [h for h in expect if h.session_id == sid])
                    total_sessions += report.sessions
                    total_events += report.events
                    if not report.ok:
                        return VerifyReport(total_sessions, total_events, report.problem)
                return VerifyReport(total_sessions, total_events, None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc

    def put_policy(self, policy_hash: str, name: str, text: str) -> None:
        """Keep a policy's text under its content hash."""
        self._write("INSERT OR IGNORE INTO policies (hash, name, text) VALUES (?, ?, ?)", (policy_hash, name, text))

    def get_policy(self, policy_hash: str) -> str | None:
        """The text of a stored policy."""
        row = self._one("SELECT text FROM policies WHERE hash = ?", (policy_hash,))
        return None if row is None else str(row[0])

    def put_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Keep a snapshot; only the newest few per session are kept."""
        s = snapshot
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT OR REPLACE INTO snapshots (session_id, seq, hash, policy_hash, digest, body) VALUES (?, ?, ?, ?, ?, ?)",
                        (s.session_id, s.seq, s.hash, s.policy_hash, s.digest, s.body),
                    )
                    self._db.execute(
                        "DELETE FROM snapshots WHERE session_id = ? AND seq NOT IN "
                        "(SELECT seq FROM snapshots WHERE session_id = ? ORDER BY seq DESC LIMIT ?)",
                        (s.session_id, s.session_id, _KEEP_SNAPSHOTS),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write a snapshot to {self.path!r}: {exc}") from exc

    def latest_snapshot(self, session_id: str) -> SnapshotRecord | None:
        """The newest snapshot of a session."""
        row = self._one(
            "SELECT seq, hash, policy_hash, body, digest FROM snapshots WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (session_id,)
        )
        if row is None or not isinstance(row[3], bytes):
            return None
        return SnapshotRecord(session_id, row[0], row[1], row[2], row[3], row[4])

    def pending_approvals(self) -> list[PendingApproval]:
        """Approval requests without an answer in the log, oldest first."""
        rows = self._all(
            "SELECT session_id, call_id, tool, args, summary, requested_at, expires_at FROM approvals ORDER BY requested_at, session_id", ()
        )
        return [PendingApproval(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def _one(self, sql: str, params: tuple[object, ...]) -> Any:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to event store {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
