"""The SQLite store's tables, and the forward migration from the first layout.

Schema 3 (``PRAGMA user_version = 3``) lays the log out for cheap appends. In WAL mode a
commit costs about one write per page it changed (about 8 us each on a small VM), so the
layout keeps the pages an append touches few: the event rows, one page of call ids and
the session's head. Each session's name is interned once to a small integer
(``session_ids``); events live in a rowid table (``chain``) keyed by
``sid * 2**32 + seq``, so a session's events are contiguous, read by a rowid range, and
one session's chain is unique by construction; the newest session appends at the
table's very end, which SQLite's b-tree fills without rebalancing. Call ids are claimed in ``call_keys``, a rowid table keyed by a
64-bit hash of (session, call id) whose rows keep the exact pair (a hash taken by
another pair moves on to the next key). Views named like the old tables (``events``,
``calls``) show the same columns as before, for ad-hoc SQL.

Files written before (``user_version = 0``, an ``events`` table) are migrated forward on
open, in one transaction: a crash in the middle leaves the old file as it was.
"""

from __future__ import annotations

import hashlib
import sqlite3

from tether.errors import DuplicateCall, StoreError
from tether.store._token_rows import TABLE as TOKENS

SEQ_LIMIT = 2**32
"""Events per session (the ``chain`` key packs the session id above the sequence number)."""
VERSION = 5
"""The layout this code writes (``PRAGMA user_version``; the ``meta`` table's ``schema`` too).
Schema 4 adds ``archived`` (sessions moved to an archive, with their heads) to schema 3;
schema 5 adds ``tokens`` (the service's access tokens, hashed: ``_token_rows``)."""
APPLICATION_ID = 0x54455448
"""``PRAGMA application_id`` of a Tether event store (``TETH`` in ASCII): ``file(1)`` and this
code tell a store from any other SQLite database by it."""
_SCHEMA3_TABLES = frozenset({"session_ids", "chain", "call_keys", "heads", "meta"})
_SCHEMA4_TABLES = _SCHEMA3_TABLES | {"archived"}
_CURRENT_TABLES = _SCHEMA4_TABLES | {"tokens"}
_FIRST_LAYOUT_TABLES = frozenset({"events", "calls", "heads"})

_ARCHIVED = """
CREATE TABLE IF NOT EXISTS archived (
    session_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    archive TEXT NOT NULL,
    archived_at REAL NOT NULL
) WITHOUT ROWID;
"""

_TABLES = (
    """
CREATE TABLE session_ids (sid INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE);
CREATE TABLE chain (
    id INTEGER PRIMARY KEY,
    sid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE call_keys (key INTEGER PRIMARY KEY, sid INTEGER NOT NULL, call_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS heads (
    session_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    first_time REAL NOT NULL,
    last_time REAL NOT NULL
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
"""
    + _ARCHIVED
    + TOKENS
)
# The views keep the first layout's names and columns for people (and tests) who edit the
# file with SQL; the store itself never writes through them. No INSERT triggers: code of the
# first layout that opens this file fails on its first append instead of bypassing call_keys.
_VIEWS = """
CREATE VIEW events AS
    SELECT s.session_id AS session_id, c.seq AS seq, c.body AS body, c.prev_hash AS prev_hash, c.hash AS hash
    FROM session_ids s JOIN chain c ON c.id BETWEEN s.sid * 4294967296 AND s.sid * 4294967296 + 4294967295 AND c.sid = s.sid;
CREATE TRIGGER events_update INSTEAD OF UPDATE ON events BEGIN
    UPDATE chain SET id = sid * 4294967296 + NEW.seq, seq = NEW.seq, body = NEW.body, prev_hash = NEW.prev_hash, hash = NEW.hash
    WHERE id = (SELECT sid FROM session_ids WHERE session_id = OLD.session_id) * 4294967296 + OLD.seq;
END;
CREATE TRIGGER events_delete INSTEAD OF DELETE ON events BEGIN
    DELETE FROM chain WHERE id = (SELECT sid FROM session_ids WHERE session_id = OLD.session_id) * 4294967296 + OLD.seq;
END;
CREATE VIEW calls AS SELECT s.session_id AS session_id, k.call_id AS call_id FROM call_keys k JOIN session_ids s ON s.sid = k.sid;
CREATE TRIGGER calls_delete INSTEAD OF DELETE ON calls BEGIN
    DELETE FROM call_keys WHERE sid = (SELECT sid FROM session_ids WHERE session_id = OLD.session_id) AND call_id = OLD.call_id;
END;
"""

_MIGRATE = """
INSERT INTO session_ids (session_id)
    SELECT session_id FROM old_events UNION SELECT session_id FROM heads UNION SELECT session_id FROM old_calls ORDER BY 1;
INSERT INTO chain (id, sid, seq, body, prev_hash, hash)
    SELECT s.sid * 4294967296 + e.seq, s.sid, e.seq, e.body, e.prev_hash, e.hash FROM old_events e JOIN session_ids s ON s.session_id = e.session_id
    ORDER BY e.session_id, e.seq;
"""

_CLAIM = "INSERT INTO call_keys (key, sid, call_id) VALUES (?, ?, ?)"
_MIN_KEY = -(2**63)


def open_schema(db: sqlite3.Connection, path: str, *, read_only: bool = False) -> None:
    """Create the tables in an empty file, or migrate a first-layout file forward, or stamp
    the application id on a store written before Tether set it; nothing to do (two reads)
    when the file is current. A SQLite database that is not a Tether store is refused
    (StoreError) before anything is written to it. ``read_only``: check, never write."""
    if _application_id(db) == APPLICATION_ID and _version(db) == VERSION:
        return
    if read_only:
        _check_readable(db, path)
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)
        if version > VERSION:
            raise StoreError(f"the event store was written by a newer Tether (schema {version}, this one reads {VERSION})")
        kind = _kind(db, path)
        if kind == "empty":
            _create(db)
        elif kind == "first layout":
            _migrate(db)
        elif kind == "schema 3":
            _run(db, _ARCHIVED + TOKENS)
        elif kind == "schema 4":
            _run(db, TOKENS)
        if version < VERSION or kind != "current":
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(VERSION),))
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.commit()
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise


def _check_readable(db: sqlite3.Connection, path: str) -> None:
    """A store opened read-only must already be a current Tether store (nothing can be created
    or migrated in it)."""
    version = _version(db)
    if version > VERSION:
        raise StoreError(f"the event store was written by a newer Tether (schema {version}, this one reads {VERSION})")
    kind = _kind(db, path)
    if kind == "empty":
        raise StoreError(f"{path!r} is an empty database, not a Tether event store")
    if kind in ("first layout", "schema 3"):
        raise StoreError(
            f"the event store {path!r} has an older layout ({'schema 2' if kind == 'first layout' else 'schema 3'}): "
            "open it once with write access "
            "(any tether command that writes, e.g. 'tether audit verify' on a writable copy) to migrate it"
        )


def refuse_foreign(db: sqlite3.Connection, path: str) -> None:
    """Raise StoreError if the file is a SQLite database that is not a Tether store; read
    before anything (the journal mode included) is changed in it."""
    _kind(db, path)


def _kind(db: sqlite3.Connection, path: str) -> str:
    """What the file holds: ``empty``, a ``current`` store (perhaps without the application id),
    a store of ``schema 4``, ``schema 3`` or of the ``first layout``; anything else is refused."""
    app_id = _application_id(db)
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path!r} is not a Tether event store (its SQLite application id is {app_id:#010x}, "
            f"Tether's is {APPLICATION_ID:#010x}); name another file"
        )
    tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        return "empty"
    version = _version(db)
    if version == VERSION and tables >= _CURRENT_TABLES:
        return "current"
    if version == 4 and tables >= _SCHEMA4_TABLES:
        return "schema 4"
    if version == 3 and tables >= _SCHEMA3_TABLES:
        return "schema 3"
    if version == 0 and tables >= _FIRST_LAYOUT_TABLES:
        return "first layout"
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise StoreError(
        f"{path!r} is not a Tether event store: it is a SQLite database with other tables ({shown or 'none'}) "
        "and no Tether application id; name another file (Tether never adds its tables to a foreign database)"
    )


def _application_id(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA application_id").fetchone()[0])


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _create(db: sqlite3.Connection) -> None:
    _run(db, _TABLES + _VIEWS)


def _run(db: sqlite3.Connection, script: str) -> None:
    """Run a script's statements one by one, in the caller's transaction (``executescript``
    would commit it)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


def _migrate(db: sqlite3.Connection) -> None:
    """Schema 2 (``events`` and ``calls`` keyed by session name, WITHOUT ROWID) to 3, in the
    caller's transaction. Rows are copied as they are (a tampered row stays detectable)."""
    db.execute("ALTER TABLE events RENAME TO old_events")
    db.execute("ALTER TABLE calls RENAME TO old_calls")
    _create(db)
    _run(db, _MIGRATE)
    sids = dict(db.execute("SELECT session_id, sid FROM session_ids").fetchall())
    for session_id, call_id in db.execute("SELECT session_id, call_id FROM old_calls").fetchall():
        claim_call(db, sids[session_id], session_id, call_id)
    db.execute("DROP TABLE old_events")
    db.execute("DROP TABLE old_calls")


def call_key(sid: int, call_id: str) -> int:
    """Where (``sid``, ``call_id``) is first looked for in ``call_keys``: a 64-bit hash, signed
    as SQLite's rowids are."""
    digest = hashlib.blake2b(b"%d\n%s" % (sid, call_id.encode()), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def claim_call(db: sqlite3.Connection, sid: int, session_id: str, call_id: str, *, key: int | None = None) -> None:
    """Record that ``session_id`` used ``call_id``, or raise ``DuplicateCall`` if it had.

    Open addressing: the pair goes under its hash, or, when another pair holds that key
    (a 64-bit collision), under the next free key; rows are never deleted, so a pair that
    was claimed before is found on the probe path before a free key is."""
    key = call_key(sid, call_id) if key is None else key
    while True:
        try:
            db.execute(_CLAIM, (key, sid, call_id))
            return
        except sqlite3.IntegrityError:
            row = db.execute("SELECT sid, call_id FROM call_keys WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise
            if row[0] == sid and row[1] == call_id:
                raise DuplicateCall(session_id, call_id) from None
            key = _MIN_KEY if key == 2**63 - 1 else key + 1
