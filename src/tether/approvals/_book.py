"""The one fold of approval state: which asks are pending, answered or expired.

Every place that needs an approval's state (the session deciding whether a call
may run, ``tether approvals``, the MCP proxy, the approvals service) reads it from
this fold of the session's events, so they cannot disagree. An answer applies only
to a pending request with the same call hash; an expired request is denied as soon
as anyone looks at it (the timeout is then logged as an answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tether.events import ApprovalAnswered, ApprovalRequested

ApprovalStatus = Literal["none", "pending", "approved", "denied", "expired"]
"""``none``: never asked; ``pending``: waiting; ``approved``/``denied``: answered (an approved
call that failed its re-check at approval time is ``denied``); ``expired``: pending past its
deadline, not yet logged as timed out (it is treated as denied)."""

MAX_PENDING_APPROVALS = 256
"""Requests a session may have waiting at once; past that a new ``ask`` is denied (a human cannot
work through more, and each one is kept in memory until answered or expired)."""

MAX_ANSWERED = 1024
"""Answered requests kept for status queries (pending ones are always kept)."""


@dataclass(slots=True)
class ApprovalRecord:
    """One approval request and what became of it."""

    call_id: str
    """The call asked about."""
    call_hash: str
    """The exact call (tool and arguments) an answer must name."""
    requested_at: float
    """When it was asked."""
    expires_at: float
    """When it counts as denied."""
    summary: str
    """Why it was asked."""
    status: Literal["pending", "approved", "denied"] = "pending"
    """Its state in the log."""
    by: str = ""
    """Who answered."""
    note: str = ""
    """What they said."""


class ApprovalBook:
    """Approval requests of one session, folded from its events."""

    __slots__ = ("_answered", "_pending")

    def __init__(self) -> None:
        self._pending: dict[str, ApprovalRecord] = {}
        self._answered: dict[str, ApprovalRecord] = {}

    def requested(self, event: ApprovalRequested) -> None:
        """Fold an ``approval_requested`` event."""
        self._answered.pop(event.call_id, None)
        self._pending[event.call_id] = ApprovalRecord(event.call_id, event.call_hash, event.time, event.expires_at, event.summary)

    def answered(self, event: ApprovalAnswered) -> bool:
        """Fold an ``approval_answered`` event; True when it answered a pending request."""
        rec = self._pending.get(event.call_id)
        if rec is None or rec.call_hash != event.call_hash:
            return False  # an answer for another call (or an already answered one) changes nothing
        del self._pending[event.call_id]
        rec.status = "approved" if event.allowed else "denied"
        rec.by = event.by
        rec.note = event.note
        self._answered[event.call_id] = rec
        if len(self._answered) > MAX_ANSWERED:
            del self._answered[next(iter(self._answered))]
        return True

    def get(self, call_id: str) -> ApprovalRecord | None:
        """The request for ``call_id``, if it is pending or recently answered."""
        return self._pending.get(call_id) or self._answered.get(call_id)

    def status(self, call_id: str, now: float) -> ApprovalStatus:
        """The request's state at time ``now``."""
        rec = self.get(call_id)
        if rec is None:
            return "none"
        if rec.status == "pending" and now > rec.expires_at:
            return "expired"
        return rec.status

    def pending(self) -> list[ApprovalRecord]:
        """Unanswered requests (expired ones included), oldest first."""
        return list(self._pending.values())

    def pending_count(self) -> int:
        """How many requests are unanswered in the log (expired ones included)."""
        return len(self._pending)

    def waiting(self, now: float) -> int:
        """How many unanswered requests have not expired at ``now``."""
        return sum(1 for rec in self._pending.values() if rec.expires_at >= now)

    def expired(self, now: float, limit: int = 256) -> list[ApprovalRecord]:
        """Unanswered requests past their deadline at ``now`` (the oldest ``limit``): their timeouts
        are due to be logged. Requests are kept in the order they were asked, and every request of
        a session has the same timeout, so the scan stops at the first one still running."""
        out: list[ApprovalRecord] = []
        for rec in self._pending.values():
            if rec.expires_at >= now or len(out) >= limit:
                break
            out.append(rec)
        return out

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-able copy (session snapshots)."""
        return {
            "pending": [_record_json(r) for r in self._pending.values()],
            "answered": [_record_json(r) for r in self._answered.values()],
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ApprovalBook:
        """Rebuild what :meth:`to_snapshot` saved."""
        book = cls()
        for item in data["pending"]:
            book._pending[item["call_id"]] = ApprovalRecord(**item)
        for item in data["answered"]:
            book._answered[item["call_id"]] = ApprovalRecord(**item)
        return book


def _record_json(rec: ApprovalRecord) -> dict[str, Any]:
    return {
        "call_id": rec.call_id,
        "call_hash": rec.call_hash,
        "requested_at": rec.requested_at,
        "expires_at": rec.expires_at,
        "summary": rec.summary,
        "status": rec.status,
        "by": rec.by,
        "note": rec.note,
    }
