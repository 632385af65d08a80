"""Session state as a fold over its events.

Nothing here reads a clock or the outside world: applying the same events in
the same order under the same policy gives the same state, which is what makes
crash recovery and policy replay exact.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import normalize, number_forms
from tether.flow._provenance import MIN_GRAM_VALUE, NOT_FOUND, ProvenanceIndex
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

_MAX_CONTEXT_SOURCES = 16
_MAX_WRITTEN = 4096


def walk_leaves(value: Any, path: str, out: list[tuple[str, Any]]) -> None:
    """Every scalar inside ``value`` with its path (``to[0]``, ``opts.tag``); object keys are
    leaves too (``opts{KEY}``), since an attacker can put data in a key as easily as in a value."""
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((f"{path}{{{k}}}", k))
            walk_leaves(v, f"{path}.{k}", out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            walk_leaves(v, f"{path}[{i}]", out)
    else:
        out.append((path, value))


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
    index: ProvenanceIndex = field(default_factory=ProvenanceIndex)
    context: Label = TRUSTED
    context_sources: list[str] = field(default_factory=list)
    calls_total: int = 0
    writes: int = 0
    spend: float = 0.0
    per_tool: Counter[str] = field(default_factory=Counter)
    rate_times: dict[str, deque[float]] = field(default_factory=dict)
    calls: dict[str, CallRecord] = field(default_factory=dict)
    written: list[tuple[str, Label]] = field(default_factory=list)
    """Normalised values (8+ characters) that ran as arguments of write calls, with their
    labels when above ``TRUSTED``: data the agent put into the world keeps its label when a
    later output reads it back."""
    events: int = 0
    last_seq: int = 0
    last_hash: str = ""

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
            self._add_source(event.output, Label.from_json(event.label), event.id)
            rec = self.calls.get(event.call_id)
            if rec is not None:
                rec.result_event = event.id
        elif isinstance(event, SourceAdded):
            self._add_source(event.text, Label.from_json(event.label), event.id)
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
            self.index.add(event.task, TRUSTED, event.id)
            for i, constant in enumerate(policy.spec.constants):
                self.index.add(constant, TRUSTED, f"policy:constants[{i}]")
        elif isinstance(event, SessionControl):
            if self.status not in ("killed", "ended"):
                self.status = {"pause": "paused", "resume": "active", "kill": "killed"}[event.action]  # type: ignore[assignment]
        elif isinstance(event, SessionEnded) and self.status != "killed":
            self.status = "ended"

    def _add_source(self, text: str, lab: Label, event_id: str) -> None:
        self.index.add(text, lab, event_id)
        self.context = self.context.join(lab)
        if lab != TRUSTED and len(self.context_sources) < _MAX_CONTEXT_SOURCES:
            self.context_sources.append(event_id)

    def _count(self, rec: CallRecord, policy: Policy, when: float) -> None:
        if rec.executed:
            return
        rec.executed = True
        self.calls_total += 1
        self.per_tool[rec.tool] += 1
        tool = policy.tools.get(rec.tool)
        if tool is None:
            return
        if tool.effect_of(rec.args) == "write":
            self.writes += 1
            self._remember_written(rec.args)
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

    def provenance(self, value: Any) -> tuple[Label, bool, tuple[str, ...]]:
        """Label of one scalar, whether a source holds it, and the evidence (event ids).

        Strings are looked up as they are, numbers as whole words in any of their written
        forms (a trusted form wins). Values found nowhere, booleans and null carry the
        context label.
        """
        kind = type(value)
        if kind is str:
            match = self.index.lookup(value)
        elif kind is int or kind is float:
            found = [m for m in (self.index.lookup(f, whole_word=True) for f in number_forms(value)) if m.found]
            match = min(found, key=lambda m: m.label.untrusted) if found else NOT_FOUND
        else:
            match = NOT_FOUND
        if not match.found:
            return self.context, False, tuple(self.context_sources[:8])
        lab = match.label
        if not match.complete and lab.untrusted:
            lab = lab.join(self.context)  # a bound cut the search short: assume the worst
        return lab, True, match.sources

    def _remember_written(self, args: Any) -> None:
        leaves: list[tuple[str, Any]] = []
        walk_leaves(args, "", leaves)
        for _, value in leaves:
            if not isinstance(value, str) or len(self.written) >= _MAX_WRITTEN:
                continue
            norm = normalize(value)
            if len(norm) < MIN_GRAM_VALUE:
                continue
            lab = self.provenance(value)[0]
            if lab != TRUSTED:
                self.written.append((norm, lab))

    def snapshot(self) -> dict[str, Any]:
        """A comparable picture of the state (crash/resume equivalence)."""
        return {
            "session_id": self.session_id,
            "status": self.status,
            "context": self.context.describe(),
            "context_sources": list(self.context_sources),
            "calls_total": self.calls_total,
            "writes": self.writes,
            "spend": self.spend,
            "per_tool": dict(sorted(self.per_tool.items())),
            "rate_times": {k: list(v) for k, v in sorted(self.rate_times.items())},
            "calls": {k: (v.tool, v.verdict, v.executed, v.approval) for k, v in self.calls.items()},
            "written": [(v, lab.describe()) for v, lab in self.written],
            "index": self.index.digest(),
            "events": self.events,
            "last_hash": self.last_hash,
        }
