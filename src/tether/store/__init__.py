"""The event store: typed events in an append-only, hash-chained log."""

from tether.store._chain import (
    Durability,
    EventStore,
    SessionSummary,
    StoredEvent,
    VerifyProblem,
    VerifyReport,
    chain_hash,
)
from tether.store._events import (
    ApprovalAnswered,
    ApprovalRequested,
    CallProposed,
    DecisionMade,
    Event,
    EventKind,
    ResultRecorded,
    SessionControl,
    SessionEnded,
    SessionStarted,
    SourceAdded,
    event_from_json,
)
from tether.store._jsonsafe import jsonsafe, output_text
from tether.store._sqlite_store import SQLiteStore

__all__ = [
    "ApprovalAnswered",
    "ApprovalRequested",
    "CallProposed",
    "DecisionMade",
    "Durability",
    "Event",
    "EventKind",
    "EventStore",
    "ResultRecorded",
    "SQLiteStore",
    "SessionControl",
    "SessionEnded",
    "SessionStarted",
    "SessionSummary",
    "SourceAdded",
    "StoredEvent",
    "VerifyProblem",
    "VerifyReport",
    "chain_hash",
    "event_from_json",
    "jsonsafe",
    "output_text",
]
