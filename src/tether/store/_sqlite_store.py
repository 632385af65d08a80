"""The embedded event store: one SQLite file in WAL mode."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tether.errors import StaleSession, StoreError
from tether.events import CallProposed, Event, event_to_json
from tether.store import _token_rows as token_rows
from tether.store._chain import (
    GENESIS,
    ArchivedSession,
    ChainHead,
    Durability,
    SessionSummary,
    SnapshotRecord,
    StoredEvent,
    VerifyReport,
    chain_break,
    event_time,
    session_summaries,
    verify_rows,
)
from tether.store._pending import SQLITE, PendingIndex
from tether.store._sqlite_append import INSERT_EVENTS, append_locked, intern_session, link
from tether.store._sqlite_schema import SEQ_LIMIT, claim_call, open_schema, refuse_foreign
from tether.store._token_rows import TokenRecord

# Only the events (chain) and heads tables are the record; call ids, approvals and snapshots
# are indexes derived from it (the guard re-checks them against the chain before relying on them).

T = TypeVar("T")

_SYNC = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
_KEEP_SNAPSHOTS = 2
_CHECKPOINT_PAGES = 4000
"""WAL pages before a commit also checkpoints (SQLite's default is 1000). A check writes about
four pages (six before schema 3), and the checkpoint, with its fsyncs, stalls the append that
runs it for a few ms: at 1000 that is one check in about 250, at 4000 one in about 1000, for
a WAL of up to 16 MiB."""
_FIRST_POLL_S = 2e-3
_MAX_POLL_S = 0.05
"""How often ``wait_for_change`` looks at the file: soon at first, then every 50 ms."""
_KNOWN_HEADS = 4096
"""How many sessions' heads a store remembers between appends (a hint, checked by SQL)."""
_FIRST_WAIT_S = 50e-6
_MAX_WAIT_S = 4e-3
"""Sleeps while another connection holds the write lock: jittered, starting below the
length of one append (SQLite's own busy handler starts at 1 ms, ten appends' time) and
doubling, so that when many processes wait on few cores most of them sleep instead of
polling and the lock's holder keeps its CPU."""

_CHAIN_ROWS = "SELECT ?, seq, body, prev_hash, hash FROM chain WHERE id BETWEEN ? AND ? AND sid = ? ORDER BY id"
_SID = "(SELECT sid FROM session_ids WHERE session_id = ?)"


class SQLiteStore(PendingIndex):
    """Append-only, hash-chained event log in a SQLite database (WAL mode).

    Several processes may share one file. An append takes SQLite's write lock first
    (``BEGIN IMMEDIATE``), then moves the session's head with one conditional
    ``UPDATE ... WHERE seq = expected AND hash = expected`` and inserts the events and
    call ids; a head that moved raises :class:`~tether.errors.StaleSession` and writes
    nothing, so chains stay linear and no writer commits on stale state. The tables are laid
    out so that an append changes few pages (see ``_sqlite_schema``); files of the first
    layout are migrated forward when opened. A writer that
    waits for the lock checks, without the lock, whether its session's head has moved
    and gives up at once if so: losing a race costs one indexed read.
    ``path=":memory:"`` gives a private in-memory store.

    Durability (``durability=``): ``append`` returns only after its transaction has
    committed, and a session runs a call only after ``append`` returned, so under every
    mode no call runs before its events are committed as that mode defines. What a
    committed append survives:

    * ``full`` (``synchronous=FULL``): the WAL is fsynced before the commit returns;
      it survives a crash of the process, of the OS and a power loss (on a disk that
      honours flushes).
    * ``normal`` (default, ``synchronous=NORMAL``): the commit is written to the WAL
      file before it returns but synced only at checkpoints; it survives a crash or kill
      of the process (the OS holds the data). An OS crash or power loss may roll back the
      last commits, whole transactions only (a session's chain loses a tail of appends,
      its head with them) and never corrupts the file.
    * ``off`` (``synchronous=OFF``): as ``normal`` for a process crash; an OS crash or
      power loss may lose recent commits and may corrupt the file. For tests and
      benchmarks.
    """

    pending_dialect = SQLITE

    def __init__(
        self, path: str | Path = "tether.db", *, durability: Durability = "normal", timeout_s: float = 30.0, read_only: bool = False
    ) -> None:
        self.path = str(path)
        """The database file."""
        self.durability: Durability = durability
        """How hard commits work to survive a crash (see :data:`Durability`)."""
        self.timeout_s = timeout_s
        """How long an operation waits for another connection's write lock before failing."""
        self.read_only = read_only
        """Opened for reading only (``audit verify``, listings): works on a read-only file or
        mount, and every write fails with a StoreError."""
        self._lock = threading.RLock()
        self._heads: dict[str, tuple[int, str]] = {}
        """Heads this store last saw per session: a hint that spares reading the head before
        an append (the conditional update checks it)."""
        self._sids: dict[str, int] = {}
        """Committed sessions' interned ids (``session_ids``), which never change."""
        self._turn_open = False
        """A ``turn()`` holds the write lock; the next write commits in its transaction."""
        self._commits = 0
        """Appends this store committed (``PRAGMA data_version`` counts only other connections')."""
        self._vouched: dict[str, int] = {}
        """Heads of this store's own last appends, while no other connection has committed (see :meth:`known_head`)."""
        self._vouched_version: int | None = None
        """``PRAGMA data_version`` when ``_vouched`` was last found good."""
        if not self.path.strip():
            # SQLite would open a temporary database that vanishes on close: a log that holds nothing.
            raise StoreError("the event store path is empty: name a file (or ':memory:' for a store that is not kept)")
        if self.path != ":memory:" and Path(self.path).is_dir():
            raise StoreError(f"cannot open event store {self.path!r}: it is a directory; name a file in it")
        try:
            self._db = self._connect() if read_only else self._connect_writable()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open event store {self.path!r}: {_cause(exc, self.path)}") from exc

    def _connect_writable(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        try:
            refuse_foreign(db, self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={_SYNC[self.durability]}")
            db.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            open_schema(db, self.path)
            # From here on this store waits for locks itself (see _wait): fine-grained, and a
            # writer whose session moved gives up instead of waiting.
            db.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            db.close()
            raise
        return db

    def _connect(self) -> sqlite3.Connection:
        """A read-only connection (SQLite URI ``mode=ro``). A WAL file on a read-only mount
        or in a read-only directory, where SQLite cannot make its shared-memory file, is read
        as immutable: an evidence copy that nobody writes."""
        if self.path == ":memory:":
            raise StoreError("a ':memory:' store cannot be opened read-only: it holds nothing")
        if not Path(self.path).is_file():
            raise StoreError(f"no event store at {self.path!r}")
        uri = Path(self.path).resolve().as_uri()
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            db = sqlite3.connect(uri + query, uri=True, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            try:
                open_schema(db, self.path, read_only=True)
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if query.endswith("immutable=1") or exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
                    raise
            except BaseException:
                db.close()
                raise
        raise AssertionError("unreachable")

    def append(self, session_id: str, events: Sequence[Event], *, expect_seq: int | None = None) -> list[StoredEvent]:
        """Append ``events`` to ``session_id``'s chain in one transaction (see ``EventStore.append``)."""
        if not events:
            return []
        bodies = [event_to_json(e) for e in events]
        with self._lock:
            known = self._heads.get(session_id)
            sid = self._sids.get(session_id)
            # Link the chain before taking the write lock, from the head this store last saw;
            # the conditional update below proves it is still the head.
            linked = None
            if known is not None and sid is not None and (expect_seq is None or expect_seq == known[0]):
                linked = link(session_id, sid, events, bodies, *known)
            db = self._db
            try:
                self._begin(session_id, expect_seq)
                try:
                    stored, sid = append_locked(db, session_id, sid, events, bodies, expect_seq, known, linked, self._remember)
                    db.commit()
                except BaseException:
                    # SQLite rolls back by itself on some errors (a full disk): a second
                    # rollback would hide the cause behind "no transaction is active".
                    if db.in_transaction:
                        db.rollback()
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot append to event store {self.path!r}: {_cause(exc, self.path)}") from exc
            self._remember(session_id, stored[-1].seq, stored[-1].hash, sid)
            self._commits += 1
            if len(self._vouched) >= _KNOWN_HEADS:
                self._vouched.clear()
            self._vouched[session_id] = stored[-1].seq
            return stored

    def known_head(self, session_id: str) -> int | None:
        """The head of ``session_id`` as far as this store can vouch for it without reading the
        log: the sequence number of its own last append to it, while no other connection has
        committed to the file since (``PRAGMA data_version``, one read of a shared page); None
        when it cannot say. A cache of the session that is at this sequence number is current."""
        with self._lock:
            try:
                version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None
            if version != self._vouched_version:
                self._vouched.clear()  # another connection committed: to any session, as far as we know
                self._vouched_version = version
                return None
            return self._vouched.get(session_id)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for the write lock now and hold it until the next write (which commits and
        releases it) or the end of the block.

        For a writer that lost a race: inside its turn it reads what it missed, decides
        again and appends, and no other writer can move the head in between, so it waits
        once instead of losing again and again to writers that are always up to date.
        The next ``append`` still returns only after its commit. Other threads of this
        store wait for the turn; a nested ``turn`` is part of the open one.
        """
        with self._lock:
            if self._turn_open:
                yield
                return
            try:
                self._begin(None, None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot lock event store {self.path!r}: {exc}") from exc
            self._turn_open = True
            try:
                yield
            finally:
                if self._turn_open:
                    self._turn_open = False
                    if self._db.in_transaction:
                        self._db.rollback()

    def _begin(self, session_id: str | None, expect_seq: int | None) -> None:
        """Take the write lock (``BEGIN IMMEDIATE``), or use the one a ``turn`` holds. While
        another connection holds it, raise ``StaleSession`` as soon as ``session_id``'s head
        has moved past ``expect_seq``."""
        if self._turn_open:
            self._turn_open = False
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            # Usually the lock is free: only a busy one costs the waiting loop's set-up.
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise

        def stale() -> None:
            if session_id is not None and expect_seq is not None:
                seq = self._head_seq(session_id)
                if seq != expect_seq:
                    raise StaleSession(session_id, expect_seq, seq)

        self._wait(lambda: self._db.execute("BEGIN IMMEDIATE"), stale)

    def _wait(self, attempt: Callable[[], T], between: Callable[[], None] | None = None) -> T:
        """Run ``attempt`` until it does not find the database locked, sleeping a short,
        jittered, growing interval between tries (``between`` runs first); StoreError after
        ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        pause = _FIRST_WAIT_S
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(f"event store {self.path!r} stayed locked for {self.timeout_s} s: {exc}") from exc
            if between is not None:
                between()
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _MAX_WAIT_S)

    def _head_seq(self, session_id: str) -> int:
        """The session's head sequence number, read without the write lock (0: no session)."""
        row = self._wait(lambda: self._db.execute("SELECT seq FROM heads WHERE session_id = ?", (session_id,)).fetchone())
        return 0 if row is None else int(row[0])

    def _remember(self, session_id: str, seq: int, hash: str, sid: int | None = None) -> None:
        heads = self._heads
        if len(heads) >= _KNOWN_HEADS and session_id not in heads:
            heads.clear()
            self._sids.clear()
        heads[session_id] = (seq, hash)
        if sid is not None:
            self._sids[session_id] = sid

    def read(self, session_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        """The session's events after ``after_seq``, in chain order."""
        rows = self._all(
            f"SELECT seq, body, prev_hash, hash, sid FROM chain WHERE id BETWEEN {_SID} * 4294967296 + ? + 1 "
            f"AND {_SID} * 4294967296 + 4294967295 ORDER BY id LIMIT ?",
            (session_id, max(after_seq, 0), session_id, -1 if limit is None else limit),
        )
        if any(not isinstance(r[1], bytes) for r in rows):
            raise StoreError(
                f"session {session_id!r} has an event body that is not bytes (the row was rewritten); run 'tether audit verify'"
            )
        if rows and limit is None:
            # The last event read was the head when read: a catching-up writer's next append
            # links onto it without reading the head again.
            with self._lock:
                self._remember(session_id, rows[-1][0], rows[-1][3], rows[-1][4])
        return [StoredEvent(session_id, r[0], r[1], r[2], r[3]) for r in rows]

    def head(self, session_id: str) -> ChainHead | None:
        """Where the session's chain ends."""
        row = self._one("SELECT seq, hash FROM heads WHERE session_id = ?", (session_id,))
        return None if row is None else ChainHead(session_id, row[0], row[1])

    def sessions(self) -> list[SessionSummary]:
        """Every session, oldest first. The times are those of its first and last chained
        events (the heads table's copies are not trusted: ``verify`` checks them), or the
        copies where those events cannot be read (``verify`` then reports the chain)."""
        rows = self._all(
            "SELECT h.session_id, h.seq, h.hash, h.first_time, h.last_time, "
            "(SELECT body FROM chain e WHERE e.id = s.sid * 4294967296 + 1), "
            "(SELECT body FROM chain e WHERE e.id = s.sid * 4294967296 + h.seq) "
            "FROM heads h LEFT JOIN session_ids s ON s.session_id = h.session_id",
            (),
        )
        return session_summaries(rows)

    def verify(self, session_ids: Sequence[str] | None = None, *, expect: Sequence[ChainHead] = ()) -> VerifyReport:
        """Recompute every hash, and check each recorded head (its seq, hash and times) against
        its chain; report the first problem (see ``EventStore.verify``)."""
        with self._lock:
            try:
                return self._wait(lambda: self._verify(session_ids, expect))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {_cause(exc, self.path)}") from exc

    def _verify(self, session_ids: Sequence[str] | None, expect: Sequence[ChainHead]) -> VerifyReport:
        db = self._db
        heads_sql = "SELECT session_id, seq, hash, first_time, last_time FROM heads"
        if session_ids is None:
            heads, times = _heads(db.execute(heads_sql))
            named = db.execute("SELECT session_id, sid FROM session_ids ORDER BY session_id").fetchall()
            return verify_rows(_chain_rows(db, named), heads, expect, times=times)
        ids = list(dict.fromkeys([*session_ids, *(h.session_id for h in expect)]))
        total_sessions = total_events = 0
        for sid in ids:
            heads, times = _heads(db.execute(heads_sql + " WHERE session_id = ?", (sid,)))
            cursor = _chain_rows(db, db.execute("SELECT session_id, sid FROM session_ids WHERE session_id = ?", (sid,)).fetchall())
            report = verify_rows(cursor, heads, [h for h in expect if h.session_id == sid], times=times)
            total_sessions += report.sessions
            total_events += report.events
            if not report.ok:
                return VerifyReport(total_sessions, total_events, report.problem)
        return VerifyReport(total_sessions, total_events, None)

    def put_policy(self, policy_hash: str, name: str, text: str) -> None:
        """Keep a policy's text under its content hash."""
        self._transaction(
            "write to",
            lambda db: db.execute("INSERT OR IGNORE INTO policies (hash, name, text) VALUES (?, ?, ?)", (policy_hash, name, text)),
        )

    def get_policy(self, policy_hash: str) -> str | None:
        """The text of a stored policy."""
        row = self._one("SELECT text FROM policies WHERE hash = ?", (policy_hash,))
        return None if row is None else str(row[0])

    def put_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Keep a snapshot; only the newest few per session are kept."""
        s = snapshot

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (session_id, seq, hash, policy_hash, digest, body) VALUES (?, ?, ?, ?, ?, ?)",
                (s.session_id, s.seq, s.hash, s.policy_hash, s.digest, s.body),
            )
            db.execute(
                "DELETE FROM snapshots WHERE session_id = ? AND seq NOT IN "
                "(SELECT seq FROM snapshots WHERE session_id = ? ORDER BY seq DESC LIMIT ?)",
                (s.session_id, s.session_id, _KEEP_SNAPSHOTS),
            )

        self._transaction("write a snapshot to", write)

    def latest_snapshot(self, session_id: str) -> SnapshotRecord | None:
        """The newest snapshot of a session."""
        row = self._one(
            "SELECT seq, hash, policy_hash, body, digest FROM snapshots WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (session_id,)
        )
        if row is None or not isinstance(row[3], bytes):
            return None
        return SnapshotRecord(session_id, row[0], row[1], row[2], row[3], row[4])

    def archived(self) -> list[ArchivedSession]:
        """Sessions moved to an archive, with the heads they had (oldest archiving first)."""
        rows = self._all("SELECT session_id, seq, hash, archive, archived_at FROM archived ORDER BY archived_at, session_id", ())
        return [ArchivedSession(*r) for r in rows]

    def drop_session(self, head: ChainHead, *, archive: str, archived_at: float) -> None:
        """Delete a session that was copied to ``archive`` and record it as archived there, in
        one transaction; ``StaleSession`` when its head is no longer ``head`` (nothing deleted).
        Its call keys stay as tombstones (no session, no call id), so the probe paths of other
        sessions' colliding keys stay whole."""
        sid_sql = "SELECT sid FROM session_ids WHERE session_id = ?"

        def write(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT seq, hash FROM heads WHERE session_id = ?", (head.session_id,)).fetchone()
            if row is None or (row[0], row[1]) != (head.seq, head.hash):
                raise StaleSession(head.session_id, head.seq, -1 if row is None else int(row[0]))
            sid = db.execute(sid_sql, (head.session_id,)).fetchone()
            if sid is not None:
                base = int(sid[0]) * SEQ_LIMIT
                db.execute("DELETE FROM chain WHERE id BETWEEN ? AND ?", (base, base + SEQ_LIMIT - 1))
                db.execute("UPDATE call_keys SET sid = 0, call_id = '' WHERE sid = ?", (sid[0],))
                db.execute("DELETE FROM session_ids WHERE sid = ?", (sid[0],))
            for table in ("heads", "approvals", "snapshots"):
                db.execute(f"DELETE FROM {table} WHERE session_id = ?", (head.session_id,))
            db.execute(
                "INSERT OR REPLACE INTO archived (session_id, seq, hash, archive, archived_at) VALUES (?, ?, ?, ?, ?)",
                (head.session_id, head.seq, head.hash, archive, archived_at),
            )

        self._transaction("archive a session in", write)
        with self._lock:
            self._heads.pop(head.session_id, None)
            self._sids.pop(head.session_id, None)

    def import_session(self, events: Sequence[StoredEvent], snapshot: SnapshotRecord | None = None) -> None:
        """Copy a whole session's chain, byte for byte, from another store (an archive's way in).

        The chain must hold from its first event; a session already here is left as it is if it
        ends at the same head (an archiving run that stopped half-way), refused otherwise."""
        if not events:
            return
        session_id = events[0].session_id
        bad = chain_break(events, 0, GENESIS)
        if bad is not None:
            raise StoreError(f"session {session_id!r}: event {bad.seq} does not follow its chain; not imported")
        last = events[-1]

        def write(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT seq, hash FROM heads WHERE session_id = ?", (session_id,)).fetchone()
            if row is not None:
                if (row[0], row[1]) != (last.seq, last.hash):
                    raise StoreError(f"session {session_id!r} is already in {self.path!r} with another chain")
                return
            sid = intern_session(db, session_id)
            base = sid * SEQ_LIMIT
            db.executemany(INSERT_EVENTS, [(base + e.seq, sid, e.seq, e.body, e.prev_hash, e.hash) for e in events])
            first_time = _event_time(events[0].body, 0.0)
            db.execute(
                "INSERT INTO heads (session_id, seq, hash, first_time, last_time) VALUES (?, ?, ?, ?, ?)",
                (session_id, last.seq, last.hash, first_time, _event_time(last.body, first_time)),
            )
            for e in events:
                event = e.event()
                if isinstance(event, CallProposed):
                    claim_call(db, sid, session_id, event.call_id)
            if snapshot is not None:
                s = snapshot
                db.execute(
                    "INSERT OR REPLACE INTO snapshots (session_id, seq, hash, policy_hash, digest, body) VALUES (?, ?, ?, ?, ?, ?)",
                    (s.session_id, s.seq, s.hash, s.policy_hash, s.digest, s.body),
                )

        self._transaction("import a session into", write)

    # ------------------------------------------------------------ service tokens

    def tokens(self, *, revoked: bool = False) -> list[TokenRecord]:
        """The service's live tokens, oldest first (``revoked=True``: every token ever added)."""
        return token_rows.records(self._all(token_rows.EVERY if revoked else token_rows.LIVE, ()))

    def find_token(self, digest: str) -> TokenRecord | None:
        """The live token whose SHA-256 is ``digest``."""
        found = token_rows.records(self._all(token_rows.BY_DIGEST, (digest,)))
        return found[0] if found else None

    def add_token(self, token: TokenRecord) -> bool:
        """Add a live token; False (nothing written) when a live token has its name or any token had its digest."""
        added: list[bool] = []

        def write(db: sqlite3.Connection) -> None:
            taken = db.execute(token_rows.NAME_TAKEN, (token.name, token.digest)).fetchone() is not None
            if not taken:
                db.execute(token_rows.INSERT, token_rows.row_of(token))
            added.append(not taken)

        self._transaction("write a token to", write)
        return added[0]

    def revoke_token(self, name: str, revoked_at: float) -> bool:
        """Revoke the live token named ``name`` (its row stays, with the time); False when there is none."""
        done: list[bool] = []
        self._transaction("revoke a token in", lambda db: done.append(db.execute(token_rows.REVOKE, (revoked_at, name)).rowcount > 0))
        with self._lock:
            self._commits += 1  # a change for wait_for_change here too (data_version counts other connections')
        return done[0]

    def wait_for_change(self, session_id: str | None, after_seq: int, timeout: float) -> bool:
        """Wait until ``session_id``'s head passes ``after_seq`` (``None``: until anything is
        committed to the file after the call) or ``timeout`` seconds pass; True when it moved.

        SQLite cannot push changes: this polls ``PRAGMA data_version`` (which moves when another
        connection commits; a read of one page) every few ms, backing off to 50 ms, and reads
        the head only when it moved."""
        deadline = time.monotonic() + max(0.0, timeout)
        pause = _FIRST_POLL_S
        seen: tuple[int, int] | None = None
        while True:
            with self._lock:
                version = (int(self._one("PRAGMA data_version", ())[0]), self._commits)
            if version != seen:
                if session_id is None:
                    if seen is not None:
                        return True
                else:
                    head = self.head(session_id)
                    if head is not None and head.seq > after_seq:
                        return True
                seen = version
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL_S)

    def _one(self, sql: str, params: tuple[object, ...]) -> Any:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._wait(lambda: self._db.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event store {self.path!r}: {_cause(exc, self.path)}") from exc

    def _transaction(self, what: str, write: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``write`` in a write transaction of its own."""
        with self._lock:
            self._vouched.clear()  # archiving, importing: heads this store vouched for may change
            db = self._db
            try:
                self._begin(None, None)
                try:
                    write(db)
                    db.commit()
                except BaseException:
                    if db.in_transaction:
                        db.rollback()
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {what} event store {self.path!r}: {_cause(exc, self.path)}") from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cause(exc: sqlite3.Error, path: str) -> str:
    """SQLite's message, with the cause and the way out spelt out for the failures a user can mend."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return (
            f"the disk is full ({exc}); nothing was written by this step. Free space on the disk that holds {path!r}, "
            "then resume the session ('tether run --resume SESSION', or restart the agent or proxy: it resumes from the log)"
        )
    if code == sqlite3.SQLITE_CANTOPEN and Path(path).is_file():
        return f"{exc}: the file or its directory may be read-only (read-only commands such as 'tether audit verify' still work)"
    if code == sqlite3.SQLITE_READONLY:
        return f"{exc}: the file or its directory is read-only (read-only commands such as 'tether audit verify' still work)"
    return str(exc)


def _chain_rows(db: sqlite3.Connection, sessions: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int, bytes, str, str]]:
    """The rows of the named sessions' chains, session by session, for ``verify_rows``."""
    for session_id, sid in sessions:
        yield from db.execute(_CHAIN_ROWS, (session_id, sid * SEQ_LIMIT, sid * SEQ_LIMIT + SEQ_LIMIT - 1, sid))


def _heads(rows: Iterable[tuple[str, int, str, float, float]]) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[float, float]]]:
    """Recorded heads and their times, by session, for ``verify_rows``."""
    heads: dict[str, tuple[int, str]] = {}
    times: dict[str, tuple[float, float]] = {}
    for sid, seq, hash, first, last in rows:
        heads[sid] = (seq, hash)
        times[sid] = (first, last)
    return heads, times


def _event_time(body: object, fallback: float) -> float:
    """The ``time`` of a stored event body, or ``fallback`` when it has none."""
    time_ = event_time(body)
    return fallback if time_ is None else time_
