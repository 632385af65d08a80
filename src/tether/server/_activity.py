"""A session's activity as the charts show it: decisions over time and how long asks waited."""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.events import ApprovalAnswered, ApprovalRequested, DecisionMade
from tether.store import EventStore

ACTIVITY_EVENTS = 20_000
"""Events read back for a session's charts (the most recent)."""


@dataclass(frozen=True, slots=True)
class Activity:
    """What a session's charts are drawn from."""

    decisions: list[tuple[float, str]] = field(default_factory=list)
    """(UTC time, verdict) of each decision."""
    waits: list[tuple[float, str]] = field(default_factory=list)
    """(seconds waited, ``approved``/``refused``/``timed out``) of each answered ask."""
    pending: int = 0
    """Asks still waiting at the end of the window."""


def session_activity(store: EventStore, session_id: str, *, last: int = ACTIVITY_EVENTS) -> Activity:
    """The decisions and ask waits among the session's last ``last`` events."""
    head = store.head(session_id)
    if head is None:
        return Activity()
    out = Activity()
    asked: dict[str, float] = {}
    for item in store.read(session_id, max(0, head.seq - last)):
        event = item.event()
        if isinstance(event, DecisionMade):
            out.decisions.append((event.time, event.verdict))
        elif isinstance(event, ApprovalRequested):
            asked[event.call_id] = event.time
        elif isinstance(event, ApprovalAnswered):
            since = asked.pop(event.call_id, None)
            if since is not None:
                outcome = "timed out" if event.by == "timeout" else "approved" if event.approved else "refused"
                out.waits.append((max(0.0, event.time - since), outcome))
    return Activity(out.decisions, out.waits, len(asked))
