"""The hash chain shared by every store backend, and the store protocol."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from tether.events import Event, event_from_json
from tether.store._token_rows import TokenRecord

GENESIS = "0" * 64
"""The ``prev_hash`` of a session's first event."""

Durability = Literal["full", "normal", "off"]
"""How hard a store works to keep a committed event. Under every mode ``append`` returns only
after its transaction committed, and a session runs a call only after ``append`` returned.
``full``: the commit is on stable storage; it survives a process crash, an OS crash and a
power loss. ``normal`` (the default): the commit is in the OS (written, not synced); it
survives a process crash or kill, while an OS crash or power loss may roll back the last
whole transactions (never part of one) but leaves the log consistent. ``off``: as
``normal`` for a process crash; an OS crash or power loss may lose recent commits and
corrupt the file (for tests and benchmarks)."""


def chain_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """Hash of one event: covers its predecessor, its position and every byte of its body."""
    return hashlib.sha256(b"%s\n%d\n%s" % (prev_hash.encode("ascii"), seq, body)).hexdigest()


class StoredEvent:
    """An event as it sits in the log: its body, its place in the chain, and the parsed event."""

    __slots__ = ("_event", "body", "hash", "prev_hash", "seq", "session_id")

    def __init__(self, session_id: str, seq: int, body: bytes, prev_hash: str, hash: str, event: Event | None = None) -> None:
        self.session_id = session_id
        """The session's id."""
        self.seq = seq
        """Position in the session's chain, from 1."""
        self.body = body
        """The canonical JSON the hash covers."""
        self.prev_hash = prev_hash
        """Hash of the previous event (``GENESIS`` for the first)."""
        self.hash = hash
        """This event's chain hash."""
        self._event = event

    def event(self) -> Event:
        """The typed event (parsed from the body once, on first use)."""
        if self._event is None:
            self._event = event_from_json(self.body)
        return self._event

    def __repr__(self) -> str:
        return f"StoredEvent(session_id={self.session_id!r}, seq={self.seq}, hash={self.hash[:12]!r})"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a session's chain ends: export these to detect later truncation or rewriting."""

    session_id: str
    """The session."""
    seq: int
    """Sequence number of its last event."""
    hash: str
    """Chain hash of that event."""


@dataclass(frozen=True, slots=True)
class ArchivedSession:
    """A session moved out of the live store into an archive, with the head it had there."""

    session_id: str
    """The session."""
    seq: int
    """Sequence number of its last event."""
    hash: str
    """Chain hash of that event: the archive's copy of the session must end with it."""
    archive: str
    """Where it went (the archive file's name, as given to ``tether audit archive``)."""
    archived_at: float
    """When (UTC Unix time)."""

    def head(self) -> ChainHead:
        """The head to verify the archive against."""
        return ChainHead(self.session_id, self.seq, self.hash)


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A stored snapshot of a session's folded state, bound to the chain at ``seq``."""

    session_id: str
    """The session."""
    seq: int
    """The last event the snapshot includes."""
    hash: str
    """Chain hash of event ``seq``: the snapshot is used only if the chain still has it."""
    policy_hash: str
    """The policy the state was folded under."""
    body: bytes
    """The serialised state (compressed JSON)."""
    digest: str
    """SHA-256 of ``body``, checked before use."""


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """An approval request not yet answered, as the store indexes it (``tether approvals list``)."""

    session_id: str
    """The session the call belongs to."""
    call_id: str
    """The call waiting."""
    tool: str
    """The tool it names."""
    args: object
    """Its arguments (JSON-safe form)."""
    summary: str
    """Why it was asked."""
    requested_at: float
    """When it was asked (UTC Unix time)."""
    expires_at: float
    """When it counts as denied."""


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
    """An append-only, hash-chained event log (SQLite, PostgreSQL...).

    The store owns serialisation: it takes and returns typed events. Appends are
    conditional: ``expect_seq`` is the sequence number the writer last saw; when
    another writer got there first the append raises :class:`~tether.errors.StaleSession`
    and writes nothing, so a session never decides on state it has not seen.
    """

    durability: Durability

    def append(self, session_id: str, events: Sequence[Event], *, expect_seq: int | None = None) -> list[StoredEvent]:
        """Append ``events`` to a session's chain atomically, if its head is still ``expect_seq``
        (``None``: wherever it is). Raises ``StaleSession`` on a moved head and
        ``DuplicateCall`` when a proposed call id was already used in the session."""
        ...

    def read(self, session_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        """The session's events with ``seq > after_seq``, in order (at most ``limit``)."""
        ...

    def head(self, session_id: str) -> ChainHead | None:
        """Where the session's chain ends (None: no such session)."""
        ...

    def sessions(self) -> list[SessionSummary]:
        """Every session in the store."""
        ...

    def verify(self, session_ids: Sequence[str] | None = None, *, expect: Sequence[ChainHead] = ()) -> VerifyReport:
        """Recompute the chains (all sessions, or those named); with ``expect``, also check that
        each previously exported head is still part of its chain."""
        ...

    def put_policy(self, policy_hash: str, name: str, text: str) -> None:
        """Keep a policy's text under its content hash (idempotent)."""
        ...

    def get_policy(self, policy_hash: str) -> str | None:
        """The text of a stored policy, or None."""
        ...

    def put_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Keep a snapshot of a session's state (older ones may be dropped)."""
        ...

    def latest_snapshot(self, session_id: str) -> SnapshotRecord | None:
        """The newest snapshot of a session, or None."""
        ...

    def pending_approvals(
        self,
        *,
        live_at: float | None = None,
        session_id: str | None = None,
        call_prefix: str | None = None,
        hide: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PendingApproval]:
        """Approval requests without an answer in the log, oldest first: every one (expired ones
        included), or only those expiring at ``live_at`` or later, of ``session_id``, whose call id
        starts with ``call_prefix``, leaving out the sessions whose id starts with one of ``hide``;
        at most ``limit`` from ``offset``.
        Filtered and paged in the database (a long-lived store holds many stale requests)."""
        ...

    def pending_counts(self, *, live_at: float | None = None, session_id: str | None = None, hide: Sequence[str] = ()) -> dict[str, int]:
        """How many requests :meth:`pending_approvals` returns for each session (those with none left out),
        counted in the database."""
        ...

    def turn(self) -> AbstractContextManager[None]:
        """Hold the store's write lock from now until the next append (which commits and
        releases it) or the end of the block: reads inside see a head no other writer can
        move. A writer that lost a race catches up and appends inside its turn."""
        ...

    def archived(self) -> list[ArchivedSession]:
        """Sessions moved to an archive (``tether audit archive``), with the heads they had."""
        ...

    def drop_session(self, head: ChainHead, *, archive: str, archived_at: float) -> None:
        """Delete a session copied to ``archive`` and record it as archived, in one transaction;
        ``StaleSession`` (nothing deleted) when its head is no longer ``head``. Appending to an
        archived session id is refused afterwards."""
        ...

    def tokens(self, *, revoked: bool = False) -> list[TokenRecord]:
        """The service's live access tokens, oldest first (``revoked=True``: every one ever added)."""
        ...

    def find_token(self, digest: str) -> TokenRecord | None:
        """The live token whose SHA-256 is ``digest`` (None: no such live token)."""
        ...

    def add_token(self, token: TokenRecord) -> bool:
        """Keep a new live token; False (nothing written) when a live token has its name or any
        token ever had its digest."""
        ...

    def revoke_token(self, name: str, revoked_at: float) -> bool:
        """Revoke the live token named ``name`` (the row stays, with the time); False when there is none."""
        ...

    def wait_for_change(self, session_id: str | None, after_seq: int, timeout: float) -> bool:
        """Block until ``session_id``'s head passes ``after_seq`` (``None``: until anything is
        appended after the call), for at most ``timeout`` seconds; True when it moved. Lets a
        reader wait for an approval's answer or a kill without a polling loop of its own
        (PostgreSQL pushes appends with NOTIFY; SQLite polls its file cheaply)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


def chain_break(items: Sequence[StoredEvent], prev_seq: int, prev_hash: str) -> StoredEvent | None:
    """The first of ``items`` that does not follow (``prev_seq``, ``prev_hash``) in the chain, or whose
    hash does not cover its body and predecessor; None when all of them do. ``prev_hash`` is
    ``GENESIS`` before a session's first event."""
    for item in items:
        if item.seq != prev_seq + 1 or item.prev_hash != prev_hash or chain_hash(prev_hash, item.seq, item.body) != item.hash:
            return item
        prev_seq, prev_hash = item.seq, item.hash
    return None


def verify_rows(
    rows: Iterable[tuple[str, int, bytes, str, str]],
    heads: dict[str, tuple[int, str]],
    expect: Sequence[ChainHead] = (),
    *,
    times: dict[str, tuple[float, float]] | None = None,
) -> VerifyReport:
    """Check chains from rows ordered by (session_id, seq). Shared by backends.

    ``heads`` holds each session's recorded head (seq, hash); ``times``, where the backend
    keeps them, the recorded first and last event times, which must be those of the
    chain's first and last events (session listings show them).

    ``expect`` holds heads exported earlier (``tether audit head``): each must still be
    in its chain, at its sequence number with its hash, or the log was truncated or
    rewritten after the export.
    """
    anchors: dict[tuple[str, int], str] = {(h.session_id, h.seq): h.hash for h in expect}
    anchored_seen: set[tuple[str, int]] = set()
    sessions = 0
    count = 0
    current: str | None = None
    seen: set[str] = set()
    expect_seq = 1
    prev = GENESIS
    first_body = last_body = b""
    for session_id, seq, body, prev_hash, stored_hash in rows:
        if session_id != current:
            if current is not None:
                problem = _check_head(current, expect_seq - 1, prev, heads) or _check_times(
                    current, expect_seq - 1, first_body, last_body, times
                )
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
        if seq == 1:
            first_body = body
        last_body = body
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
        anchor = anchors.get((session_id, seq))
        if anchor is not None:
            anchored_seen.add((session_id, seq))
            if anchor != stored_hash:
                return VerifyReport(
                    sessions,
                    count,
                    VerifyProblem(
                        session_id,
                        seq,
                        _event_id(body),
                        f"event {seq} no longer has the exported head hash {anchor[:16]}... "
                        "(history was rewritten after the head was exported)",
                    ),
                )
        prev = stored_hash
        expect_seq += 1
    if current is not None:
        problem = _check_head(current, expect_seq - 1, prev, heads) or _check_times(current, expect_seq - 1, first_body, last_body, times)
        if problem:
            return VerifyReport(sessions, count, problem)
    for key in sorted(set(anchors) - anchored_seen):
        sid, seq = key
        have = heads.get(sid, (0, ""))[0]
        what = (
            f"the chain now ends at event {have} (events were removed from the end)"
            if sid in seen or sid in heads
            else "the session is gone from the store"
        )
        return VerifyReport(sessions, count, VerifyProblem(sid, seq, None, f"an exported head names event {seq} but {what}"))
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


def _check_times(
    session_id: str, last_seq: int, first_body: bytes, last_body: bytes, times: dict[str, tuple[float, float]] | None
) -> VerifyProblem | None:
    """The recorded first/last times must be the chained first and last events' times."""
    recorded = None if times is None else times.get(session_id)
    if recorded is None:
        return None
    actual = (event_time(first_body), event_time(last_body))
    if actual != recorded:
        return VerifyProblem(
            session_id,
            1 if actual[0] != recorded[0] else last_seq,
            None,
            f"the recorded head's times {recorded!r} are not those of the chain's first and last events {actual!r} (the head was edited)",
        )
    return None


def event_time(body: object) -> float | None:
    """The ``time`` field of a stored event body (None when it is not an event with a time)."""
    if not isinstance(body, bytes | bytearray | memoryview | str):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    time = value.get("time") if isinstance(value, dict) else None
    return float(time) if isinstance(time, int | float) and not isinstance(time, bool) else None


def session_summaries(rows: Iterable[Sequence[Any]]) -> list[SessionSummary]:
    """Sessions from rows of (id, last seq, last hash, first time, last time, first event's body,
    last event's body), oldest first. The times are those of the chained events; the heads'
    copies are used only where those events cannot be read (``verify`` then reports the chain)."""

    def when(body: object, fallback: float) -> float:
        found = event_time(body)
        return fallback if found is None else found

    out = [SessionSummary(r[0], r[1], when(r[5], r[3]), when(r[6], r[4]), r[2]) for r in rows]
    out.sort(key=lambda s: (s.first_time, s.session_id))
    return out


def _event_id(body: bytes) -> str | None:
    try:
        return event_from_json(body).id
    except ValueError:
        return None
