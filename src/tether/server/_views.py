"""What the oversight service shows, as plain data: session rows, timeline entries, pending calls.

Every view is JSON-safe (the API returns them as they are) and built from the store and
the sessions' folded state only, so it reads the same from SQLite or any other store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.events import (
    ApprovalAnswered,
    ApprovalRequested,
    CallProposed,
    DecisionMade,
    Event,
    PlanDeclared,
    ResultRecorded,
    SessionControl,
    SessionStarted,
    SourceAdded,
)
from tether.flow import Label
from tether.store import StoredEvent


def label_json(label: Label) -> dict[str, Any]:
    """A label as ``{"integrity": "untrusted", "tags": ["secret"]}``."""
    return {"integrity": label.integrity, "tags": sorted(label.tags)}


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget of a session: what it used and the policy's limit."""

    name: str
    """``calls``, ``writes``, ``spend`` or ``wall_time_s``."""
    used: float
    """Used so far."""
    limit: float | None
    """The policy's limit (None: unlimited)."""

    @property
    def left(self) -> float | None:
        """What is left (None: unlimited)."""
        return None if self.limit is None else max(0.0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class CheckinView:
    """A session's check-in state: how long and how many writes since a human last looked."""

    last_checkin: float
    """When a human last answered an ask or checked in (the start, before that)."""
    writes_since: int
    """Writes that ran since then."""
    after_writes: int | None
    """The policy's ``checkin.after_writes``."""
    after_minutes: float | None
    """The policy's ``checkin.after_minutes``."""
    due: bool
    """The next write will ask."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "last_checkin": self.last_checkin,
            "writes_since": self.writes_since,
            "after_writes": self.after_writes,
            "after_minutes": self.after_minutes,
            "due": self.due,
        }


@dataclass(frozen=True, slots=True)
class EndorsementView:
    """An endorsement as the inbox lists it, with the asks it spared."""

    id: str
    """The ``endorsement_added`` event's id."""
    scope: str
    """``session`` or ``principal``."""
    principal: str
    """Whose sessions it holds in (a principal endorsement) or who the session acts for."""
    origin_session: str
    """Where it was given."""
    tool: str
    """The tool."""
    arg: str
    """The argument."""
    value: Any
    """The endorsed value."""
    expires_at: float | None
    """When it stops holding (None: until revoked)."""
    by: str
    """Who gave it."""
    time: float
    """When."""
    live: bool
    """Not expired now."""
    spared: int
    """Asks it spared, in the sessions it holds in."""
    spared_calls: tuple[tuple[str, str], ...]
    """(session, call) of the most recent asks it spared."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "id": self.id,
            "scope": self.scope,
            "principal": self.principal,
            "origin_session": self.origin_session,
            "tool": self.tool,
            "arg": self.arg,
            "value": self.value,
            "expires_at": self.expires_at,
            "by": self.by,
            "time": self.time,
            "live": self.live,
            "spared": self.spared,
            "spared_calls": [{"session_id": s, "call_id": c} for s, c in self.spared_calls],
        }


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as the sessions list shows it."""

    session_id: str
    """The session's id."""
    status: str
    """``active``, ``paused``, ``killed``, ``ended`` or ``?`` (cannot be opened: see ``problem``)."""
    principal: str
    """Who the agent acts for."""
    policy_name: str
    """The policy's name."""
    policy_hash: str
    """The policy's content hash."""
    task: str
    """The trusted task text."""
    events: int
    """Events in the session's chain."""
    pending: int
    """Approvals waiting for a human."""
    started: float
    """First event (UTC Unix time)."""
    last_activity: float
    """Last event (UTC Unix time)."""
    budgets: tuple[Budget, ...] = ()
    """Budgets used and left."""
    problem: str = ""
    """Why the session could not be opened (status ``?``)."""
    fleet: tuple[Budget, ...] = ()
    """The principal's budgets shared by all its sessions (``principal_budgets``): used and left."""
    checkin: CheckinView | None = None
    """Where the session stands with the policy's ``checkin`` (None: the policy sets none)."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "session_id": self.session_id,
            "principal_budgets": [{"name": b.name, "used": b.used, "limit": b.limit, "left": b.left} for b in self.fleet],
            "checkin": self.checkin.to_json() if self.checkin is not None else None,
            "status": self.status,
            "principal": self.principal,
            "policy": {"name": self.policy_name, "hash": self.policy_hash},
            "task": self.task,
            "events": self.events,
            "pending_approvals": self.pending,
            "started": self.started,
            "last_activity": self.last_activity,
            "budgets": [{"name": b.name, "used": b.used, "limit": b.limit, "left": b.left} for b in self.budgets],
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a session, readable: what happened, the verdict and the rule, the labels."""

    seq: int
    """Position in the chain."""
    event_id: str
    """The event's id."""
    time: float
    """When (UTC Unix time)."""
    kind: str
    """The event kind."""
    call_id: str | None
    """The call it concerns, if any."""
    tool: str | None
    """The tool, for a proposed call."""
    verdict: str | None
    """``allow``/``deny``/``ask`` for a decision; ``approved``/``refused`` for an answer."""
    rules: tuple[str, ...]
    """The policy rules that fired."""
    label: dict[str, Any] | None
    """The label given to a result or a source."""
    text: str
    """One line for a person (the event's own description)."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "time": self.time,
            "kind": self.kind,
            "call_id": self.call_id,
            "tool": self.tool,
            "verdict": self.verdict,
            "rules": list(self.rules),
            "label": self.label,
            "text": self.text,
        }


def timeline_entry(item: StoredEvent) -> TimelineEntry:
    """The timeline's view of one stored event."""
    event = item.event()
    call_id = getattr(event, "call_id", None)
    tool: str | None = None
    verdict: str | None = None
    rules: tuple[str, ...] = ()
    lab: dict[str, Any] | None = None
    if isinstance(event, CallProposed | PlanDeclared):
        tool = event.tool
    elif isinstance(event, DecisionMade):
        verdict, rules = event.verdict, tuple(r.rule for r in event.reasons)
    elif isinstance(event, ApprovalAnswered):
        verdict = ("approved" if event.allowed else "approved, denied on re-check") if event.approved else "refused"
        rules = tuple(r.rule for r in event.reasons)
    elif isinstance(event, ResultRecorded | SourceAdded):
        lab = label_json(event.label)
    elif isinstance(event, SessionControl):
        verdict = event.action
    return TimelineEntry(
        item.seq,
        event.id,
        event.time,
        event.kind,
        call_id if isinstance(call_id, str) else None,
        tool,
        verdict,
        rules,
        lab,
        event.describe(),
    )


@dataclass(frozen=True, slots=True)
class SourceView:
    """One event an argument's data was found in."""

    event_id: str
    """The event's id."""
    what: str
    """What it was: ``the task``, ``output of read_inbox (call 1a2b3c4d)``, ``source added from user``."""
    label: dict[str, Any] | None
    """Its label, when the event is at hand."""


@dataclass(frozen=True, slots=True)
class ArgView:
    """One scalar of a pending call's arguments, whole, with where its data came from."""

    path: str
    """Dotted path of the value in the arguments (``to[0]``, ``body``)."""
    value: Any
    """The value exactly as the tool receives it."""
    text: str
    """The value as text (strings as they are, other scalars in JSON)."""
    label: dict[str, Any]
    """The value's label."""
    found: bool
    """A source the session read holds the value."""
    inherited: bool
    """Found nowhere: the value carries the session's context label (the model may have made it up)."""
    sources: tuple[SourceView, ...]
    """The events its label comes from."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "path": self.path,
            "value": self.value,
            "label": self.label,
            "found": self.found,
            "inherited": self.inherited,
            "sources": [{"event_id": s.event_id, "what": s.what, "label": s.label} for s in self.sources],
        }


@dataclass(frozen=True, slots=True)
class ReasonView:
    """Why the call was asked (or denied)."""

    rule: str
    """The policy location that fired."""
    message: str
    """A sentence."""
    arg: str | None
    """The argument concerned."""


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call waiting for a human, with everything needed to answer it."""

    session_id: str
    """The session."""
    call_id: str
    """The call."""
    tool: str
    """The tool it names."""
    args: Any
    """The whole arguments, as the tool receives them."""
    leaves: tuple[ArgView, ...]
    """Each scalar of ``args`` with its provenance."""
    summary: str
    """Why it was asked, in one line."""
    reasons: tuple[ReasonView, ...]
    """The rules that asked."""
    requested_at: float
    """When (UTC Unix time)."""
    expires_at: float
    """When it counts as denied."""
    principal: str = ""
    """Who the agent acts for."""
    task: str = ""
    """The session's trusted task."""
    history: tuple[TimelineEntry, ...] = field(default=())
    """The session's recent events, oldest first."""
    remember: tuple[str, ...] = ()
    """The arguments "approve and remember" endorses by default (those whose provenance caused the ask)."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "session_id": self.session_id,
            "call_id": self.call_id,
            "tool": self.tool,
            "args": self.args,
            "provenance": [leaf.to_json() for leaf in self.leaves],
            "summary": self.summary,
            "reasons": [{"rule": r.rule, "message": r.message, "arg": r.arg} for r in self.reasons],
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "principal": self.principal,
            "task": self.task,
            "history": [h.to_json() for h in self.history],
            "remember": list(self.remember),
        }


def describe_source(event: Event | None, event_id: str, tools: dict[str, str]) -> SourceView:
    """How a person reads a provenance source (``tools`` maps call ids to tool names)."""
    if event is None:
        return SourceView(event_id, f"event {event_id[:12]} (older than the recent history)", None)
    if isinstance(event, SessionStarted):
        return SourceView(event_id, "the task (trusted)", {"integrity": "trusted", "tags": []})
    if isinstance(event, ResultRecorded):
        tool = tools.get(event.call_id, "a tool")
        return SourceView(event_id, f"output of {tool} (call {event.call_id[:8]})", label_json(event.label))
    if isinstance(event, SourceAdded):
        return SourceView(event_id, f"source added from {event.origin}", label_json(event.label))
    if isinstance(event, ApprovalRequested):
        return SourceView(event_id, "an approval request", None)
    return SourceView(event_id, f"{event.kind} event", None)
