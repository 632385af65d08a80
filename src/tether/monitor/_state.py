"""Session state as a fold over its events.

Nothing here reads a clock or the outside world: applying the same events in
the same order under the same policy gives the same state, which is what makes
crash recovery and policy replay exact.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.approvals import ApprovalBook, EndorsementBook
from tether.events import (
    ApprovalAnswered,
    ApprovalRequested,
    CallProposed,
    CheckedIn,
    DecisionMade,
    EndorsementAdded,
    EndorsementRevoked,
    Event,
    PlanDeclared,
    ResultRecorded,
    SessionControl,
    SessionEnded,
    SessionStarted,
    SourceAdded,
)
from tether.flow import TRUSTED, UNTRUSTED, FlowTracker, Label, label, normalize
from tether.monitor._plan_book import PlanRecord, parse_plan
from tether.policy import Policy

Status = Literal["active", "paused", "killed", "ended"]
"""A session's status: only ``active`` sessions allow calls; ``killed`` and ``ended`` are final."""

AUTOMATIC_ANSWERERS = frozenset({"timeout", "guard"})
"""Who answers asks without a human: their answers are no check-in."""

MAX_SPARED_SHOWN = 8
"""Calls remembered per endorsement as the asks it spared (all are counted)."""
MAX_SPARED_ENDORSEMENTS = 4096
"""Endorsements whose spared asks a session keeps (the oldest are dropped past that)."""

MAX_CALL_RECORDS = 4096
"""Call records kept in memory (up to 1,024 more between clean-ups); calls awaiting an answer
are kept whatever their number. Older call ids stay unique through the store, which
refuses a reused id."""


@dataclass(slots=True)
class CallRecord:
    """A call the session has seen, and what became of it."""

    call_id: str
    """The call's id."""
    tool: str
    """The tool it names."""
    args: Any
    """Its arguments (JSON-safe form, as logged)."""
    call_hash: str
    """Hash of tool and arguments."""
    time: float
    """When it was proposed."""
    verdict: str = "pending"
    """The guard's decision (``pending`` until logged)."""
    executed: bool = False
    """Allowed, or asked and approved: it may run, and it counts against budgets."""
    result_event: str | None = None
    """The event that recorded its output, once recorded."""

    @property
    def unrecorded(self) -> bool:
        """It may run (or ran) but its result has not been recorded yet."""
        return self.executed and self.result_event is None


@dataclass(slots=True)
class SessionState:
    """Everything the guard knows about one session."""

    session_id: str
    principal: str = ""
    task: str = ""
    task_norm: str = ""
    policy_hash: str = ""
    policy_name: str = ""
    started_at: float = 0.0
    scope: dict[str, Any] | None = None
    status: Status = "active"
    flow: FlowTracker = field(default_factory=FlowTracker)
    """Provenance: sources, the context label, values sent out (the fold only feeds it)."""
    calls_total: int = 0
    writes: int = 0
    spend: float = 0.0
    per_tool: Counter[str] = field(default_factory=Counter)
    rate_times: dict[str, deque[float]] = field(default_factory=dict)
    calls: dict[str, CallRecord] = field(default_factory=dict)
    """Open calls and the most recent others (see ``MAX_CALL_RECORDS``)."""
    approvals: ApprovalBook = field(default_factory=ApprovalBook)
    """The session's approval requests (the one fold of approval state)."""
    endorsements: EndorsementBook = field(default_factory=EndorsementBook)
    """Session-scoped endorsements (principal-scoped ones are in the principal's ledger)."""
    spared: dict[str, list[str]] = field(default_factory=dict)
    """Endorsement id -> the calls whose ask it spared (the most recent ``MAX_SPARED_SHOWN``)."""
    spared_count: Counter[str] = field(default_factory=Counter)
    """Endorsement id -> how many asks it spared in this session."""
    last_checkin: float = 0.0
    """When a human last checked in or answered an ask (the start, before that)."""
    writes_since_checkin: int = 0
    """Writes that ran since then."""
    plans: dict[str, PlanRecord] = field(default_factory=dict)
    """Declared plans by id, with their status (see :mod:`tether.monitor._plans`)."""
    forget_at: int = MAX_CALL_RECORDS + 1024
    """Size of ``calls`` at which the next clean-up of old records runs."""
    events: int = 0
    last_seq: int = 0
    last_hash: str = ""

    @property
    def context(self) -> Label:
        """Join of the labels of everything the session has read."""
        return self.flow.context

    @context.setter
    def context(self, value: Label) -> None:
        # The context label only ever rises: assigning joins.
        self.flow.join_context(value)

    def apply(self, event: Event, policy: Policy) -> None:
        """Fold one event into the state."""
        self.events += 1
        if isinstance(event, CallProposed):
            self.calls[event.call_id] = CallRecord(event.call_id, event.tool, event.args, event.call_hash, event.time)
            if len(self.calls) > self.forget_at:
                self._forget_calls(policy)
        elif isinstance(event, PlanDeclared):
            self.plans[event.call_id] = PlanRecord(event.call_id, parse_plan(event.args)[0])
        elif isinstance(event, DecisionMade):
            plan = self.plans.get(event.call_id)
            if plan is not None and plan.status == "pending" and event.verdict != "ask":
                plan.status = "approved" if event.verdict == "allow" else "denied"
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.verdict = event.verdict
                if event.verdict == "allow":
                    self._count(rec, policy, event.time)
            for eid in event.endorsements:
                self._spare(eid, event.call_id)
        elif isinstance(event, ResultRecorded):
            self.flow.add_source(event.output, event.label, event.id)
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.result_event = event.id
        elif isinstance(event, SourceAdded):
            self.flow.add_source(event.text, event.label, event.id)
        elif isinstance(event, ApprovalRequested):
            self.approvals.requested(event)
        elif isinstance(event, ApprovalAnswered):
            rec = self.calls.get(event.call_id)
            answered = self.approvals.answered(event)
            if answered and event.allowed and rec is not None:
                self._count(rec, policy, event.time)
            plan = self.plans.get(event.call_id)
            if answered and plan is not None and plan.status == "pending":
                plan.status = "approved" if event.allowed else "denied"
            if event.by not in AUTOMATIC_ANSWERERS:
                self._checked_in(event.time)
        elif isinstance(event, EndorsementAdded):
            if event.scope == "session":
                self.endorsements.added(event)
        elif isinstance(event, EndorsementRevoked):
            self.endorsements.revoked(event)
        elif isinstance(event, CheckedIn):
            self._checked_in(event.time)
        elif isinstance(event, SessionStarted):
            self.principal = event.principal
            self.task = event.task
            self.task_norm = normalize(event.task)
            self.policy_hash = event.policy_hash
            self.policy_name = event.policy_name
            self.started_at = event.time
            self.last_checkin = event.time
            self.scope = event.scope
            self.flow.pin(event.task, TRUSTED, event.id)
            for i, constant in enumerate(policy.spec.constants):
                self.flow.pin(constant, TRUSTED, f"policy:constants[{i}]")
        elif isinstance(event, SessionControl):
            if self.status not in ("killed", "ended"):
                self.status = {"pause": "paused", "resume": "active", "kill": "killed"}[event.action]  # type: ignore[assignment]
        elif isinstance(event, SessionEnded) and self.status != "killed":
            self.status = "ended"
        # ``message`` events (the agent loop's conversation) only count: what the model read of a
        # tool is folded from ``result_recorded``, and the task from ``session_started``.

    def _forget_calls(self, policy: Policy) -> None:
        """Drop the oldest call records: closed ones first, then calls whose result never came;
        calls awaiting an answer are kept whatever their age.

        A call that may have run but whose result was not recorded cannot be recorded once its
        record is gone, yet its output may still reach the agent: the context takes the worst
        label that output could have had (fail closed).
        """
        excess = max(len(self.calls) - MAX_CALL_RECORDS, 1024)
        book = self.approvals
        waiting = {rec.call_id for rec in book.pending()}
        # The newest records (the call being decided, calls whose result is about to come) stay.
        candidates = list(self.calls.items())[:-64]
        closed = [k for k, rec in candidates if not rec.unrecorded and k not in waiting and rec.verdict != "pending"]
        unrecorded = [k for k, rec in candidates if rec.unrecorded]
        for call_id in (closed + unrecorded)[:excess]:
            rec = self.calls.pop(call_id)
            if rec.unrecorded:
                self.flow.join_context(_worst_output_label(policy, rec.tool))
        # Records that cannot go yet (calls awaiting an answer) must not make every later call
        # rescan them: the next clean-up waits for another 1,024 records.
        self.forget_at = max(MAX_CALL_RECORDS, len(self.calls)) + 1024

    def _spare(self, endorsement_id: str, call_id: str) -> None:
        self.spared_count[endorsement_id] += 1
        calls = self.spared.setdefault(endorsement_id, [])
        calls.append(call_id)
        if len(calls) > MAX_SPARED_SHOWN:
            del calls[0]
        if len(self.spared) > MAX_SPARED_ENDORSEMENTS:
            oldest = next(iter(self.spared))
            del self.spared[oldest]
            del self.spared_count[oldest]

    def _checked_in(self, when: float) -> None:
        self.last_checkin = max(self.last_checkin, when)
        self.writes_since_checkin = 0

    def _count(self, rec: CallRecord, policy: Policy, when: float) -> None:
        if rec.executed:
            return
        rec.executed = True
        self.calls_total += 1
        self.per_tool[rec.tool] += 1
        tool = policy.tool_for(rec.tool)
        # Whatever ran put its arguments into the world (conservatively, reads too); argument names
        # the tool does not declare are data the model chose, remembered like values.
        self.flow.note_executed(rec.args, tool.args if tool is not None else (), rec.tool)
        if tool is None:
            return
        if tool.effect_of(rec.args) == "write":
            self.writes += 1
            self.writes_since_checkin += 1
        if tool.spend_arg is not None and isinstance(rec.args, dict):
            amount = rec.args.get(tool.spend_arg)
            if isinstance(amount, int | float) and not isinstance(amount, bool):
                self.spend += float(amount)
        for rule, limit, window in policy.rate_rules_for(rec.tool):
            times = self.rate_times.setdefault(rule, deque())
            times.append(when)
            # Entries outside the window, or beyond the limit, can never change a decision.
            while times and (times[0] <= when - window or len(times) > limit):
                times.popleft()

    def snapshot(self) -> dict[str, Any]:
        """A comparable picture of the state (crash/resume equivalence)."""
        return {
            "session_id": self.session_id,
            "status": self.status,
            "calls_total": self.calls_total,
            "writes": self.writes,
            "spend": self.spend,
            "per_tool": dict(sorted(self.per_tool.items())),
            "rate_times": {k: list(v) for k, v in sorted(self.rate_times.items())},
            "calls": {k: (v.tool, v.verdict, v.executed, v.result_event) for k, v in self.calls.items()},
            "approvals": self.approvals.to_snapshot(),
            "endorsements": self.endorsements.to_snapshot(),
            "checkin": (self.last_checkin, self.writes_since_checkin),
            "spared": {k: (self.spared_count[k], list(v)) for k, v in self.spared.items()},
            "plans": {k: (len(v.writes), v.status) for k, v in self.plans.items()},
            "forget_at": self.forget_at,
            **self.flow.digest(),
            "events": self.events,
            "last_hash": self.last_hash,
        }


def _worst_output_label(policy: Policy, tool_name: str) -> Label:
    """The highest label an output of ``tool_name`` can be recorded with (an error is untrusted)."""
    tool = policy.tools.get(tool_name)
    if tool is None:
        return UNTRUSTED
    tags = set(tool.output_label.tags).union(*(rule.add for rule in tool.label_rules))
    return label("untrusted", tags, () if tool.output_readers else None)  # its readers: unknown, so none
