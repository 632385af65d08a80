"""Snapshots: a session's folded state saved so that resuming costs the same whatever the log's length.

A snapshot is a compressed JSON copy of :class:`SessionState` after event ``seq``.
It is bound to the chain twice: the stored record names the chain hash of event
``seq``, and the session logs a ``snapshot_taken`` event (event ``seq + 1``) carrying
the snapshot's SHA-256. On resume a snapshot is used only when all of that holds and
every event after it verifies; otherwise the state is folded from the first event.
So a snapshot is never trusted over the chain it claims to summarise: a forged,
stale or corrupted one is ignored, never believed.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tether.approvals import ApprovalBook, EndorsementBook
from tether.events import SnapshotTaken
from tether.monitor import CallRecord, SessionState, plans_from_json, plans_to_json
from tether.policy import Policy
from tether.store import EventStore, SnapshotRecord, StoredEvent, chain_break

FORMAT = 2
"""Version of the snapshot body; a snapshot of another version is ignored (the log is folded instead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotPolicy:
    """When a session saves a snapshot of its state on its own.

    Resuming costs the snapshot plus folding the events after it, and folding costs about
    what the events carry (an output's text is normalised and indexed, a call's arguments
    remembered), not how many there are: a session that records a few large outputs has a
    short tail in events and a long one in work. So a snapshot is due after ``every_events``
    events *or* ``every_bytes`` bytes of logged events since the last one, whichever comes
    first; that bounds a resume by work, whatever the session's shape.
    """

    every_events: int | None = 5_000
    """Save after this many events since the last snapshot (None: not by count)."""
    every_bytes: int | None = 4 << 20
    """Save after this many bytes of logged events since the last snapshot (None: not by size)."""

    def due(self, work: Work) -> bool:
        """Whether ``work`` done since the last snapshot calls for a new one."""
        return (self.every_events is not None and work.events >= self.every_events) or (
            self.every_bytes is not None and work.bytes >= self.every_bytes
        )


NEVER = SnapshotPolicy(every_events=None, every_bytes=None)
"""No automatic snapshots (``Session.save_snapshot`` still takes one)."""


@dataclass(slots=True)
class Work:
    """Work folded into a session's state since its last snapshot: what a resume would redo."""

    events: int = 0
    """Events folded."""
    bytes: int = 0
    """Bytes of their logged bodies."""

    def add(self, stored: Sequence[StoredEvent]) -> None:
        """Count ``stored`` events as folded."""
        self.events += len(stored)
        self.bytes += sum(len(item.body) for item in stored)


def state_to_json(state: SessionState) -> dict[str, Any]:
    """Everything the fold has built, as JSON-able data."""
    return {
        "format": FORMAT,
        "session_id": state.session_id,
        "principal": state.principal,
        "task": state.task,
        "task_norm": state.task_norm,
        "policy_hash": state.policy_hash,
        "policy_name": state.policy_name,
        "started_at": state.started_at,
        "scope": state.scope,
        "status": state.status,
        "calls_total": state.calls_total,
        "writes": state.writes,
        "spend": state.spend,
        "per_tool": dict(state.per_tool),
        "rate_times": {rule: list(times) for rule, times in state.rate_times.items()},
        "calls": [[r.call_id, r.tool, r.args, r.call_hash, r.time, r.verdict, r.executed, r.result_event] for r in state.calls.values()],
        "approvals": state.approvals.to_snapshot(),
        "endorsements": state.endorsements.to_snapshot(),
        "checkin": [state.last_checkin, state.writes_since_checkin],
        "spared": {k: [state.spared_count[k], v] for k, v in state.spared.items()},
        "plans": plans_to_json(state.plans),
        "forget_at": state.forget_at,
        "flow": state.flow.to_snapshot(),
        "events": state.events,
        "last_seq": state.last_seq,
        "last_hash": state.last_hash,
    }


def state_from_json(data: dict[str, Any]) -> SessionState:
    """Rebuild what :func:`state_to_json` saved."""
    from tether.flow import FlowTracker

    state = SessionState(data["session_id"])
    for name in ("principal", "task", "task_norm", "policy_hash", "policy_name", "started_at", "scope", "status"):
        setattr(state, name, data[name])
    state.calls_total = data["calls_total"]
    state.writes = data["writes"]
    state.spend = data["spend"]
    state.per_tool = Counter(data["per_tool"])
    state.rate_times = {rule: deque(times) for rule, times in data["rate_times"].items()}
    state.calls = {row[0]: CallRecord(*row) for row in data["calls"]}
    state.approvals = ApprovalBook.from_snapshot(data["approvals"])
    state.endorsements = EndorsementBook.from_snapshot(data.get("endorsements", []))
    state.last_checkin, state.writes_since_checkin = data.get("checkin", [state.started_at, 0])
    state.spared = {k: list(v[1]) for k, v in data.get("spared", {}).items()}
    state.spared_count = Counter({k: int(v[0]) for k, v in data.get("spared", {}).items()})
    state.plans = plans_from_json(data.get("plans", []))
    state.forget_at = data["forget_at"]
    state.flow = FlowTracker.from_snapshot(data["flow"])
    state.events = data["events"]
    state.last_seq = data["last_seq"]
    state.last_hash = data["last_hash"]
    return state


def encode(state: SessionState) -> tuple[bytes, str]:
    """The stored body of a snapshot of ``state``, and its SHA-256."""
    body = zlib.compress(orjson.dumps(state_to_json(state)), 1)
    return body, hashlib.sha256(body).hexdigest()


def restore(store: EventStore, session_id: str, policy: Policy) -> tuple[SessionState, list[StoredEvent]] | None:
    """The newest usable snapshot of a session and the events logged after it (None: fold from the start)."""
    record = store.latest_snapshot(session_id)
    if record is None or record.policy_hash != policy.hash:
        return None
    if hashlib.sha256(record.body).hexdigest() != record.digest:
        return None
    tail = store.read(session_id, record.seq)
    if not tail:
        return None
    marker = tail[0].event()
    if not (isinstance(marker, SnapshotTaken) and marker.seq == record.seq and marker.digest == record.digest):
        return None  # the chain does not vouch for this snapshot
    if chain_break(tail, record.seq, record.hash) is not None:
        return None  # the tail does not verify: fold everything (verification will name the problem)
    head = store.head(session_id)
    if head is None or (head.seq, head.hash) != (tail[-1].seq, tail[-1].hash):
        return None
    try:
        state = state_from_json(orjson.loads(zlib.decompress(record.body)))
    except Exception:
        return None
    if state.last_seq != record.seq or state.last_hash != record.hash or state.policy_hash != policy.hash:
        return None
    return state, tail


def record_for(state: SessionState, body: bytes, digest: str) -> SnapshotRecord:
    """The store record of a snapshot of ``state`` (taken before its ``snapshot_taken`` event)."""
    return SnapshotRecord(state.session_id, state.last_seq, state.last_hash, state.policy_hash, body, digest)
