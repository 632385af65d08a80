"""Retention: finished sessions move from the live store to an archive with their chain heads.

A store that runs for a year should stay small and still prove what happened. Archiving
copies each finished session (ended or killed, last event before a cutoff) byte for byte
into an archive, which is a SQLite Tether store (one file, verifiable with the same
``tether audit verify``), with its newest snapshot and the policies its events name; then,
in one transaction of the live store, deletes the session and records it in ``archived``
(session id, last seq, last hash, archive name). The live store's ``verify`` keeps
reporting those heads, and the archive must still end each session at its recorded head.

The copy is committed (and synced: the archive is opened with ``durability="full"``)
before anything is deleted; a run stopped in between leaves the session in both, and the
next run finds the same chain in the archive and only deletes it. A session that moved
since it was read (someone appended) is skipped, never half-archived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from tether.errors import StaleSession, StoreError
from tether.events import SessionControl, SessionEnded
from tether.store._chain import GENESIS, ArchivedSession, ChainHead, EventStore, StoredEvent, VerifyProblem, chain_break
from tether.store._sqlite_store import SQLiteStore


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What one archiving run moved."""

    archived: list[ChainHead] = field(default_factory=list)
    """The sessions moved, with their heads."""
    events: int = 0
    """Events moved, all sessions together."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Sessions left in place, with why."""


def finished_before(store: EventStore, cutoff: float) -> list[str]:
    """Sessions whose last event is older than ``cutoff`` (UTC Unix time) and that ended or were
    killed (a session merely idle is never archived: it could go on)."""
    out = []
    for summary in store.sessions():
        if summary.last_time < cutoff and _finished(store, summary.session_id):
            out.append(summary.session_id)
    return out


def _finished(store: EventStore, session_id: str) -> bool:
    for item in reversed(store.read(session_id)):
        event = item.event()
        if isinstance(event, SessionEnded) or (isinstance(event, SessionControl) and event.action == "kill"):
            return True
    return False


def archive_sessions(
    live: EventStore, archive: SQLiteStore, session_ids: Sequence[str], *, archive_name: str, now: Callable[[], float]
) -> ArchiveReport:
    """Move ``session_ids`` from ``live`` into ``archive`` (see the module docstring)."""
    moved: list[ChainHead] = []
    skipped: list[tuple[str, str]] = []
    events = 0
    for session_id in session_ids:
        head = live.head(session_id)
        if head is None:
            skipped.append((session_id, "not in the store"))
            continue
        chain = live.read(session_id)
        if chain_break(chain, 0, GENESIS) is not None or not chain or (chain[-1].seq, chain[-1].hash) != (head.seq, head.hash):
            skipped.append((session_id, "its chain does not verify (run 'tether audit verify'); left in place"))
            continue
        for policy_hash, name in _policies(chain).items():
            text = live.get_policy(policy_hash)
            if text is not None:
                archive.put_policy(policy_hash, name, text)
        archive.import_session(chain, live.latest_snapshot(session_id))
        try:
            live.drop_session(head, archive=archive_name, archived_at=now())
        except StaleSession:
            skipped.append((session_id, "it moved while being archived; left in place"))
            continue
        moved.append(head)
        events += len(chain)
    return ArchiveReport(moved, events, skipped)


def _policies(chain: Sequence[StoredEvent]) -> dict[str, str]:
    """The policies a session's events name (its start and its decisions): hash -> name."""
    seen: dict[str, str] = {}
    for item in chain:
        value = orjson.loads(item.body)
        policy_hash = value.get("policy_hash") if isinstance(value, dict) else None
        if isinstance(policy_hash, str) and policy_hash:
            name = value.get("policy_name")
            seen[policy_hash] = name if isinstance(name, str) else seen.get(policy_hash, "")
    return seen


def verify_archived(
    records: Sequence[ArchivedSession], open_archive: Callable[[str], EventStore], *, expect: Sequence[ChainHead] = ()
) -> tuple[int, VerifyProblem | None]:
    """Check each archived session in its archive: the chain holds and ends exactly at the head
    the live store recorded (and holds the heads in ``expect`` exported before it was archived).
    Returns the events checked and the first problem."""
    checked = 0
    by_archive: dict[str, list[ArchivedSession]] = {}
    for record in records:
        by_archive.setdefault(record.archive, []).append(record)
    for name, group in by_archive.items():
        try:
            store = open_archive(name)
        except StoreError as exc:
            return checked, VerifyProblem(group[0].session_id, group[0].seq, None, f"its archive {name!r} cannot be opened: {exc}")
        try:
            ids = {r.session_id for r in group}
            anchors = [r.head() for r in group] + [h for h in expect if h.session_id in ids]
            report = store.verify(sorted(ids), expect=anchors)
            checked += report.events
            if report.problem is not None:
                problem = report.problem
                return checked, VerifyProblem(problem.session_id, problem.seq, problem.event_id, f"in archive {name!r}: {problem.message}")
            for record in group:
                head = store.head(record.session_id)
                if head is None or (head.seq, head.hash) != (record.seq, record.hash):
                    return checked, VerifyProblem(
                        record.session_id, record.seq, None, f"archive {name!r} does not end the session at its recorded head"
                    )
        finally:
            store.close()
    return checked, None
