"""The PostgreSQL store's tables, and their forward migrations.

The tables hold the same record as the SQLite store's (``events`` and ``heads`` are the
record; ``calls``, ``approvals`` and ``snapshots`` are indexes derived from it), laid out
the plain way: PostgreSQL's b-trees and row locks do what the SQLite layout works around.
``events`` has the primary key ``(session_id, seq)``, so the database itself refuses a
second event at one position of a chain, whoever writes it.

The version of the layout is the ``schema`` row of ``meta``. Opening a store runs the
migrations it lacks, in order, in one transaction under an advisory lock, so two processes
opening an old database at once migrate it once; a database written by a newer Tether is
refused rather than written with an older layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether.errors import StoreError
from tether.store._token_rows import TABLE as TOKENS

if TYPE_CHECKING:
    import psycopg

MIGRATIONS: tuple[str, ...] = (
    # 1: the log, its indexes and the policies.
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE events (
        session_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        body BYTEA NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    CREATE TABLE heads (
        session_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        first_time DOUBLE PRECISION NOT NULL,
        last_time DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE calls (session_id TEXT NOT NULL, call_id TEXT NOT NULL, PRIMARY KEY (session_id, call_id));
    CREATE TABLE approvals (
        session_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        call_hash TEXT NOT NULL,
        tool TEXT NOT NULL,
        args BYTEA NOT NULL,
        summary TEXT NOT NULL,
        requested_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (session_id, call_id)
    );
    CREATE TABLE policies (hash TEXT PRIMARY KEY, name TEXT NOT NULL, text TEXT NOT NULL);
    CREATE TABLE snapshots (
        session_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        policy_hash TEXT NOT NULL,
        digest TEXT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    """,
    # 2: sessions moved to an archive (``tether audit archive``), with the heads they had.
    """
    CREATE TABLE archived (
        session_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        archive TEXT NOT NULL,
        archived_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: the service's access tokens, hashed (``_token_rows``).
    TOKENS,
)
VERSION = len(MIGRATIONS)
"""The layout this code writes."""

_MIGRATION_LOCK = 0x7465_7468
"""Advisory lock key held while migrating (``'teth'``)."""


def open_schema(conn: psycopg.Connection[tuple[object, ...]], name: str, *, create: bool = True) -> None:
    """Bring the database to :data:`VERSION` (nothing but one read when it is there already).

    ``conn`` is in autocommit mode; the migrations run in one transaction of their own.
    ``create=False`` refuses a database without Tether's tables instead of creating them."""
    version = _version(conn)
    if version == VERSION:
        return
    if version == 0 and not create:
        raise StoreError(f"no event store at {name}: the database has no Tether tables")
    # The lock is taken before the transaction starts, so that the transaction sees the tables
    # another process created while we waited (a lock taken inside it would not show them).
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        with conn.transaction():
            version = _version(conn)
            if version > VERSION:
                raise StoreError(f"the event store {name} was written by a newer Tether (schema {version}, this one reads {VERSION})")
            for script in MIGRATIONS[version:]:
                conn.execute(script.encode())
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(VERSION),),
            )
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


def _version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The layout's version: 0 in an empty database."""
    if conn.execute("SELECT to_regclass('meta')").fetchone() in (None, (None,)):
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return 0 if row is None else int(str(row[0]))
