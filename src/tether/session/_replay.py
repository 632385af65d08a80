"""Policy replay: re-decide every recorded call of past sessions under another policy.

The history is taken as it happened (which calls ran, what they returned), but
outputs are relabelled and every decision is recomputed under the new policy at
the point in the session where it was originally made. The result is the list
of calls whose verdict would change: a dry run before deploying a policy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tether._decision import Decision, ToolCall
from tether.errors import SessionError
from tether.flow._labels import UNTRUSTED, Label
from tether.policy._compiled import Policy
from tether.session._engine import decide
from tether.session._labelling import result_label
from tether.session._state import SessionState
from tether.store._chain import EventStore
from tether.store._events import CallProposed, DecisionMade, ResultRecorded, SessionStarted


@dataclass(frozen=True, slots=True)
class ReplayChange:
    """A recorded call whose verdict differs under the new policy."""

    session_id: str
    call_id: str
    tool: str
    old_verdict: str
    new: Decision


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Summary of a replay over one or more sessions."""

    sessions: int
    calls: int
    changes: tuple[ReplayChange, ...]


def _relabel(policy: Policy, state: SessionState, event: ResultRecorded) -> Label:
    rec = state.calls.get(event.call_id)
    if rec is None:
        return UNTRUSTED
    return result_label(policy, state, rec.tool, rec.args, event.output, error=event.error)


def replay_session(store: EventStore, session_id: str, policy: Policy) -> Iterator[tuple[str, str, str, Decision]]:
    """Yield (call_id, tool, recorded verdict, new decision) for every decided call."""
    stored = store.read(session_id)
    if not stored:
        raise SessionError(f"no session {session_id!r} in the store")
    state = SessionState(session_id)
    pending: dict[str, CallProposed] = {}
    for item in stored:
        event = item.event()
        if isinstance(event, SessionStarted):
            # Scope and task come from the log; constants from the new policy.
            state.apply(event, policy)
            continue
        if isinstance(event, CallProposed):
            pending[event.call_id] = event
        elif isinstance(event, DecisionMade):
            proposed = pending.pop(event.call_id, None)
            if proposed is not None:
                args = proposed.args if isinstance(proposed.args, dict) else {"$args": proposed.args}
                new = decide(policy, state, ToolCall(proposed.tool, args, proposed.call_id), proposed.call_hash, event.time)
                yield proposed.call_id, proposed.tool, event.verdict, new
        elif isinstance(event, ResultRecorded):
            event = event.model_copy(update={"label": _relabel(policy, state, event)})
        state.apply(event, policy)


def replay(store: EventStore, policy: Policy, session_ids: Sequence[str] | None = None) -> ReplayReport:
    """Replay the named sessions (default: all) under ``policy``."""
    ids = list(session_ids) if session_ids else [s.session_id for s in store.sessions()]
    changes: list[ReplayChange] = []
    calls = 0
    for sid in ids:
        for call_id, tool, old, new in replay_session(store, sid, policy):
            calls += 1
            if new.verdict != old:
                changes.append(ReplayChange(sid, call_id, tool, old, new))
    return ReplayReport(len(ids), calls, tuple(changes))
