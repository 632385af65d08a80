"""The hash chain shared by every store backend, and the store protocol."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from tether.store._events import Event, event_from_json

GENESIS = "0" * 64
"""The ``prev_hash`` of a session's first event."""

Durability = Literal["full", "normal", "off"]
"""How hard a store works to keep a committed event: ``full`` survives power loss,
``normal`` survives a crash of the process (the OS still has the data), ``off``
survives neither (for tests and benchmarks of the decision path alone)."""


def chain_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """Hash of one event: covers its predecessor, its position and every byte of its body."""
    return hashlib.sha256(b"%s\n%d\n%s" % (prev_hash.encode("ascii"), seq, body)).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it sits in the log."""

    session_id: str
    seq: int
    """Position in the session's chain, from 1."""
    body: bytes
    """The canonical JSON the hash covers."""
    prev_hash: str
    hash: str

    def event(self) -> Event:
        """Parse the body."""
        return event_from_json(self.body)


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of a store's session listing."""

    session_id: str
    events: int
    first_time: float
    last_time: float
    head_hash: str


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first place where a chain does not hold."""

    session_id: str
    seq: int
    event_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of verifying a store's chains."""

    sessions: int
    events: int
    problem: VerifyProblem | None

    @property
    def ok(self) -> bool:
        """True when every chain holds."""
        return self.problem is None


class EventStore(Protocol):
    """An append-only, hash-chained event log (SQLite, PostgreSQL...)."""

    durability: Durability

    def append(self, session_id: str, bodies: Sequence[bytes], times: Sequence[float] | None = None) -> list[StoredEvent]:
        """Append serialised events (created at ``times``) to a session's chain atomically."""
        ...

    def read(self, session_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The session's events with ``seq > after_seq``, in order."""
        ...

    def sessions(self) -> list[SessionSummary]:
        """Every session in the store."""
        ...

    def verify(self, session_ids: Sequence[str] | None = None) -> VerifyReport:
        """Recompute the chains (all sessions, or those named)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


def verify_rows(rows: Iterable[tuple[str, int, bytes, str, str]], heads: dict[str, tuple[int, str]]) -> VerifyReport:
    """Check chains from rows ordered by (session_id, seq). Shared by backends."""
    sessions = 0
    count = 0
    current: str | None = None
    seen: set[str] = set()
    expect_seq = 1
    prev = GENESIS
    for session_id, seq, body, prev_hash, stored_hash in rows:
        if session_id != current:
            if current is not None:
                problem = _check_head(current, expect_seq - 1, prev, heads)
                if problem:
                    return VerifyReport(sessions, count, problem)
            current = session_id
            seen.add(session_id)
            sessions += 1
            expect_seq = 1
            prev = GENESIS
        count += 1
        if not isinstance(body, bytes | bytearray | memoryview):
            return VerifyReport(
                sessions,
                count,
                VerifyProblem(session_id, seq, None, f"stored body is a {type(body).__name__}, not bytes (the row was rewritten)"),
            )
        body = bytes(body)
        if seq != expect_seq:
            what = "missing" if seq > expect_seq else "out of order"
            return VerifyReport(
                sessions, count, VerifyProblem(session_id, expect_seq, None, f"event {expect_seq} is {what} (found seq {seq})")
            )
        if prev_hash != prev:
            return VerifyReport(
                sessions,
                count,
                VerifyProblem(
                    session_id,
                    seq,
                    _event_id(body),
                    "prev_hash does not match the previous event's hash (an event was removed, inserted or reordered)",
                ),
            )
        if chain_hash(prev, seq, body) != stored_hash:
            return VerifyReport(
                sessions, count, VerifyProblem(session_id, seq, _event_id(body), "content does not match its hash (the event was modified)")
            )
        prev = stored_hash
        expect_seq += 1
    if current is not None:
        problem = _check_head(current, expect_seq - 1, prev, heads)
        if problem:
            return VerifyReport(sessions, count, problem)
    if sessions < len(heads):
        missing = sorted(set(heads) - seen)
        if missing:
            return VerifyReport(
                sessions, count, VerifyProblem(missing[0], 1, None, "the session's events are gone but its head is recorded")
            )
    return VerifyReport(sessions, count, None)


def _check_head(session_id: str, last_seq: int, last_hash: str, heads: dict[str, tuple[int, str]]) -> VerifyProblem | None:
    head = heads.get(session_id)
    if head is None:
        return VerifyProblem(session_id, last_seq, None, "session has events but no recorded head")
    if head != (last_seq, last_hash):
        return VerifyProblem(
            session_id,
            last_seq,
            None,
            f"chain ends at event {last_seq} but the recorded head is event {head[0]} (events were removed from the end or the head was edited)",
        )
    return None


def _event_id(body: bytes) -> str | None:
    try:
        return event_from_json(body).id
    except ValueError:
        return None
