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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.approvals import Endorsement
from tether.errors import PolicyError, SessionError, StoreError
from tether.events import ApprovalAnswered, CallProposed, DecisionMade, EndorsementScope, Event, PlanDeclared, SessionStarted
from tether.flow import walk_leaves
from tether.monitor import LEDGER_PREFIX
from tether.server._views import (
    ArgView,
    Budget,
    CheckinView,
    EndorsementView,
    PendingCall,
    ReasonView,
    SessionRow,
    TimelineEntry,
    describe_source,
    label_json,
    timeline_entry,
)
from tether.session import Guard, Session, stored_policy
from tether.store import EventStore, PendingApproval

Action = Literal["pause", "resume", "kill"]
"""What a person can do to a session."""

INTERNAL_PREFIX = "mcp-pins:"
"""Sessions the MCP proxy keeps for tool-definition pins (not agent runs): hidden from oversight."""

HISTORY = 12
"""Recent events shown beside a pending call."""

HIDDEN = (INTERNAL_PREFIX, LEDGER_PREFIX)
"""Streams in the store that are not agent sessions: MCP pins and principals' ledgers."""

DEFAULT_ENDORSEMENT_S = 7 * 86400.0
"""How long an endorsement holds when nobody says (seven days)."""

_WINDOW = 512

_PENDING_TTL_S = 30.0
"""How long ``find`` reuses the list of pending requests for a whole call id (each hit is checked in its session)."""
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


@dataclass(slots=True)
class _Window:
    """What explaining a session's pending calls reads from its log (once per page)."""

    session: Session
    history: tuple[TimelineEntry, ...]
    events: dict[str, Event] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, tuple[ReasonView, ...]] = field(default_factory=dict)


class Oversight:
    """The sessions of one store, as a person overseeing them sees and steers them.

    Opened sessions are cached (the most recent ``cache_size``) and brought up to date
    with the log before every use, so a page costs a catch-up, not a fold of the whole
    session. Thread-safe: each session serialises its own use.
    """

    def __init__(self, store: EventStore, *, clock: Callable[[], float] = time.time, cache_size: int = 1024) -> None:
        self.store = store
        """The event store."""
        self.clock = clock
        """Wall clock (UTC Unix seconds)."""
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._pending_list: tuple[float, list[PendingApproval]] | None = None
        self._guards: dict[str, Guard] = {}

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
            opened = self._guard_for(session_id).open_session(session_id)
        except (PolicyError, SessionError, ValueError) as exc:
            raise OversightError(409, f"session {session_id!r} cannot be opened: {exc}") from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        with self._lock:
            self._cache[session_id] = opened
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return opened

    def _guard_for(self, session_id: str) -> Guard:
        """A guard under the policy the session was started with; one per policy, kept (compiling a
        policy costs far more than opening a session from its log)."""
        first = self.store.read(session_id, 0, limit=1)
        event = first[0].event() if first else None
        if not isinstance(event, SessionStarted):
            return Guard.for_session(self.store, session_id)  # raises the usual error
        with self._lock:
            guard = self._guards.get(event.policy_hash)
        if guard is None:
            guard = Guard(stored_policy(self.store, event.policy_hash), self.store)
            with self._lock:
                if len(self._guards) >= 64:
                    self._guards.clear()
                self._guards[event.policy_hash] = guard
        return guard

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)

    def sessions(self, *, status: str | None = None, principal: str | None = None, query: str = "") -> list[SessionRow]:
        """Every agent session, most recently active first, filtered by status, principal and a text
        in the id, task or policy name."""
        pending = self._pending_counts()
        rows = []
        for summary in self.store.sessions():
            if summary.session_id.startswith(HIDDEN):
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
        if head is None or session_id.startswith(HIDDEN):
            raise OversightError(404, f"no session {session_id!r}")
        first = self.store.read(session_id, 0, limit=1)
        last = self.store.read(session_id, head.seq - 1, limit=1)
        pending = self.pending_count(session_id)
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
            session_id,
            st.status,
            st.principal,
            st.policy_name,
            st.policy_hash,
            st.task,
            events,
            pending,
            first,
            last,
            budgets,
            fleet=self._fleet(sess),
            checkin=self._checkin(sess),
        )

    @staticmethod
    def _fleet(sess: Session) -> tuple[Budget, ...]:
        spec = sess.policy.spec.principal_budgets
        if spec is None or not spec.active:
            return ()
        ledger = sess.ledger()
        if ledger is None:
            return ()
        used = ledger.state
        out = [Budget("calls", used.calls, spec.max_calls), Budget("writes", used.writes, spec.max_writes)]
        out.append(Budget("spend", used.spend, spec.max_spend))
        out += [Budget(f"calls to {tool}", used.per_tool.get(tool, 0), limit) for tool, limit in sorted(spec.tool_calls.items())]
        return tuple(b for b in out if b.limit is not None or b.used)

    def _checkin(self, sess: Session) -> CheckinView | None:
        spec = sess.policy.spec.checkin
        if spec is None:
            return None
        st = sess.state
        due = (spec.after_writes is not None and st.writes_since_checkin >= spec.after_writes) or (
            spec.after_minutes is not None and self.clock() - st.last_checkin > spec.after_minutes * 60
        )
        return CheckinView(st.last_checkin, st.writes_since_checkin, spec.after_writes, spec.after_minutes, due)

    def _pending_counts(self, session_id: str | None = None, now: float | None = None) -> dict[str, int]:
        """Live requests per session (of one session, or all), counted by the store."""
        return self.store.pending_counts(live_at=self.clock() if now is None else now, session_id=session_id, hide=HIDDEN)

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
        """Every unanswered, unexpired approval request, oldest first (tool-definition pins excepted;
        expired requests are left in the store, unread)."""
        return self.store.pending_approvals(live_at=self.clock(), hide=HIDDEN)

    def pending_count(self, session_id: str | None = None) -> int:
        """How many requests :meth:`pending_approvals` holds (of one session, or all), counted by the store."""
        return sum(self._pending_counts(session_id).values())

    def find(self, call: str) -> PendingApproval:
        """The one pending request whose call id is ``call`` or starts with it. Raises :class:`OversightError` (404).

        A whole call id is looked up in the list of pending requests read at most ``_PENDING_TTL_S``
        ago (a person works through an inbox one answer after another), and the hit is checked in
        its session, brought up to date with the log; a miss, a hit no longer pending, and any
        prefix read the list afresh (a prefix must match one call among all those pending now)."""
        for fresh in (False, True):
            items = self._pending_cached(fresh)
            exact = [p for p in items if p.call_id == call]
            if not fresh and not exact:
                continue
            # An empty prefix would match every call: never pick a call the person did not name.
            matches = exact or [p for p in items if call and p.call_id.startswith(call)]
            if len(matches) == 1 and (fresh or self._still_pending(matches[0])):
                return matches[0]
            if fresh:
                raise OversightError(404, f"{'no' if not matches else 'more than one'} pending call matches {call!r}")
        raise AssertionError("unreachable")

    def _pending_cached(self, fresh: bool) -> list[PendingApproval]:
        now = time.monotonic()
        with self._lock:
            cached = self._pending_list
        if fresh or cached is None or now - cached[0] > _PENDING_TTL_S:
            items = self.pending_approvals()
            with self._lock:
                self._pending_list = (now, items)
            return items
        return cached[1]

    def _still_pending(self, p: PendingApproval) -> bool:
        try:
            return self.session(p.session_id).state.approvals.status(p.call_id, self.clock()) == "pending"
        except OversightError:
            return False

    def pending(self, *, session_id: str | None = None, limit: int | None = None, offset: int = 0) -> list[PendingCall]:
        """Each pending call (oldest first; ``limit`` of them from ``offset``) with its whole arguments,
        their provenance, the rule that asked and the session's history. Explaining a call reads its
        session, so a page costs its own calls only, whatever the number waiting."""
        return self.explain_all(self.pending_page(session_id=session_id, limit=limit, offset=offset)[0])

    def pending_page(
        self, *, session_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> tuple[list[PendingApproval], int]:
        """The pending requests (of one session, or all) from ``offset``, at most ``limit``, and how many there are in all
        (read and counted by the store: a page costs its own rows, whatever the number waiting)."""
        now = self.clock()
        page = self.store.pending_approvals(live_at=now, session_id=session_id, hide=HIDDEN, limit=limit, offset=offset)
        return page, sum(self._pending_counts(session_id, now).values())

    def explain_all(self, items: list[PendingApproval]) -> list[PendingCall]:
        """:meth:`explain` for each request (the log of each session read once); one that cannot be
        explained is shown with why."""
        out = []
        windows: dict[str, _Window] = {}
        for p in items:
            try:
                window = windows.get(p.session_id)
                if window is None:
                    window = windows[p.session_id] = self._window(p.session_id)
                out.append(self._explain(p, window))
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
        return self._explain(p, self._window(p.session_id))

    def _window(self, session_id: str) -> _Window:
        """The session's recent events (and its first), read once for every pending call of it."""
        sess = self.session(session_id)
        stored = self.store.read(session_id, max(0, sess.state.last_seq - _WINDOW))
        window = _Window(sess, tuple(timeline_entry(item) for item in stored[-HISTORY:]))
        for item in stored:
            event = item.event()
            window.events[event.id] = event
            if isinstance(event, CallProposed | PlanDeclared):
                window.tools[event.call_id] = event.tool
            elif isinstance(event, DecisionMade):
                window.reasons[event.call_id] = tuple(ReasonView(r.rule, r.message, r.arg) for r in event.reasons)
        first = self.store.read(session_id, 0, limit=1)
        if first:
            window.events[first[0].event().id] = first[0].event()
        return window

    def _explain(self, p: PendingApproval, window: _Window) -> PendingCall:
        sess = window.session
        leaves = tuple(self._leaf(sess, path, value, window.events, window.tools) for path, value in _leaves(p.args))
        st = sess.state
        return PendingCall(
            p.session_id,
            p.call_id,
            p.tool,
            p.args,
            leaves,
            p.summary,
            window.reasons.get(p.call_id, ()),
            p.requested_at,
            p.expires_at,
            st.principal,
            st.task,
            window.history,
            tuple(sess.asked_args(p.call_id)),
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

    def answer(
        self,
        call: str,
        approved: bool,
        *,
        by: str,
        note: str = "",
        remember: Sequence[str] | None = None,
        scope: EndorsementScope = "session",
        expires_in_s: float | None = DEFAULT_ENDORSEMENT_S,
    ) -> AnswerOutcome:
        """Approve or refuse the pending call ``call`` (an id or a unique prefix). An approved call is
        decided again now: a budget, a rate or the session's status may still deny it.

        ``remember`` (approve and remember): endorse the values of these arguments (empty: those
        whose provenance caused the ask) for the session or the principal, for ``expires_in_s``
        seconds (None: until revoked)."""
        target = self.find(call)
        sess = self.session(target.session_id)
        expires_at = None if expires_in_s is None else self.clock() + expires_in_s
        try:
            allowed = sess.answer(target.call_id, approved, by=by, note=note, remember=remember, scope=scope, expires_at=expires_at)
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

    # ------------------------------------------------------------ endorsements and check-ins

    def endorsements(
        self,
        *,
        principal: str | None = None,
        session_id: str | None = None,
        live_only: bool = False,
        principals: Collection[str] | None = None,
    ) -> list[EndorsementView]:
        """Endorsements not revoked (of one principal, of some principals, or holding in one session),
        newest first, each with the asks it spared."""
        now = self.clock()
        if principal is not None:
            principals = [principal]
        sessions = [self.session(session_id)] if session_id is not None else self._agent_sessions(principals)
        found: dict[str, Endorsement] = {}
        spared: dict[str, list[tuple[str, str]]] = {}
        counts: dict[str, int] = {}
        for sess in sessions:
            for item in sess.endorsements(live_only=live_only):
                found[item.id] = item
            st = sess.state
            for eid, calls in st.spared.items():
                spared.setdefault(eid, []).extend((sess.id, c) for c in calls)
                counts[eid] = counts.get(eid, 0) + st.spared_count[eid]
        out = [
            EndorsementView(
                e.id,
                e.scope,
                e.principal,
                e.origin_session,
                e.tool,
                e.arg,
                e.value,
                e.expires_at,
                e.by,
                e.time,
                e.live(now),
                counts.get(e.id, 0),
                tuple(spared.get(e.id, [])[-8:]),
            )
            for e in found.values()
        ]
        out.sort(key=lambda v: v.time, reverse=True)
        return out

    def _agent_sessions(self, principals: Collection[str] | None) -> list[Session]:
        """The agent sessions (of ``principals``: told by each one's first event, so the others are not opened)."""
        out = []
        for summary in self.store.sessions():
            sid = summary.session_id
            if sid.startswith(HIDDEN):
                continue
            if principals is not None:
                first = self.store.read(sid, 0, limit=1)
                started = first[0].event() if first else None
                if not isinstance(started, SessionStarted) or started.principal not in principals:
                    continue
            try:
                out.append(self.session(sid))
            except OversightError:
                continue
        return out

    def revoke_endorsement(self, endorsement: str, *, by: str, note: str = "") -> EndorsementView:
        """Withdraw an endorsement (an id or a unique prefix). Raises :class:`OversightError` (404)."""
        matches = [e for e in self.endorsements() if e.id == endorsement] or [
            e for e in self.endorsements() if endorsement and e.id.startswith(endorsement)
        ]
        if len(matches) != 1:
            raise OversightError(404, f"{'no' if not matches else 'more than one'} endorsement matches {endorsement!r}")
        target = matches[0]
        sess = self.session(target.origin_session)
        try:
            sess.revoke_endorsement(target.id, by=by, note=note)
        except SessionError as exc:
            raise OversightError(409, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        return target

    def checkin(self, session_id: str, *, by: str, note: str = "") -> SessionRow:
        """A person looked at the session and lets it go on (the policy's ``checkin`` counters restart)."""
        sess = self.session(session_id)
        try:
            sess.checkin(by=by, note=note)
        except SessionError as exc:
            raise OversightError(409, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        return self.row(session_id)

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
            if sid.startswith(HIDDEN):
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
