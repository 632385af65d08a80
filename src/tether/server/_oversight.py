"""Oversight of the sessions in one store: list them, read their timelines, answer their asks, stop them.

Everything goes through the :class:`~tether.store.EventStore` protocol and the sessions
themselves (under the policy each was started with, read from the store), so an answer
or a stop is bound, re-checked and logged exactly as when the agent's own process does
it, and the same code serves SQLite today and other stores later.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tether.errors import PolicyError, SessionError, StoreError
from tether.events import ApprovalAnswered, CallProposed, DecisionMade, Event, PlanDeclared
from tether.flow import walk_leaves
from tether.server._views import (
    ArgView,
    Budget,
    PendingCall,
    ReasonView,
    SessionRow,
    TimelineEntry,
    describe_source,
    label_json,
    timeline_entry,
)
from tether.session import Guard, Session
from tether.store import EventStore, PendingApproval

Action = Literal["pause", "resume", "kill"]
"""What a person can do to a session."""

INTERNAL_PREFIX = "mcp-pins:"
"""Sessions the MCP proxy keeps for tool-definition pins (not agent runs): hidden from oversight."""

HISTORY = 12
"""Recent events shown beside a pending call."""

_WINDOW = 512
"""Events read back to find a pending call's decision and the sources of its arguments."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class OversightError(Exception):
    """A request the oversight service refuses, with an HTTP-shaped status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        """404: no such session or call; 409: the session refuses it (killed, ended); 503: the store failed."""


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What came of a human's answer."""

    session_id: str
    """The session."""
    call_id: str
    """The call answered."""
    approved: bool
    """What the human said."""
    allowed: bool
    """Whether the call may now run (an approved call is checked again and may still be denied)."""
    message: str
    """One line saying so."""


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """What a control action did to one session."""

    session_id: str
    """The session."""
    status: str
    """Its status afterwards (``?`` when it could not be opened)."""
    error: str = ""
    """Why it was refused, if it was."""


class Oversight:
    """The sessions of one store, as a person overseeing them sees and steers them.

    Opened sessions are cached (the most recent ``cache_size``) and brought up to date
    with the log before every use, so a page costs a catch-up, not a fold of the whole
    session. Thread-safe: each session serialises its own use.
    """

    def __init__(self, store: EventStore, *, clock: Callable[[], float] = time.time, cache_size: int = 256) -> None:
        self.store = store
        """The event store."""
        self.clock = clock
        """Wall clock (UTC Unix seconds)."""
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # ------------------------------------------------------------ sessions

    def session(self, session_id: str) -> Session:
        """The session, up to date with the log. Raises :class:`OversightError` (404, 503)."""
        with self._lock:
            cached = self._cache.get(session_id)
            if cached is not None:
                self._cache.move_to_end(session_id)
        if cached is not None:
            try:
                cached.refresh()
            except (SessionError, StoreError) as exc:
                self._forget(session_id)
                raise OversightError(503, f"session {session_id!r} cannot be read: {exc}") from None
            return cached
        try:
            if self.store.head(session_id) is None:
                raise OversightError(404, f"no session {session_id!r}")
            opened = Guard.for_session(self.store, session_id).open_session(session_id)
        except (PolicyError, SessionError, ValueError) as exc:
            raise OversightError(409, f"session {session_id!r} cannot be opened: {exc}") from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        with self._lock:
            self._cache[session_id] = opened
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return opened

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)

    def sessions(self, *, status: str | None = None, principal: str | None = None, query: str = "") -> list[SessionRow]:
        """Every agent session, most recently active first, filtered by status, principal and a text
        in the id, task or policy name."""
        pending = self._pending_counts()
        rows = []
        for summary in self.store.sessions():
            if summary.session_id.startswith(INTERNAL_PREFIX):
                continue
            row = self._row(summary.session_id, summary.events, summary.first_time, summary.last_time, pending.get(summary.session_id, 0))
            if status and row.status != status:
                continue
            if principal is not None and principal != "" and row.principal != principal:
                continue
            if query and not any(query.lower() in s.lower() for s in (row.session_id, row.task, row.policy_name, row.principal)):
                continue
            rows.append(row)
        rows.sort(key=lambda r: r.last_activity, reverse=True)
        return rows

    def row(self, session_id: str) -> SessionRow:
        """One session's row. Raises :class:`OversightError` (404)."""
        head = self.store.head(session_id)
        if head is None or session_id.startswith(INTERNAL_PREFIX):
            raise OversightError(404, f"no session {session_id!r}")
        first = self.store.read(session_id, 0, limit=1)
        last = self.store.read(session_id, head.seq - 1, limit=1)
        pending = self._pending_counts().get(session_id, 0)
        return self._row(session_id, head.seq, first[0].event().time, last[0].event().time, pending)

    def _row(self, session_id: str, events: int, first: float, last: float, pending: int) -> SessionRow:
        try:
            sess = self.session(session_id)
        except OversightError as exc:
            return SessionRow(session_id, "?", "", "", "", "", events, pending, first, last, problem=str(exc))
        st = sess.state
        spec = sess.policy.spec.budgets
        budgets = (
            Budget("calls", st.calls_total, spec.max_calls),
            Budget("writes", st.writes, spec.max_writes),
            Budget("spend", st.spend, spec.max_spend),
            Budget("wall_time_s", round(max(0.0, last - st.started_at), 1), spec.max_wall_time_s),
        )
        return SessionRow(
            session_id, st.status, st.principal, st.policy_name, st.policy_hash, st.task, events, pending, first, last, budgets
        )

    def _pending_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.pending_approvals():
            counts[p.session_id] = counts.get(p.session_id, 0) + 1
        return counts

    def timeline(self, session_id: str, *, after_seq: int = 0, limit: int = 500) -> list[TimelineEntry]:
        """The session's events after ``after_seq`` (at most ``limit``), readable."""
        if self.store.head(session_id) is None:
            raise OversightError(404, f"no session {session_id!r}")
        return [timeline_entry(item) for item in self.store.read(session_id, after_seq, limit=limit)]

    def recent(self, session_id: str, count: int) -> list[TimelineEntry]:
        """The session's last ``count`` events."""
        head = self.store.head(session_id)
        if head is None:
            raise OversightError(404, f"no session {session_id!r}")
        return self.timeline(session_id, after_seq=max(0, head.seq - count), limit=count)

    # ------------------------------------------------------------ approvals

    def pending_approvals(self) -> list[PendingApproval]:
        """Every unanswered, unexpired approval request, oldest first (tool-definition pins excepted)."""
        now = self.clock()
        return [p for p in self.store.pending_approvals() if p.expires_at >= now and not p.session_id.startswith(INTERNAL_PREFIX)]

    def find(self, call: str) -> PendingApproval:
        """The one pending request whose call id is ``call`` or starts with it. Raises :class:`OversightError` (404)."""
        items = self.pending_approvals()
        exact = [p for p in items if p.call_id == call]
        # An empty prefix would match every call: never pick a call the person did not name.
        matches = exact or [p for p in items if call and p.call_id.startswith(call)]
        if len(matches) != 1:
            raise OversightError(404, f"{'no' if not matches else 'more than one'} pending call matches {call!r}")
        return matches[0]

    def pending(self, *, session_id: str | None = None) -> list[PendingCall]:
        """Each pending call with its whole arguments, their provenance, the rule that asked and the session's history."""
        out = []
        for p in self.pending_approvals():
            if session_id is not None and p.session_id != session_id:
                continue
            try:
                out.append(self.explain(p))
            except OversightError as exc:
                out.append(
                    PendingCall(
                        p.session_id,
                        p.call_id,
                        p.tool,
                        p.args,
                        (),
                        p.summary,
                        (ReasonView("", str(exc), None),),
                        p.requested_at,
                        p.expires_at,
                    )
                )
        return out

    def explain(self, p: PendingApproval) -> PendingCall:
        """One pending call, whole, with where each argument's data came from."""
        sess = self.session(p.session_id)
        head = sess.state.last_seq
        window = self.store.read(p.session_id, max(0, head - _WINDOW))
        events: dict[str, Event] = {}
        tools: dict[str, str] = {}
        reasons: tuple[ReasonView, ...] = ()
        for item in window:
            event = item.event()
            events[event.id] = event
            if isinstance(event, CallProposed | PlanDeclared):
                tools[event.call_id] = event.tool
            elif isinstance(event, DecisionMade) and event.call_id == p.call_id:
                reasons = tuple(ReasonView(r.rule, r.message, r.arg) for r in event.reasons)
        first = self.store.read(p.session_id, 0, limit=1)
        if first:
            events[first[0].event().id] = first[0].event()
        leaves = tuple(self._leaf(sess, path, value, events, tools) for path, value in _leaves(p.args))
        history = tuple(timeline_entry(item) for item in window[-HISTORY:])
        st = sess.state
        return PendingCall(
            p.session_id,
            p.call_id,
            p.tool,
            p.args,
            leaves,
            p.summary,
            reasons,
            p.requested_at,
            p.expires_at,
            st.principal,
            st.task,
            history,
        )

    @staticmethod
    def _leaf(sess: Session, path: str, value: Any, events: dict[str, Event], tools: dict[str, str]) -> ArgView:
        # The same lookup the guard made when it decided (values found nowhere carry the context label).
        origin = sess.state.flow.origin(value)
        sources = tuple(describe_source(events.get(eid), eid, tools) for eid in origin.sources)
        return ArgView(path, value, _text(value), label_json(origin.label), origin.found, origin.inherited, sources)

    @staticmethod
    def leaves(args: Any) -> list[tuple[str, str]]:
        """Every scalar of ``args`` with its path (``to[0]``), as text (strings as they are, others in JSON)."""
        return [(path, _text(value)) for path, value in _leaves(args)]

    def answer(self, call: str, approved: bool, *, by: str, note: str = "") -> AnswerOutcome:
        """Approve or refuse the pending call ``call`` (an id or a unique prefix). An approved call is
        decided again now: a budget, a rate or the session's status may still deny it."""
        target = self.find(call)
        sess = self.session(target.session_id)
        try:
            allowed = sess.answer(target.call_id, approved, by=by, note=note)
        except SessionError as exc:
            raise OversightError(409, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        if allowed:
            message = f"call {target.call_id} to {target.tool} approved by {by}"
        elif not approved:
            message = f"call {target.call_id} to {target.tool} refused by {by}"
        else:
            message = f"call {target.call_id} to {target.tool} NOT approved: {self._denial(sess, target.call_id)}"
        return AnswerOutcome(target.session_id, target.call_id, approved, allowed, message)

    def _denial(self, sess: Session, call_id: str) -> str:
        """Why an approved call was still denied (the answer event's re-check, or its timeout)."""
        for item in reversed(self.store.read(sess.id, max(0, sess.state.last_seq - 64))):
            event = item.event()
            if isinstance(event, ApprovalAnswered) and event.call_id == call_id:
                return event.note if event.by == "timeout" else event.describe()
        return "it was denied when re-checked"

    # ------------------------------------------------------------ control

    def control(self, session_id: str, action: Action, *, by: str, note: str = "") -> StopOutcome:
        """Pause, resume or kill one session. Pausing or killing denies its pending approvals; the
        agent's next check, in whatever process, is denied."""
        sess = self.session(session_id)
        try:
            sess.control(action, by=by, note=note)
        except SessionError as exc:
            raise OversightError(409, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        return StopOutcome(session_id, sess.state.status)

    def stop(self, action: Literal["pause", "kill"], *, principal: str | None, by: str, note: str = "") -> list[StopOutcome]:
        """Pause or kill every live session of ``principal`` (None: of the whole store). Sessions
        already stopped for good are left as they are; one that cannot be stopped is reported."""
        out = []
        for summary in self.store.sessions():
            sid = summary.session_id
            if sid.startswith(INTERNAL_PREFIX):
                continue
            try:
                sess = self.session(sid)
                if principal is not None and sess.state.principal != principal:
                    continue
                if sess.state.status in ("killed", "ended") or (action == "pause" and sess.state.status == "paused"):
                    continue
                out.append(self.control(sid, action, by=by, note=note))
            except OversightError as exc:
                out.append(StopOutcome(sid, "?", str(exc)))
        return out


def _leaves(args: Any) -> list[tuple[str, Any]]:
    """Every scalar of the arguments with its path; object keys too, unless they are plain names."""
    out: list[tuple[str, Any]] = []
    walk_leaves(args, "", out)
    return [(path.removeprefix("."), value) for path, value in out if not (path.endswith("}") and _PLAIN_KEY.fullmatch(str(value)))]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
