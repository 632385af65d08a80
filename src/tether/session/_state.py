"""Session state as a fold over its events.

Nothing here reads a clock or the outside world: applying the same events in
the same order under the same policy gives the same state, which is what makes
crash recovery and policy replay exact.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.flow import TRUSTED, FlowTracker, Label, normalize
from tether.policy._compiled import Policy
from tether.store._events import (
    ApprovalAnswered,
    ApprovalRequested,
    CallProposed,
    DecisionMade,
    Event,
    ResultRecorded,
    SessionControl,
    SessionEnded,
    SessionStarted,
    SourceAdded,
)

Status = Literal["active", "paused", "killed", "ended"]
ApprovalStatus = Literal["none", "pending", "approved", "denied"]


@dataclass(slots=True)
class CallRecord:
    """A call the session has seen, and what became of it."""

    call_id: str
    tool: str
    args: Any
    call_hash: str
    time: float
    verdict: str = "pending"
    executed: bool = False
    approval: ApprovalStatus = "none"
    expires_at: float | None = None
    result_event: str | None = None


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
        elif isinstance(event, DecisionMade):
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.verdict = event.verdict
                if event.verdict == "allow":
                    self._count(rec, policy, event.time)
        elif isinstance(event, ResultRecorded):
            self.flow.add_source(event.output, Label.from_json(event.label), event.id)
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.result_event = event.id
        elif isinstance(event, SourceAdded):
            self.flow.add_source(event.text, Label.from_json(event.label), event.id)
        elif isinstance(event, ApprovalRequested):
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.approval = "pending"
                rec.expires_at = event.expires_at
        elif isinstance(event, ApprovalAnswered):
            rec = self.calls.get(event.call_id)
            if rec is not None and rec.approval == "pending" and rec.call_hash == event.call_hash:
                rec.approval = "approved" if event.approved else "denied"
                if event.approved:
                    self._count(rec, policy, event.time)
        elif isinstance(event, SessionStarted):
            self.principal = event.principal
            self.task = event.task
            self.task_norm = normalize(event.task)
            self.policy_hash = event.policy_hash
            self.policy_name = event.policy_name
            self.started_at = event.time
            self.scope = event.scope
            self.flow.pin(event.task, TRUSTED, event.id)
            for i, constant in enumerate(policy.spec.constants):
                self.flow.pin(constant, TRUSTED, f"policy:constants[{i}]")
        elif isinstance(event, SessionControl):
            if self.status not in ("killed", "ended"):
                self.status = {"pause": "paused", "resume": "active", "kill": "killed"}[event.action]  # type: ignore[assignment]
        elif isinstance(event, SessionEnded) and self.status != "killed":
            self.status = "ended"

    def _count(self, rec: CallRecord, policy: Policy, when: float) -> None:
        if rec.executed:
            return
        rec.executed = True
        self.calls_total += 1
        self.per_tool[rec.tool] += 1
        # Whatever ran put its arguments into the world (conservatively, reads too).
        self.flow.note_executed(rec.args)
        tool = policy.tools.get(rec.tool)
        if tool is None:
            return
        if tool.effect == "write":
            self.writes += 1
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
            "calls": {k: (v.tool, v.verdict, v.executed, v.approval) for k, v in self.calls.items()},
            **self.flow.digest(),
            "events": self.events,
            "last_hash": self.last_hash,
        }
