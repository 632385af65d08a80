"""The event store: an append-only, hash-chained log of :mod:`tether.events`, policies by hash, snapshots.

Two back ends keep the same chain: :class:`SQLiteStore` (one file, one machine) and
:class:`PostgresStore` (one database, many machines; needs psycopg 3, imported on first
use). :func:`open_store` picks one from what a user names: a ``postgresql://`` URL or a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.store._archive import ArchiveReport, archive_sessions, finished_before, verify_archived
from tether.store._chain import (
    GENESIS,
    ArchivedSession,
    ChainHead,
    Durability,
    EventStore,
    PendingApproval,
    SessionSummary,
    SnapshotRecord,
    StoredEvent,
    VerifyProblem,
    VerifyReport,
    chain_break,
    chain_hash,
)
from tether.store._open import is_postgres_url, open_store
from tether.store._sqlite_store import SQLiteStore
from tether.store._token_rows import TokenRecord

if TYPE_CHECKING:
    from tether.store._postgres_store import PostgresStore

__all__ = [
    "GENESIS",
    "ArchiveReport",
    "ArchivedSession",
    "ChainHead",
    "PendingApproval",
    "PostgresStore",
    "SnapshotRecord",
    "Durability",
    "EventStore",
    "SQLiteStore",
    "SessionSummary",
    "StoredEvent",
    "TokenRecord",
    "VerifyProblem",
    "VerifyReport",
    "chain_break",
    "archive_sessions",
    "chain_hash",
    "finished_before",
    "is_postgres_url",
    "open_store",
    "verify_archived",
]


def __getattr__(name: str) -> Any:
    # PostgresStore needs psycopg (the ``postgres`` extra): import it only when asked for.
    if name == "PostgresStore":
        from tether.store._postgres_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
