"""The shared event store: one PostgreSQL database, for many processes and machines."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from tether.errors import StaleSession, StoreError
from tether.events import Event, event_to_json
from tether.store import _token_rows as token_rows
from tether.store._chain import (
    ArchivedSession,
    ChainHead,
    Durability,
    SessionSummary,
    SnapshotRecord,
    StoredEvent,
    VerifyReport,
    session_summaries,
    verify_rows,
)
from tether.store._pending import POSTGRES, PendingIndex
from tether.store._postgres_append import LOCK_SPACE, append_locked, append_pipelined, session_key
from tether.store._postgres_notify import CHANNEL, ChangeListener
from tether.store._postgres_schema import open_schema
from tether.store._token_rows import TokenRecord

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

_KEEP_SNAPSHOTS = 2
_KNOWN_HEADS = 4096
"""How many sessions' heads a store remembers between appends."""
_SYNC = {"full": "on", "normal": "on", "off": "off"}
"""``synchronous_commit`` per durability. ``normal`` is ``on`` as ``full``: a server restart is an
everyday event for a shared database, and an acknowledged call must survive it."""
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


class PostgresStore(PendingIndex):
    """Append-only, hash-chained event log in a PostgreSQL database (see ``EventStore``).

    Many processes on many machines may share one database. An append runs in one
    transaction: it takes a transaction-level advisory lock on its session (appends to other
    sessions go on in parallel), reads the session's head, refuses a head that is not
    ``expect_seq`` (:class:`~tether.errors.StaleSession`), inserts the events and moves the
    head with a conditional update; the primary key ``(session_id, seq)`` makes the database
    itself refuse a second event at one position. The commit notifies ``tether_events``, so
    :meth:`wait_for_change` wakes without polling.

    The connection is opened again after a failure (a server restart): while the server
    cannot be reached every call raises :class:`~tether.errors.StoreError`, which a session
    turns into denials (fail closed). Durability: ``full`` and ``normal`` commit with
    ``synchronous_commit = on`` (the commit is flushed to the server's WAL before it
    returns); ``off`` with ``synchronous_commit = off`` (a server crash may lose the last
    commits; for tests and benchmarks).
    """

    pending_dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        durability: Durability = "normal",
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        create: bool = True,
    ) -> None:
        self.url = url
        """The connection URL (``postgresql://user@host:port/database``)."""
        self.durability: Durability = durability
        """How hard commits work to survive a crash (see the class docstring)."""
        self.timeout_s = timeout_s
        """How long an operation waits for another writer's lock before failing."""
        self.connect_timeout_s = connect_timeout_s
        """How long connecting may take before the store counts as unavailable."""
        self.display = _PASSWORD.sub(r"\1***@", url)
        """The URL without its password, for messages."""
        self._lock = threading.RLock()
        self._conn: Conn | None = None
        self._turn: set[str] | None = None
        """Sessions locked by the open ``turn()`` (None: no turn open)."""
        self._listener: ChangeListener | None = None
        self._commit_sent = False
        """The running operation sent COMMIT (its outcome is unknown if the connection died)."""
        self._heads: dict[str, tuple[int, str]] = {}
        """Heads this store last saw per session: a hint for one-round-trip appends (the
        primary keys check it)."""
        self._vouched: dict[str, tuple[int, int]] = {}
        """Heads of this store's own last appends, with the listener's epoch before each (see :meth:`known_head`)."""
        try:
            self._run("open", lambda conn: open_schema(conn, self.display, create=create))
        except StoreError:
            self.close()
            raise

    # ------------------------------------------------------------ connection

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s)), application_name="tether"
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to event store {self.display}: {_first_line(exc)}") from exc
        # No server-side prepared statements: a statement prepared inside a pipeline that an error
        # aborted is never created on the server, and psycopg would go on naming it.
        conn.prepare_threshold = None
        try:
            conn.execute(f"SET synchronous_commit = {_SYNC[self.durability]}")
            conn.execute(f"SET lock_timeout = {max(1, round(self.timeout_s * 1000))}")
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot set up a connection to event store {self.display}: {_first_line(exc)}") from exc
        return conn

    def _connection(self) -> Conn:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            conn = self._conn = self._connect()
        return conn

    def _run(self, what: str, work: Callable[[Conn], T]) -> T:
        """Run ``work`` on the connection; database errors become ``StoreError``.

        A connection found dead (the server restarted since its last use) is opened again and
        ``work`` run once more, unless a COMMIT was already sent on it (the outcome of that
        transaction is unknown: the caller reads the log to learn it) or a ``turn`` was open
        (its lock is gone with the connection; the turn fails)."""
        with self._lock:
            retried = False
            while True:
                self._commit_sent = False
                try:
                    return work(self._connection())
                except psycopg.Error as exc:
                    conn = self._conn
                    lost = conn is None or conn.closed or conn.broken
                    in_turn = self._turn is not None
                    self._abandon_turn()
                    if not retried and lost and not in_turn and not self._commit_sent and isinstance(exc, psycopg.OperationalError):
                        retried = True
                        continue
                    if isinstance(exc, pg_errors.LockNotAvailable):
                        raise StoreError(f"event store {self.display} stayed locked for {self.timeout_s} s: {_first_line(exc)}") from exc
                    raise StoreError(f"cannot {what} event store {self.display}: {_first_line(exc)}") from exc

    def _abandon_turn(self) -> None:
        if self._turn is not None:
            self._turn = None
            conn = self._conn
            if conn is not None and not conn.closed and not conn.broken:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()

    @contextmanager
    def _transaction(self, conn: Conn) -> Iterator[None]:
        """A transaction of its own, or the open turn's (which this commits or rolls back: a
        turn ends with its first write)."""
        in_turn = self._turn is not None
        self._turn = None
        if not in_turn:
            conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if not conn.closed and not conn.broken:
                conn.execute("ROLLBACK")
            raise
        self._commit_sent = True
        conn.execute("COMMIT")

    def _lock_session(self, conn: Conn, session_id: str) -> None:
        """Take the session's advisory lock for the rest of the transaction."""
        if self._turn is not None:
            if session_id in self._turn:
                return
            self._turn.add(session_id)
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, session_key(session_id)))

    # ------------------------------------------------------------ writing

    def append(self, session_id: str, events: Sequence[Event], *, expect_seq: int | None = None) -> list[StoredEvent]:
        """Append ``events`` to ``session_id``'s chain in one transaction (see ``EventStore.append``).

        When this store knows the session's head (its last append or full read) and the caller
        expects it, the whole transaction goes to the server in one round trip (a pipeline:
        lock, insert, move the head, commit); the primary keys refuse it if another writer got
        there first, and the append is then done the careful way: read the head under the lock,
        compare, link, write."""
        if not events:
            return []
        bodies = [event_to_json(e) for e in events]
        listener = self._listener
        epoch = listener.epoch() if listener is not None else None  # before the commit: see known_head

        def write(conn: Conn) -> list[StoredEvent]:
            known = self._heads.get(session_id)
            stored: list[StoredEvent] | None = None
            if known is not None and self._turn is None and (expect_seq is None or expect_seq == known[0]):
                stored = append_pipelined(conn, session_id, events, bodies, known, self._sent_commit)
            if stored is None:
                self._heads.pop(session_id, None)
                with self._transaction(conn):
                    self._lock_session(conn, session_id)
                    try:
                        stored = append_locked(conn, session_id, events, bodies, expect_seq)
                    except pg_errors.UniqueViolation as exc:  # a writer that bypassed the lock got there first
                        raise StaleSession(session_id, -1 if expect_seq is None else expect_seq, -1) from exc
            self._remember(session_id, stored[-1].seq, stored[-1].hash)
            if epoch is not None:
                if len(self._vouched) >= _KNOWN_HEADS:
                    self._vouched.clear()
                self._vouched[session_id] = (stored[-1].seq, epoch)
            return stored

        return self._run("append to", write)

    def known_head(self, session_id: str) -> int | None:
        """The head of ``session_id`` as far as this store can vouch for it without a round trip:
        the sequence number of its own last append, or a later one that another writer's commit
        notified (LISTEN/NOTIFY), while the listener has been listening without a break since
        before that append; None when it cannot say (the first call starts listening).

        Notifications travel after their commit: another process's append may have committed
        and not be notified yet. A cache that relies on this must decide through appends that
        expect its head (``expect_seq``), which the database refuses when it is not."""
        with self._lock:
            if self._listener is None:
                self._listener = ChangeListener(self._connect)
                return None
            vouched = self._vouched.get(session_id)
            listener = self._listener
        if vouched is None or listener.epoch() != vouched[1]:
            return None
        return max(vouched[0], listener.notified(session_id))

    def _sent_commit(self) -> None:
        self._commit_sent = True

    def _remember(self, session_id: str, seq: int, hash: str) -> None:
        heads = self._heads
        if len(heads) >= _KNOWN_HEADS and session_id not in heads:
            heads.clear()
        heads[session_id] = (seq, hash)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Open a transaction and hold it until the next write (which commits it) or the end of
        the block: the first read of a session inside takes that session's advisory lock, so
        nobody can move its head before this store's append (see ``EventStore.turn``). Other
        threads of this store wait for the turn; a nested ``turn`` is part of the open one."""
        with self._lock:
            if self._turn is not None:
                yield
                return
            self._run("lock", lambda conn: conn.execute("BEGIN"))
            self._turn = set()
            try:
                yield
            finally:
                self._abandon_turn()

    def put_policy(self, policy_hash: str, name: str, text: str) -> None:
        """Keep a policy's text under its content hash."""
        self._write(
            "write to",
            lambda conn: conn.execute(
                "INSERT INTO policies (hash, name, text) VALUES (%s, %s, %s) ON CONFLICT (hash) DO NOTHING", (policy_hash, name, text)
            ),
        )

    def put_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Keep a snapshot; only the newest few per session are kept."""
        s = snapshot

        def write(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO snapshots (session_id, seq, hash, policy_hash, digest, body) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (session_id, seq) DO UPDATE SET hash = EXCLUDED.hash, policy_hash = EXCLUDED.policy_hash, "
                "digest = EXCLUDED.digest, body = EXCLUDED.body",
                (s.session_id, s.seq, s.hash, s.policy_hash, s.digest, s.body),
            )
            conn.execute(
                "DELETE FROM snapshots WHERE session_id = %s AND seq NOT IN "
                "(SELECT seq FROM snapshots WHERE session_id = %s ORDER BY seq DESC LIMIT %s)",
                (s.session_id, s.session_id, _KEEP_SNAPSHOTS),
            )

        self._write("write a snapshot to", write)

    def _write(self, what: str, work: Callable[[Conn], object]) -> None:
        def run(conn: Conn) -> None:
            with self._transaction(conn):
                work(conn)

        self._run(what, run)

    # ------------------------------------------------------------ reading

    def read(self, session_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        """The session's events after ``after_seq``, in chain order."""

        def fetch(conn: Conn) -> list[Any]:
            if self._turn is not None:
                self._lock_session(conn, session_id)
            return conn.execute(
                "SELECT seq, body, prev_hash, hash FROM events WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (session_id, max(after_seq, 0), limit),
            ).fetchall()

        rows = self._run("read", fetch)
        if rows and limit is None:
            # The last event read was the head when read: the next append links onto it.
            with self._lock:
                self._remember(session_id, rows[-1][0], rows[-1][3])
        return [StoredEvent(session_id, r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def head(self, session_id: str) -> ChainHead | None:
        """Where the session's chain ends."""

        def fetch(conn: Conn) -> Any:
            if self._turn is not None:
                self._lock_session(conn, session_id)
            return conn.execute("SELECT seq, hash FROM heads WHERE session_id = %s", (session_id,)).fetchone()

        row = self._run("read", fetch)
        return None if row is None else ChainHead(session_id, row[0], row[1])

    def sessions(self) -> list[SessionSummary]:
        """Every session, oldest first; times are those of the chained first and last events
        (as in ``SQLiteStore.sessions``)."""
        rows = self._all(
            "SELECT h.session_id, h.seq, h.hash, h.first_time, h.last_time, "
            "(SELECT body FROM events e WHERE e.session_id = h.session_id AND e.seq = 1), "
            "(SELECT body FROM events e WHERE e.session_id = h.session_id AND e.seq = h.seq) FROM heads h",
            (),
        )
        return session_summaries(rows)

    def verify(self, session_ids: Sequence[str] | None = None, *, expect: Sequence[ChainHead] = ()) -> VerifyReport:
        """Recompute every hash and check each recorded head against its chain, in one snapshot of
        the database; report the first problem (see ``EventStore.verify``)."""

        def run(conn: Conn) -> VerifyReport:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return self._verify(conn, session_ids, expect)
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("ROLLBACK")

        return self._run("read", run)

    def _verify(self, conn: Conn, session_ids: Sequence[str] | None, expect: Sequence[ChainHead]) -> VerifyReport:
        heads_sql = "SELECT session_id, seq, hash, first_time, last_time FROM heads"
        rows_sql = "SELECT session_id, seq, body, prev_hash, hash FROM events"
        if session_ids is None:
            heads, times = _heads(conn.execute(heads_sql).fetchall())
            with conn.cursor(name="tether_verify") as cursor:
                cursor.itersize = 2000
                cursor.execute(rows_sql + " ORDER BY session_id, seq")
                return verify_rows(_as_bytes(cursor), heads, expect, times=times)
        ids = list(dict.fromkeys([*session_ids, *(h.session_id for h in expect)]))
        total_sessions = total_events = 0
        for sid in ids:
            heads, times = _heads(conn.execute(heads_sql + " WHERE session_id = %s", (sid,)).fetchall())
            rows = conn.execute(rows_sql + " WHERE session_id = %s ORDER BY seq", (sid,)).fetchall()
            report = verify_rows(_as_bytes(rows), heads, [h for h in expect if h.session_id == sid], times=times)
            total_sessions += report.sessions
            total_events += report.events
            if not report.ok:
                return VerifyReport(total_sessions, total_events, report.problem)
        return VerifyReport(total_sessions, total_events, None)

    def get_policy(self, policy_hash: str) -> str | None:
        """The text of a stored policy."""
        rows = self._all("SELECT text FROM policies WHERE hash = %s", (policy_hash,))
        return None if not rows else str(rows[0][0])

    def latest_snapshot(self, session_id: str) -> SnapshotRecord | None:
        """The newest snapshot of a session."""
        rows = self._all(
            "SELECT seq, hash, policy_hash, body, digest FROM snapshots WHERE session_id = %s ORDER BY seq DESC LIMIT 1", (session_id,)
        )
        if not rows:
            return None
        r = rows[0]
        return SnapshotRecord(session_id, r[0], r[1], r[2], bytes(r[3]), r[4])

    def drop_session(self, head: ChainHead, *, archive: str, archived_at: float) -> None:
        """Delete a session that was copied to ``archive`` and record it as archived there, in
        one transaction under the session's lock; ``StaleSession`` when its head is no longer
        ``head`` (nothing deleted)."""
        sid = head.session_id
        self._vouched.pop(sid, None)

        def write(conn: Conn) -> None:
            with self._transaction(conn):
                self._lock_session(conn, sid)
                row = conn.execute("SELECT seq, hash FROM heads WHERE session_id = %s", (sid,)).fetchone()
                if row is None or (row[0], row[1]) != (head.seq, head.hash):
                    raise StaleSession(sid, head.seq, -1 if row is None else int(row[0]))
                for table in ("events", "heads", "calls", "approvals", "snapshots"):
                    conn.execute(f"DELETE FROM {table} WHERE session_id = %s".encode(), (sid,))
                conn.execute(
                    "INSERT INTO archived (session_id, seq, hash, archive, archived_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (session_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, "
                    "archive = EXCLUDED.archive, archived_at = EXCLUDED.archived_at",
                    (sid, head.seq, head.hash, archive, archived_at),
                )

        self._run("archive a session in", write)

    def archived(self) -> list[ArchivedSession]:
        """Sessions moved to an archive, with the heads they had (oldest archiving first)."""
        rows = self._all("SELECT session_id, seq, hash, archive, archived_at FROM archived ORDER BY archived_at, session_id", ())
        return [ArchivedSession(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def _all(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        return self._run("read", lambda conn: conn.execute(sql.encode(), params).fetchall())

    # ------------------------------------------------------------ service tokens

    def tokens(self, *, revoked: bool = False) -> list[TokenRecord]:
        """The service's live tokens, oldest first (``revoked=True``: every token ever added)."""
        return token_rows.records(self._all(token_rows.pg(token_rows.EVERY if revoked else token_rows.LIVE), ()))

    def find_token(self, digest: str) -> TokenRecord | None:
        """The live token whose SHA-256 is ``digest``."""
        found = token_rows.records(self._all(token_rows.pg(token_rows.BY_DIGEST), (digest,)))
        return found[0] if found else None

    def add_token(self, token: TokenRecord) -> bool:
        """Add a live token; False (nothing written) when a live token has its name or any token had its digest."""

        def write(conn: Conn) -> bool:
            with self._transaction(conn):
                cur = conn.execute((token_rows.pg(token_rows.INSERT) + " ON CONFLICT DO NOTHING").encode(), token_rows.row_of(token))
                return cur.rowcount > 0

        return self._run("write a token to", write)

    def revoke_token(self, name: str, revoked_at: float) -> bool:
        """Revoke the live token named ``name`` (its row stays, with the time); False when there is
        none. The commit notifies ``tether_events``, so streams waiting on the store see it."""

        def write(conn: Conn) -> bool:
            with self._transaction(conn):
                cur = conn.execute(token_rows.pg(token_rows.REVOKE).encode(), (revoked_at, name))
                if cur.rowcount > 0:
                    conn.execute(f"NOTIFY {CHANNEL}, 'tokens'")
                return cur.rowcount > 0

        return self._run("revoke a token in", write)

    # ------------------------------------------------------------ changes

    def wait_for_change(self, session_id: str | None, after_seq: int, timeout: float) -> bool:
        """Wait until ``session_id``'s head passes ``after_seq`` (``None``: until any append is
        notified) or ``timeout`` seconds pass; True when it moved. Woken by LISTEN/NOTIFY, so
        it answers as soon as the append commits, without polling; raises ``StoreError`` when
        the database cannot be read."""
        with self._lock:
            if self._listener is None:
                self._listener = ChangeListener(self._connect)
            listener = self._listener
        if session_id is None:
            return listener.wait_any(timeout)

        def current() -> int:
            head = self.head(session_id)
            return 0 if head is None else head.seq

        return listener.wait(session_id, after_seq, timeout, current)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection (and stop listening)."""
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A store dropped without close() still hangs up (as a sqlite3 connection would).
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.display!r})"


def _as_bytes(rows: Any) -> Iterator[tuple[str, int, bytes, str, str]]:
    for session_id, seq, body, prev_hash, hash_ in rows:
        yield session_id, seq, bytes(body) if isinstance(body, memoryview) else body, prev_hash, hash_


def _heads(rows: Sequence[tuple[Any, ...]]) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[float, float]]]:
    heads: dict[str, tuple[int, str]] = {}
    times: dict[str, tuple[float, float]] = {}
    for sid, seq, hash_, first, last in rows:
        heads[sid] = (seq, hash_)
        times[sid] = (first, last)
    return heads, times


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
