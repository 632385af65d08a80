"""The event store: an append-only, hash-chained log of :mod:`tether.events`, policies by hash, snapshots."""

from tether.store._chain import (
    GENESIS,
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
from tether.store._sqlite_store import SQLiteStore

__all__ = [
    "GENESIS",
    "ChainHead",
    "PendingApproval",
    "SnapshotRecord",
    "Durability",
    "EventStore",
    "SQLiteStore",
    "SessionSummary",
    "StoredEvent",
    "VerifyProblem",
    "VerifyReport",
    "chain_break",
    "chain_hash",
]
