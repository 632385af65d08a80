"""Typed, self-stamping events: everything that happens in a session is one of these.

A session's state is a fold over its events; the audit trail is the same log,
hash-chained by the store. Every event carries a ``kind`` tag, its own id, the
session it belongs to and the UTC time it was created.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, TypeAdapter

from tether._decision import Reason, Verdict, new_id
from tether.flow import Label

__all__ = [
    "ApprovalAnswered",
    "ApprovalRequested",
    "BudgetReleased",
    "BudgetReserved",
    "CallProposed",
    "CheckedIn",
    "DecisionMade",
    "EndorsementAdded",
    "EndorsementRevoked",
    "EndorsementScope",
    "Event",
    "EventKind",
    "LabelField",
    "MessageAdded",
    "MessageToolCall",
    "PlanDeclared",
    "ProtocolRefused",
    "ReasonField",
    "ResultRecorded",
    "SessionControl",
    "SessionEnded",
    "SessionStarted",
    "SnapshotTaken",
    "SourceAdded",
    "event_from_json",
    "event_to_json",
    "format_time",
]


def _label_in(value: Any) -> Label:
    return value if isinstance(value, Label) else Label.from_json(value)


def _reason_in(value: Any) -> Reason:
    if isinstance(value, Reason):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"reason must be an object, got {value!r}")
    return Reason.from_json(value)


LabelField = Annotated[Label, PlainValidator(_label_in), PlainSerializer(lambda v: v.to_json(), return_type=dict)]
"""A :class:`Label` stored as ``{"integrity": ..., "tags": [...]}``."""
ReasonField = Annotated[Reason, PlainValidator(_reason_in), PlainSerializer(lambda v: v.to_json(), return_type=dict)]
"""A :class:`Reason` stored as its JSON object."""


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def format_time(t: float) -> str:
    """A UTC timestamp as ``2026-11-29 14:32:26.123Z``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    """Unique id of the event."""
    session_id: str
    """The session the event belongs to."""
    time: float = Field(default_factory=time.time)
    """When the event was created: UTC Unix time in seconds."""

    def describe(self) -> str:
        """One line for humans (timelines, the approvals inbox)."""
        raise NotImplementedError


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

    def describe(self) -> str:
        return (
            f"session started by {self.principal!r} under policy {self.policy_name!r} ({self.policy_hash[:19]}); task: {_clip(self.task)!r}"
        )


class CallProposed(_EventBase):
    """The agent proposed a tool call."""

    kind: Literal["call_proposed"] = "call_proposed"
    call_id: str
    """The call's id, unique within the session."""
    tool: str
    """The tool named by the call."""
    args: Any
    """The arguments in a JSON-safe form (see ``tether._json.jsonsafe``)."""
    call_hash: str
    """Hash of tool and arguments; approvals are bound to it."""

    def describe(self) -> str:
        return f"call {self.call_id[:8]} proposed: {self.tool}({_clip(json.dumps(self.args, ensure_ascii=False), 120)})"


class PlanDeclared(_EventBase):
    """The agent declared the writes it intends (``Session.declare_plan``).

    Decided like a call of the pseudo-tool ``tether.plan`` whose arguments are the plan:
    a ``decision`` event with this ``call_id`` follows, then, on ``ask``, an ordinary
    approval request, so every approval surface shows and answers it unchanged.
    """

    kind: Literal["plan_declared"] = "plan_declared"
    call_id: str
    """The plan's id (the call id its decision and approval are logged under; unique among calls)."""
    tool: Literal["tether.plan"] = "tether.plan"
    """The pseudo-tool the plan is decided and shown as."""
    args: dict[str, Any]
    """``{"writes": [{"tool": ..., "args": {...}}, ...]}`` in a JSON-safe form."""
    call_hash: str
    """Hash of the pseudo-call (approvals are bound to it)."""

    def describe(self) -> str:
        return f"plan {self.call_id[:8]} declared: {_clip(json.dumps(self.args, ensure_ascii=False), 160)}"


class DecisionMade(_EventBase):
    """The guard decided on a call."""

    kind: Literal["decision"] = "decision"
    call_id: str
    """The call decided."""
    verdict: Verdict
    """``allow``, ``deny`` or ``ask``."""
    reasons: tuple[ReasonField, ...] = ()
    """Why (empty for a plain allow)."""
    policy_hash: str
    """The policy the decision was made under."""
    endorsements: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """Endorsements that spared an ask: without them the call would have been asked about
    (ids of ``endorsement_added`` events; absent from the log when empty)."""
    ledger_seq: int = Field(default=0, exclude_if=lambda v: not v)
    """The last event of the principal's ledger the decision saw (its endorsements and fleet
    budgets; replay folds the ledger up to here). Absent when the ledger was empty."""

    def describe(self) -> str:
        why = "; ".join(_reason_text(r) for r in self.reasons)
        spared = f" (an ask spared by endorsement {', '.join(e[:8] for e in self.endorsements)})" if self.endorsements else ""
        return f"call {self.call_id[:8]} -> {self.verdict.upper()}" + (f": {why}" if why else "") + spared


class ResultRecorded(_EventBase):
    """A tool's output was recorded, labelled and indexed."""

    kind: Literal["result_recorded"] = "result_recorded"
    call_id: str
    """The call that produced the output."""
    output: str
    """The output as the text that was indexed."""
    label: LabelField
    """The output's label."""
    error: bool = False
    """True when the tool failed (the error text is still untrusted data)."""
    records: tuple[tuple[int, int, tuple[str, ...]], ...] = Field(default=(), exclude_if=lambda v: not v)
    """Per-record readers of a list output: ``(start, end, readers)`` per record, ``output[start:end]``
    being the record's text and ``readers`` who may read a value taken from it (canonical
    principals; the output's whole label keeps the readers of every record at once). Absent when
    the output is no list of records with different readers, or a record could not be placed."""

    def describe(self) -> str:
        return f"call {self.call_id[:8]} result [{self.label.describe()}]{' (error)' if self.error else ''}: {_clip(self.output)!r}"


class SourceAdded(_EventBase):
    """Data entered the session outside a tool call (a user follow-up, a trusted file)."""

    kind: Literal["source_added"] = "source_added"
    text: str
    """The data."""
    label: LabelField
    """Its label."""
    origin: str = "user"
    """Where it came from (free text)."""

    def describe(self) -> str:
        return f"source added from {self.origin} [{self.label.describe()}]: {_clip(self.text)!r}"


class ApprovalRequested(_EventBase):
    """A human must approve a call."""

    kind: Literal["approval_requested"] = "approval_requested"
    call_id: str
    """The call waiting for a human."""
    call_hash: str
    """The exact call (tool and arguments) an answer applies to."""
    expires_at: float
    """UTC Unix time after which the request counts as denied."""
    summary: str
    """The decision's explanation, for the human."""

    def describe(self) -> str:
        return f"call {self.call_id[:8]} awaits approval until {format_time(self.expires_at)}"


class ApprovalAnswered(_EventBase):
    """A human (or a timeout) answered an approval request."""

    kind: Literal["approval_answered"] = "approval_answered"
    call_id: str
    """The call answered."""
    call_hash: str
    """Must equal the request's hash, or the answer is ignored."""
    approved: bool
    """What the human (or the timeout) said."""
    by: str
    """Who answered (``timeout`` and ``guard`` for automatic answers)."""
    note: str = ""
    """Free text from whoever answered."""
    verdict: Literal["allow", "deny"] | None = None
    """The outcome: ``allow`` when approved and the call still passes the policy when re-decided
    at approval time (budgets, rates, session status); ``deny`` otherwise. None in logs written
    before re-decision existed (then ``approved`` is the outcome)."""
    reasons: tuple[ReasonField, ...] = ()
    """Why an approved call was still denied when re-decided."""

    @property
    def allowed(self) -> bool:
        """Whether the call may run after this answer."""
        return self.approved if self.verdict is None else self.verdict == "allow"

    def describe(self) -> str:
        word = "APPROVED" if self.approved else "REFUSED"
        head = f"call {self.call_id[:8]} {word} by {self.by}" + (f": {self.note}" if self.note else "")
        if self.approved and not self.allowed:
            head += " but DENIED on re-check: " + "; ".join(_reason_text(r) for r in self.reasons)
        return head


class SessionControl(_EventBase):
    """The session was paused, resumed or killed."""

    kind: Literal["session_control"] = "session_control"
    action: Literal["pause", "resume", "kill"]
    """What was done."""
    by: str
    """Who did it."""
    note: str = ""
    """Why, in their words."""

    def describe(self) -> str:
        return f"session {self.action} by {self.by}" + (f": {self.note}" if self.note else "")


class SnapshotTaken(_EventBase):
    """The session's folded state up to event ``seq`` was saved as a snapshot.

    Logged right after event ``seq`` (so it is event ``seq + 1``), it binds the snapshot
    into the hash chain: a snapshot is used on resume only when the chain holds this
    event with the snapshot's digest, so a forged or stale snapshot is ignored.
    """

    kind: Literal["snapshot_taken"] = "snapshot_taken"
    seq: int
    """The last event the snapshot includes."""
    digest: str
    """SHA-256 of the stored snapshot body."""
    policy_hash: str
    """The policy the state was folded under."""

    def describe(self) -> str:
        return f"state snapshot of events 1..{self.seq} saved (sha256 {self.digest[:12]})"


EndorsementScope = Literal["session", "principal"]
"""Where an endorsement holds: the session it was given in, or every session of its principal."""


class EndorsementAdded(_EventBase):
    """A human endorsed a value for one argument of one tool ("approve and remember"): from now on
    (until it expires or is revoked) that value counts as trusted there in the flow check.

    Integrity only: the value's confidentiality tags (``secret``, ``pii``...) stay, so an
    endorsement never lets tagged data flow where the policy forbids it. A session-scoped
    endorsement is logged in the session's chain; a principal-scoped one in the principal's
    ledger (``principal:<name>``), where every session of that principal reads it.
    """

    kind: Literal["endorsement_added"] = "endorsement_added"
    scope: EndorsementScope
    """``session``: this session only; ``principal``: every session of ``principal``."""
    principal: str
    """The principal the endorsing session acts for."""
    origin_session: str
    """The session where the human endorsed it."""
    tool: str
    """The tool."""
    arg: str
    """The argument (top-level name; each item of a list argument is endorsed on its own)."""
    value: Any
    """The value as the human saw it."""
    canonical: str
    """Its canonical form (``tether.policy.canonical_value``): what later values are compared by."""
    expires_at: float | None = None
    """UTC Unix time after which it no longer holds (None: until revoked)."""
    by: str
    """Who endorsed it."""
    call_id: str = ""
    """The asked call the human approved when endorsing it, if any."""
    note: str = ""
    """Why, in their words."""

    def describe(self) -> str:
        until = f" until {format_time(self.expires_at)}" if self.expires_at is not None else ""
        return (
            f"{self.scope} endorsement {self.id[:8]} by {self.by}: {self.tool}.{self.arg} = "
            f"{_clip(json.dumps(self.value, ensure_ascii=False), 80)} trusted{until}"
        )


class EndorsementRevoked(_EventBase):
    """An endorsement was withdrawn (logged where the endorsement was)."""

    kind: Literal["endorsement_revoked"] = "endorsement_revoked"
    endorsement_id: str
    """The ``endorsement_added`` event withdrawn."""
    by: str
    """Who revoked it."""
    note: str = ""
    """Why."""

    def describe(self) -> str:
        return f"endorsement {self.endorsement_id[:8]} revoked by {self.by}" + (f": {self.note}" if self.note else "")


class CheckedIn(_EventBase):
    """A human looked at the session and said it may go on (a check-in): the policy's
    ``checkin`` counters (writes and minutes since a human last answered or checked in) restart."""

    kind: Literal["checked_in"] = "checked_in"
    by: str
    """Who checked in."""
    note: str = ""
    """What they said."""

    def describe(self) -> str:
        return f"checked in by {self.by}" + (f": {self.note}" if self.note else "")


class BudgetReserved(_EventBase):
    """In a principal's ledger: an allowed call of one of its sessions took its share of the
    principal's budgets (``principal_budgets``), before that session logged the decision."""

    kind: Literal["budget_reserved"] = "budget_reserved"
    for_session: str
    """The session whose call it is."""
    call_id: str
    """The call."""
    tool: str
    """The tool it names."""
    write: bool
    """Whether the call is a write."""
    spend: float = 0.0
    """What it spends (the tool's ``spend`` argument)."""

    def describe(self) -> str:
        what = "write" if self.write else "call"
        cost = f", spend {self.spend:g}" if self.spend else ""
        return f"{what} {self.tool} (call {self.call_id[:8]} of session {self.for_session[:12]}) reserved{cost}"


class BudgetReleased(_EventBase):
    """In a principal's ledger: a reservation given back (the session did not commit an allow for that call)."""

    kind: Literal["budget_released"] = "budget_released"
    for_session: str
    """The session whose call it was."""
    call_id: str
    """The call."""

    def describe(self) -> str:
        return f"reservation of call {self.call_id[:8]} of session {self.for_session[:12]} released"


class MessageToolCall(BaseModel):
    """One tool call in an assistant message, as the model wrote it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """The model's id for the call (answered by the ``tool`` message with this ``tool_call_id``)."""
    name: str
    """The tool the model named."""
    arguments: str
    """The arguments exactly as the model sent them (a JSON text, possibly malformed)."""
    call_id: str
    """The id the call is checked and logged under in the session (``call_proposed``)."""


class MessageAdded(_EventBase):
    """A message of the agent's conversation (``tether run``): the system prompt, the user's task,
    the model's replies with their tool calls, and the tool results as the model was given them.

    The session's state does not depend on these (tool outputs are recorded, labelled and indexed
    by ``result_recorded``); they are logged so a run resumes from the exact conversation.
    """

    kind: Literal["message"] = "message"
    role: Literal["system", "user", "assistant", "tool"]
    """Who speaks, in the chat-completions sense."""
    content: str | None = None
    """The text (None: an assistant message with tool calls only)."""
    tool_calls: tuple[MessageToolCall, ...] = ()
    """The tool calls of an assistant message."""
    refusal: str | None = None
    """An assistant's refusal, when the model refused."""
    tool_call_id: str | None = None
    """For a ``tool`` message: the model's id of the call it answers."""
    call_id: str | None = None
    """For a ``tool`` message: the session's id of the call it answers."""

    def describe(self) -> str:
        if self.role == "tool":
            return f"message to the model: result of call {(self.call_id or '?')[:8]}: {_clip(self.content or '')!r}"
        calls = ", ".join(f"{c.name} ({c.call_id[:8]})" for c in self.tool_calls)
        text = self.refusal if self.refusal is not None else self.content or ""
        return f"{self.role} message{' (refusal)' if self.refusal is not None else ''}: {_clip(text)!r}" + (
            f"; calls {calls}" if calls else ""
        )


class ProtocolRefused(_EventBase):
    """A protocol message an adapter refused or cut down before it reached anyone (the MCP proxy: a
    method it does not relay, a request sent as a notification, members or ``_meta`` it dropped, an
    answer nobody waits for, a malformed message). It changes no state: it is the trace of what an
    agent, a client or a server tried past the guard. A flood is sampled: after the first few of a
    kind in a window, one event with ``count`` stands for the rest."""

    kind: Literal["protocol_refused"] = "protocol_refused"
    source: str
    """Who sent it: ``client``, or ``server NAME``."""
    what: str
    """The class of refusal (``unknown-method``, ``request-as-notification``, ``dropped-members``, ...)."""
    method: str = ""
    """The method the message named (clipped), if any."""
    detail: str = ""
    """What was refused or dropped, and what the proxy did, in words."""
    count: int = 1
    """How many messages this event stands for (more than one: a summary of refusals not logged one by one)."""

    def describe(self) -> str:
        method = f" {self.method!r}" if self.method else ""
        many = f" ({self.count} messages, not logged one by one)" if self.count > 1 else ""
        return f"refused from {self.source}: {self.what}{method}{many}" + (f": {_clip(self.detail, 160)}" if self.detail else "")


class SessionEnded(_EventBase):
    """The session finished."""

    kind: Literal["session_ended"] = "session_ended"
    reason: str = "completed"
    """Why it ended."""

    def describe(self) -> str:
        return f"session ended: {self.reason}"


Event = Annotated[
    SessionStarted
    | CallProposed
    | PlanDeclared
    | DecisionMade
    | ResultRecorded
    | SourceAdded
    | ApprovalRequested
    | ApprovalAnswered
    | SessionControl
    | SnapshotTaken
    | MessageAdded
    | SessionEnded
    | EndorsementAdded
    | EndorsementRevoked
    | CheckedIn
    | BudgetReserved
    | BudgetReleased
    | ProtocolRefused,
    Field(discriminator="kind"),
]
"""Any event."""

EventKind = Literal[
    "session_started",
    "call_proposed",
    "plan_declared",
    "decision",
    "result_recorded",
    "source_added",
    "approval_requested",
    "approval_answered",
    "session_control",
    "snapshot_taken",
    "message",
    "session_ended",
    "endorsement_added",
    "endorsement_revoked",
    "checked_in",
    "budget_reserved",
    "budget_released",
    "protocol_refused",
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_json(data: bytes | str) -> Event:
    """Parse one stored event body."""
    return EVENT_ADAPTER.validate_json(data)


def event_to_json(event: Event) -> bytes:
    """The canonical stored body of an event (what the hash chain covers)."""
    return event.__pydantic_serializer__.to_json(event)


def _reason_text(reason: Reason) -> str:
    src = f" (data from events {', '.join(s[:12] for s in reason.sources)})" if reason.sources else ""
    return f"{reason.message} [{reason.rule}]{src}"
