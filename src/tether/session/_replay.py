"""Policy replay: re-decide every recorded call of past sessions under another policy.

The history is taken as it happened (which calls ran, what they returned), but
outputs are relabelled and every decision is recomputed under the new policy at
the point in the session where it was originally made. The result is the list
of calls whose verdict would change: a dry run before deploying a policy.

Refusals made outside the policy are carried over as recorded: a call the session
refused as malformed (an unusable tool name or call id, arguments that could not be
logged) and a detector's finding tighten the replayed decision exactly as they
tightened the original one, so replaying a session under its own policy changes nothing.
Each decision is replayed with the principal's ledger as it saw it (``ledger_seq``): the
endorsements shared by the principal's sessions and the use of its fleet budgets then.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tether._decision import Decision, Reason, ToolCall, Verdict
from tether.errors import SessionError
from tether.events import ApprovalAnswered, CallProposed, DecisionMade, PlanDeclared, ResultRecorded, SessionStarted
from tether.flow import UNTRUSTED
from tether.monitor import LEDGER_PREFIX, SessionState, decide, decide_plan, result_labels
from tether.policy import Policy
from tether.session._guard import stored_policy
from tether.session._ledger import PrincipalLedger
from tether.store import EventStore

Baseline = Literal["recorded", "stored"]
"""What a replayed decision is compared with: the verdict in the log (``recorded``), or the
decision the session's own stored policy gives when replayed the same way (``stored``:
isolates what the policy change does from detectors and changes of the engine)."""

_OUTSIDE_POLICY = {("malformed", "tool"), ("malformed", "call_id"), ("malformed", "limits"), ("error", "store"), ("error", "guard")}


@dataclass(frozen=True, slots=True)
class HumanAnswer:
    """How an ``ask`` was answered in the recorded session."""

    approved: bool
    """What the answer said."""
    by: str
    """Who answered (``timeout`` and ``guard`` for automatic answers)."""
    note: str
    """Their note."""
    allowed: bool
    """Whether the call could run after the answer (an approval re-decided as deny could not)."""

    def describe(self) -> str:
        """``approved by ana``, ``refused by timeout: ...``."""
        word = "approved" if self.approved else "refused"
        tail = "" if self.allowed or not self.approved else ", then denied on re-check"
        return f"{word} by {self.by}" + (f": {self.note}" if self.note else "") + tail


@dataclass(frozen=True, slots=True)
class ReplayedCall:
    """One recorded call and its decision under the replayed policy."""

    session_id: str
    """The session."""
    call_id: str
    """The call."""
    tool: str
    """The tool it named."""
    args: Any
    """Its arguments as logged."""
    old_verdict: Verdict
    """The verdict it is compared with (recorded, or from the stored policy; see :data:`Baseline`)."""
    old_reasons: tuple[Reason, ...]
    """Why it was decided so."""
    answer: HumanAnswer | None
    """How a human (or a timeout) answered it in the recorded session, if it was asked."""
    new: Decision
    """The decision under the replayed policy."""


ReplayChange = ReplayedCall
"""A replayed call whose verdict differs from its baseline."""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Summary of a replay over one or more sessions."""

    sessions: int
    """Sessions replayed."""
    calls: int
    """Decided calls replayed."""
    changes: tuple[ReplayChange, ...]
    """The calls whose verdict would change."""
    policies: dict[str, str]
    """Session id -> hash of the policy it was recorded under."""


def _relabel(policy: Policy, state: SessionState, event: ResultRecorded) -> ResultRecorded:
    """The result as ``policy`` would have labelled it (its label and its records' readers)."""
    rec = state.calls.get(event.call_id)
    if rec is None:
        return event.model_copy(update={"label": UNTRUSTED, "records": ()})
    lab, records = result_labels(policy, state, rec.tool, rec.args, event.output, error=event.error)
    return event.model_copy(update={"label": lab, "records": records})


def _carried(recorded: DecisionMade) -> tuple[Reason, ...]:
    """The recorded reasons that came from outside the policy (they hold under any policy)."""
    return tuple(r for r in recorded.reasons if r.kind == "detector" or (r.kind, r.rule) in _OUTSIDE_POLICY)


def _decisions(store: EventStore, session_id: str, policy: Policy) -> Iterator[tuple[CallProposed | PlanDeclared, DecisionMade, Decision]]:
    """Yield (proposed call, recorded decision, decision under ``policy``) for every decided call
    and plan. A plan's recorded outcome (approved or not) is what later calls are replayed
    against: the replay shows how the plan itself would be decided, not what it would have
    changed downstream."""
    stored = store.read(session_id)
    if not stored:
        raise SessionError(f"no session {session_id!r} in the store")
    state = SessionState(session_id)
    pending: dict[str, CallProposed | PlanDeclared] = {}
    ledger: PrincipalLedger | None = None
    for item in stored:
        event = item.event()
        if isinstance(event, SessionStarted):
            # Scope and task come from the log; constants from the new policy.
            state.apply(event, policy)
            ledger = PrincipalLedger(store, policy, event.principal)
            continue
        if isinstance(event, CallProposed | PlanDeclared):
            pending[event.call_id] = event
        elif isinstance(event, DecisionMade):
            proposed = pending.pop(event.call_id, None)
            if isinstance(proposed, PlanDeclared):
                carried = _carried(event)
                if any(r.kind != "detector" for r in carried):
                    new = Decision("deny", proposed.call_id, proposed.tool, carried, proposed.call_hash, policy.hash)
                else:
                    new = decide_plan(policy, state, proposed.call_id, proposed.args, proposed.call_hash, event.time)
                yield proposed, event, new
            elif proposed is not None:
                carried = _carried(event)
                if any(r.kind != "detector" for r in carried):
                    new = Decision("deny", proposed.call_id, proposed.tool, carried, proposed.call_hash, policy.hash)
                else:
                    args = proposed.args if isinstance(proposed.args, dict) else {"$args": proposed.args}
                    if ledger is not None:
                        # The principal's ledger as the decision saw it (shared endorsements, fleet budgets).
                        ledger.fold_until(event.ledger_seq)
                    call = ToolCall(proposed.tool, args, proposed.call_id)
                    new = decide(policy, state, call, proposed.call_hash, event.time, ledger.state if ledger is not None else None)
                    for reason in carried:
                        new = new.tighten("deny" if event.verdict == "deny" else "ask", reason)
                yield proposed, event, new
        elif isinstance(event, ResultRecorded):
            event = _relabel(policy, state, event)
        state.apply(event, policy)


def recorded_policy_hash(store: EventStore, session_id: str) -> str:
    """The hash of the policy a session was started under."""
    first = store.read(session_id, 0, limit=1)
    event = first[0].event() if first else None
    if not isinstance(event, SessionStarted):
        raise SessionError(f"no session {session_id!r} in the store (or it does not begin with session_started)")
    return event.policy_hash


def replay_session(
    store: EventStore, session_id: str, policy: Policy | None = None, *, baseline: Baseline = "recorded"
) -> list[ReplayedCall]:
    """Every decided call of a session, re-decided under ``policy`` (None: the session's own stored policy)."""
    old_hash = recorded_policy_hash(store, session_id)
    new_policy = policy if policy is not None else stored_policy(store, old_hash)
    answers: dict[str, HumanAnswer] = {}
    for item in store.read(session_id):
        event = item.event()
        if isinstance(event, ApprovalAnswered):
            answers.setdefault(event.call_id, HumanAnswer(event.approved, event.by, event.note, event.allowed))
    replayed = list(_decisions(store, session_id, new_policy))
    old: dict[str, tuple[Verdict, tuple[Reason, ...]]]
    if baseline == "stored":
        old_policy = stored_policy(store, old_hash)
        old = {p.call_id: (d.verdict, d.reasons) for p, _, d in _decisions(store, session_id, old_policy)}
    else:
        old = {p.call_id: (r.verdict, r.reasons) for p, r, _ in replayed}
    return [ReplayedCall(session_id, p.call_id, p.tool, p.args, *old[p.call_id], answers.get(p.call_id), new) for p, _, new in replayed]


def replay(
    store: EventStore, policy: Policy | None, session_ids: Sequence[str] | None = None, *, baseline: Baseline = "recorded"
) -> ReplayReport:
    """Replay the named sessions (default: all) under ``policy`` (None: each session's own stored policy)."""
    ids = list(session_ids) if session_ids else [s.session_id for s in store.sessions() if not s.session_id.startswith(LEDGER_PREFIX)]
    changes: list[ReplayChange] = []
    calls = 0
    policies: dict[str, str] = {}
    for sid in ids:
        policies[sid] = recorded_policy_hash(store, sid)
        for call in replay_session(store, sid, policy, baseline=baseline):
            calls += 1
            if call.new.verdict != call.old_verdict:
                changes.append(call)
    return ReplayReport(len(ids), calls, tuple(changes), policies)
