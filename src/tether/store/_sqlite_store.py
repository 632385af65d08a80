"""The embedded event store: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from tether.errors import StoreError
from tether.store._chain import (
    GENESIS,
    Durability,
    SessionSummary,
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '1');
"""

_SYNC = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}


class SQLiteStore:
    """Append-only, hash-chained event log in a SQLite database.

    Several processes may share one file: each append runs in an immediate
    transaction that reads the session's head, so chains stay linear.
    ``path=":memory:"`` gives a private in-memory store.
    """

    def __init__(self, path: str | Path = "tether.db", *, durability: Durability = "normal", timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.durability: Durability = durability
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

    def append(self, session_id: str, bodies: Sequence[bytes], times: Sequence[float] | None = None) -> list[StoredEvent]:
        """Append events (serialised bodies) to ``session_id``'s chain in one transaction."""
        if not bodies:
            return []
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute("SELECT seq, hash, first_time FROM heads WHERE session_id = ?", (session_id,)).fetchone()
                    seq, prev, first = (row[0], row[1], row[2]) if row else (0, GENESIS, None)
                    stored: list[StoredEvent] = []
                    rows = []
                    for body in bodies:
                        seq += 1
                        digest = chain_hash(prev, seq, body)
                        stored.append(StoredEvent(session_id, seq, body, prev, digest))
                        rows.append((session_id, seq, body, prev, digest))
                        prev = digest
                    db.executemany("INSERT INTO events (session_id, seq, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?)", rows)
                    now = times[-1] if times else 0.0
                    start = first if first is not None else (times[0] if times else 0.0)
                    db.execute(
                        "INSERT INTO heads (session_id, seq, hash, first_time, last_time) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT(session_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, last_time = excluded.last_time",
                        (session_id, seq, prev, start, now),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot append to event store {self.path!r}: {exc}") from exc
            return stored

    def read(self, session_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The session's events after ``after_seq``, in chain order."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, body, prev_hash, hash FROM events WHERE session_id = ? AND seq > ? ORDER BY seq",
                    (session_id, after_seq),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc
        if any(not isinstance(r[1], bytes) for r in rows):
            raise StoreError(
                f"session {session_id!r} has an event body that is not bytes (the row was rewritten); run 'tether audit verify'"
            )
        return [StoredEvent(session_id, r[0], r[1], r[2], r[3]) for r in rows]

    def sessions(self) -> list[SessionSummary]:
        """Every session, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT session_id, seq, first_time, last_time, hash FROM heads ORDER BY first_time, session_id"
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc
        return [SessionSummary(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def verify(self, session_ids: Sequence[str] | None = None) -> VerifyReport:
        """Recompute every hash; report the first event where a chain breaks."""
        with self._lock:
            try:
                if session_ids is None:
                    heads = {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT session_id, seq, hash FROM heads")}
                    cursor = self._db.execute("SELECT session_id, seq, body, prev_hash, hash FROM events ORDER BY session_id, seq")
                    return verify_rows(cursor, heads)
                total_sessions = total_events = 0
                for sid in session_ids:
                    heads = {
                        r[0]: (r[1], r[2]) for r in self._db.execute("SELECT session_id, seq, hash FROM heads WHERE session_id = ?", (sid,))
                    }
                    cursor = self._db.execute(
                        "SELECT session_id, seq, body, prev_hash, hash FROM events WHERE session_id = ? ORDER BY seq", (sid,)
                    )
                    report = verify_rows(cursor, heads)
                    total_sessions += report.sessions
                    total_events += report.events
                    if not report.ok:
                        return VerifyReport(total_sessions, total_events, report.problem)
                return VerifyReport(total_sessions, total_events, None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
