"""Typed, self-stamping events: everything that happens in a session is one of these.

A session's state is a fold over its events; the audit trail is the same log,
hash-chained by the store. Every event carries a ``kind`` tag, its own id, the
session it belongs to and the UTC time it was created.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tether._decision import new_id


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    """Unique id of the event."""
    session_id: str
    """The session the event belongs to."""
    time: float = Field(default_factory=time.time)
    """When the event was created: UTC Unix time in seconds."""


class SessionStarted(_EventBase):
    """A session began."""

    kind: Literal["session_started"] = "session_started"
    principal: str
    """Who the agent acts for."""
    task: str
    """The user's trusted task text."""
    policy_hash: str
    """Content hash of the policy in force."""
    policy_name: str
    """The policy's ``name``."""
    scope: dict[str, Any] | None = None
    """Declared task scope (the writes the session may make), if any."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data from the integrator."""


class CallProposed(_EventBase):
    """The agent proposed a tool call."""

    kind: Literal["call_proposed"] = "call_proposed"
    call_id: str
    tool: str
    args: Any
    """The arguments in a JSON-safe form (see ``tether.store.jsonsafe``)."""
    call_hash: str


class DecisionMade(_EventBase):
    """The guard decided on a call."""

    kind: Literal["decision"] = "decision"
    call_id: str
    verdict: Literal["allow", "deny", "ask"]
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    policy_hash: str


class ResultRecorded(_EventBase):
    """A tool's output was recorded, labelled and indexed."""

    kind: Literal["result_recorded"] = "result_recorded"
    call_id: str
    output: str
    """The output as the text that was indexed."""
    label: dict[str, Any]
    """The output's label (``Label.to_json``)."""
    error: bool = False
    """True when the tool failed (the error text is still untrusted data)."""


class SourceAdded(_EventBase):
    """Data entered the session outside a tool call (a user follow-up, a trusted file)."""

    kind: Literal["source_added"] = "source_added"
    text: str
    label: dict[str, Any]
    origin: str = "user"


class ApprovalRequested(_EventBase):
    """A human must approve a call."""

    kind: Literal["approval_requested"] = "approval_requested"
    call_id: str
    call_hash: str
    expires_at: float
    """UTC Unix time after which the request counts as denied."""
    summary: str


class ApprovalAnswered(_EventBase):
    """A human (or a timeout) answered an approval request."""

    kind: Literal["approval_answered"] = "approval_answered"
    call_id: str
    call_hash: str
    approved: bool
    by: str
    note: str = ""


class SessionControl(_EventBase):
    """The session was paused, resumed or killed."""

    kind: Literal["session_control"] = "session_control"
    action: Literal["pause", "resume", "kill"]
    by: str
    note: str = ""


class SessionEnded(_EventBase):
    """The session finished."""

    kind: Literal["session_ended"] = "session_ended"
    reason: str = "completed"


Event = Annotated[
    SessionStarted
    | CallProposed
    | DecisionMade
    | ResultRecorded
    | SourceAdded
    | ApprovalRequested
    | ApprovalAnswered
    | SessionControl
    | SessionEnded,
    Field(discriminator="kind"),
]
"""Any event."""

EventKind = Literal[
    "session_started",
    "call_proposed",
    "decision",
    "result_recorded",
    "source_added",
    "approval_requested",
    "approval_answered",
    "session_control",
    "session_ended",
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_json(data: bytes | str) -> Event:
    """Parse one stored event body."""
    return EVENT_ADAPTER.validate_json(data)
