"""The guard as a service: begin, check, record, add sources, answer and end sessions for agents
that run elsewhere, over any :class:`~tether.store.EventStore`.

A worker keeps no state of its own that matters: the log is the truth. It caches the most
recently used sessions (folded from their snapshot and chain on demand, by
:meth:`Guard.open_session`), so any worker can serve any session, one after another or at once.
Before a request a cached session is brought up to the store's head, unless the store vouches
that nothing was appended to it since (``known_head``: SQLite's ``PRAGMA data_version``, exact;
PostgreSQL's LISTEN/NOTIFY, which may lag a commit by a moment). Only requests that decide
through an append skip the read (checks, plans, records, sources, messages), because the append
is the guarantee: it expects the cached head (``expect_seq``), so a decision built on a state
that another worker moved meanwhile loses its append, folds what it missed and decides again
(see :meth:`Session._transact <tether.session.Session>`): a stale cache costs a retry, never a
decision on old state. A record refused on a cache that was not read is tried again after
reading, and a check or plan asked again (answered from the log, not through an append) reads
first. Summaries, approvals, answers and ends always read the log first.

A check carries a call id the client chose, so a client that lost a reply can ask again,
through another worker: a call id already logged with the same tool and arguments is answered
with the decision already logged, never decided (or counted) twice. A plan declared through the
service carries a plan id the client chose, and is answered again the same way.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tether._decision import Decision, ToolCall
from tether._json import jsonsafe_exact
from tether.approvals import ApprovalStatus
from tether.errors import PolicyError, SessionError, StoreError
from tether.events import CallProposed, DecisionMade, MessageAdded, PlanDeclared, ResultRecorded, SessionStarted
from tether.flow import Label, walk_leaves
from tether.monitor import PLAN_TOOL
from tether.policy import Policy
from tether.server._oversight import OversightError
from tether.server._views import label_json
from tether.session import Guard, Session, call_hash, policy_document, stored_policy
from tether.store import EventStore

KnownHead = Callable[[str], "int | None"]
"""A store's ``known_head(session_id)``: the head it vouches for without reading the log, or None."""

LABELLED_LEAVES = 64
"""Most argument values whose labels a check's answer lists (the decision weighs them all)."""

_LOOK_BACK = 4096
"""Events read back to find a call's logged decision when a check is asked again."""


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """What a check (or a plan's declaration) through the service gives back."""

    decision: Decision
    """The logged decision."""
    labels: dict[str, dict[str, Any]]
    """The label of each argument value (by path), as the session knows it after the check."""
    replayed: bool
    """True when the call (or plan) id was already logged with this call: this is that decision, not a new one."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        d = self.decision
        return {
            "verdict": d.verdict,
            "call_id": d.call_id,
            "tool": d.tool,
            "reasons": [r.to_json() for r in d.reasons],
            "call_hash": d.call_hash,
            "policy_hash": d.policy_hash,
            "explanation": d.explain(),
            "labels": self.labels,
            "replayed": self.replayed,
        }


class _Entry:
    """A cached session and the lock that serialises this worker's requests on it."""

    __slots__ = ("lock", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lock = threading.Lock()


class GuardService:
    """Sessions of one store served to remote agents. Thread-safe; any number of these (in any
    number of processes) may serve the same store and the same sessions.

    ``cache_size`` bounds the sessions kept folded in memory (least recently used dropped first);
    ``policy_cache`` bounds the compiled policies (one guard per policy hash).
    """

    def __init__(self, store: EventStore, *, cache_size: int = 256, policy_cache: int = 32, clock: Callable[[], float] = time.time) -> None:
        if cache_size < 1 or policy_cache < 1:
            raise ValueError("cache sizes must be at least 1")
        self.store = store
        """The event store (the only state that matters)."""
        self.clock = clock
        """Wall clock (UTC Unix seconds)."""
        self.cache_size = cache_size
        """Most sessions kept folded in memory."""
        self.policy_cache = policy_cache
        """Most policies kept compiled."""
        self._sessions: OrderedDict[str, _Entry] = OrderedDict()
        self._guards: OrderedDict[str, Guard] = OrderedDict()
        self._lock = threading.Lock()
        known: KnownHead | None = getattr(store, "known_head", None)
        self._known_head = known
        self.reads_skipped = 0
        """Requests served from a cached session the store vouched was current (no read of the log)."""

    # ------------------------------------------------------------ caches

    def cached(self) -> int:
        """How many sessions this worker holds folded now."""
        with self._lock:
            return len(self._sessions)

    def _guard(self, policy_hash: str, policy: Policy | None = None) -> Guard:
        with self._lock:
            guard = self._guards.get(policy_hash)
            if guard is not None:
                self._guards.move_to_end(policy_hash)
                return guard
        if policy is None:
            policy = stored_policy(self.store, policy_hash)
        guard = Guard(policy, self.store, clock=self.clock)
        with self._lock:
            guard = self._guards.setdefault(policy_hash, guard)
            while len(self._guards) > self.policy_cache:
                self._guards.popitem(last=False)
        return guard

    def _keep(self, session: Session) -> _Entry:
        with self._lock:
            entry = self._sessions.get(session.id)
            if entry is None:
                entry = self._sessions[session.id] = _Entry(session)
            self._sessions.move_to_end(session.id)
            while len(self._sessions) > self.cache_size:
                self._sessions.popitem(last=False)
            return entry

    def forget(self, session_id: str) -> None:
        """Drop a session from the cache (the next request folds it again from the store)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def _entry(self, session_id: str) -> _Entry:
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is not None:
                self._sessions.move_to_end(session_id)
                return entry
        try:
            first = self.store.read(session_id, 0, limit=1)
            if not first:
                raise OversightError(404, f"no session {session_id!r}")
            started = first[0].event()
            if not isinstance(started, SessionStarted):
                raise OversightError(409, f"session {session_id!r} does not begin with session_started")
            session = self._guard(started.policy_hash).open_session(session_id)
        except (PolicyError, SessionError, ValueError) as exc:
            raise OversightError(409, f"session {session_id!r} cannot be opened: {exc}") from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        return self._keep(session)

    def _current(self, session: Session) -> bool:
        """Whether the store vouches that ``session`` (cached) is at its head."""
        if self._known_head is None:
            return False
        try:
            return self._known_head(session.id) == session.state.last_seq
        except Exception:  # a hint only: when it fails, the log is read
            return False

    @contextmanager
    def _use(self, session_id: str, *, appends: bool = False) -> Iterator[Session]:
        """The session, up to date with the store's head, held by this worker until the block ends.
        ``appends``: the block decides through an append that expects the cached head, so the read
        of the log is skipped when the store vouches the cache is current (see the module docstring).
        A store failure drops it from the cache (503): the next request starts from the log."""
        entry = self._entry(session_id)
        with entry.lock:
            try:
                if appends and self._current(entry.session):
                    self.reads_skipped += 1
                else:
                    entry.session.refresh()
                yield entry.session
            except StoreError as exc:
                self.forget(session_id)
                raise OversightError(503, f"the event store failed: {exc}") from None
            except SessionError as exc:
                raise OversightError(409, str(exc)) from None

    # ------------------------------------------------------------ policies

    def put_policy(self, text: str) -> dict[str, str]:
        """Keep a policy (YAML text) in the store by its content hash, so sessions can begin under it."""
        try:
            policy = Policy.from_yaml(text, source="guard API")
            self.store.put_policy(policy.hash, policy.name, policy_document(policy))
        except PolicyError as exc:
            raise OversightError(422, f"the policy does not load: {exc}") from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        return {"policy_hash": policy.hash, "name": policy.name}

    def stored_hash(self, text: str) -> str | None:
        """The hash of a policy given as YAML text when the store already holds it, else None."""
        try:
            found = Policy.from_yaml(text, source="guard API").hash
            return found if self.store.get_policy(found) is not None else None
        except PolicyError as exc:
            raise OversightError(422, f"the policy does not load: {exc}") from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None

    # ------------------------------------------------------------ sessions

    def begin(
        self,
        task: str,
        *,
        principal: str,
        policy_hash: str | None = None,
        policy_text: str | None = None,
        scope: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        """Begin a session under a policy the store holds (``policy_hash``) or one given as YAML
        text (``policy_text``, stored by its hash). ``retry``: the client is asking again after a
        lost reply, so a session with this id, principal and task already begun is the answer."""
        if (policy_hash is None) == (policy_text is None):
            raise OversightError(422, "give the policy by its hash (stored) or as YAML text, not both")
        try:
            if policy_text is not None:
                policy = Policy.from_yaml(policy_text, source="guard API")
                guard = self._guard(policy.hash, policy)
            else:
                assert policy_hash is not None
                guard = self._guard(policy_hash)
        except PolicyError as exc:
            raise OversightError(422, f"the policy does not load: {exc}") from None
        except SessionError as exc:
            raise OversightError(404, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        try:
            session = guard.start_session(task, principal=principal, scope=scope, metadata=metadata, session_id=session_id)
        except SessionError as exc:
            if retry and session_id is not None and "already exists" in str(exc):
                summary = self.summary(session_id)
                if summary["principal"] == principal and summary["task"] == task:
                    return summary
            raise OversightError(409, str(exc)) from None
        except StoreError as exc:
            raise OversightError(503, f"the event store failed: {exc}") from None
        self._keep(session)
        return self._summary(session)

    def principal_of(self, session_id: str) -> str:
        """Who the session acts for (for access checks; set when it began, so no read of the log)."""
        entry = self._entry(session_id)
        with entry.lock:
            return entry.session.state.principal

    def summary(self, session_id: str) -> dict[str, Any]:
        """The session's status, principal, policy, budgets used and left, pending asks."""
        with self._use(session_id) as session:
            return self._summary(session)

    def _summary(self, session: Session) -> dict[str, Any]:
        st = session.state
        spec = session.policy.spec.budgets
        now = self.clock()
        return {
            "session_id": session.id,
            "status": st.status,
            "principal": st.principal,
            "task": st.task,
            "policy_name": st.policy_name,
            "policy_hash": st.policy_hash,
            "events": st.last_seq,
            "head": st.last_hash,
            "context": label_json(st.context),
            "budgets": {
                "calls": {"used": st.calls_total, "limit": spec.max_calls},
                "writes": {"used": st.writes, "limit": spec.max_writes},
                "spend": {"used": st.spend, "limit": spec.max_spend},
            },
            "pending": [r.call_id for r in st.approvals.pending() if r.expires_at >= now],
        }

    # ------------------------------------------------------------ the guard

    def check(self, session_id: str, tool: str, args: Any, call_id: str) -> CheckAnswer:
        """Decide on a call (logged before the answer). The same call id asked again with the same
        tool and arguments gets the decision already logged."""
        with self._use(session_id, appends=True) as session:
            if isinstance(call_id, str) and call_id in session.state.calls:
                # Asked again: answered from the log, not through an append, so from a cache that
                # has read it (the call may have run and been recorded through another worker).
                session.refresh()
            earlier = self._replay(session, tool, args, call_id)
            if earlier is not None:
                return CheckAnswer(earlier, self._labels(session, args), True)
            decision = session.check(ToolCall(tool, args, call_id))
            if decision.call_id != call_id and any(r.rule == "call_id" for r in decision.reasons):
                # Another worker logged this call id between our catch-up and our append.
                earlier = self._replay(session, tool, args, call_id)
                if earlier is not None:
                    return CheckAnswer(earlier, self._labels(session, args), True)
            if any(r.kind == "error" and r.rule == "store" for r in decision.reasons):
                self.forget(session_id)  # denied while the store is down; reloaded from the log next time
            return CheckAnswer(decision, self._labels(session, args), False)

    def declare_plan(self, session_id: str, writes: Any, plan_id: str) -> CheckAnswer:
        """Declare the writes the task intends (:meth:`Session.declare_plan <tether.session.Session>`),
        decided like a call of ``tether.plan`` and logged before the answer; an ask is answered by an
        overseer like any other. The same plan id declared again with the same writes gets the
        decision already logged. ``labels``: the label of each planned value (by path)."""
        plan = {"writes": writes}
        with self._use(session_id, appends=True) as session:
            if isinstance(plan_id, str) and plan_id in session.state.plans:
                session.refresh()  # answered from the log (see check)
            earlier = self._replay_plan(session, writes, plan_id)
            if earlier is not None:
                return CheckAnswer(earlier, self._labels(session, plan), True)
            decision = session.declare_plan(writes, plan_id=plan_id)
            if decision.call_id != plan_id and any(r.rule == "call_id" for r in decision.reasons):
                # Another worker logged this plan id between our catch-up and our append.
                earlier = self._replay_plan(session, writes, plan_id)
                if earlier is not None:
                    return CheckAnswer(earlier, self._labels(session, plan), True)
            if any(r.kind == "error" and r.rule == "store" for r in decision.reasons):
                self.forget(session_id)
            return CheckAnswer(decision, self._labels(session, plan), False)

    def _replay_plan(self, session: Session, writes: Any, plan_id: str) -> Decision | None:
        if plan_id not in session.state.plans:
            return None
        try:
            safe, lost = jsonsafe_exact({"writes": writes})
            if lost is not None:
                return None
            digest = call_hash(PLAN_TOOL, safe)
        except Exception:
            return None
        earlier = self._logged_decision(session, plan_id)
        return earlier if earlier is not None and earlier.tool == PLAN_TOOL and earlier.call_hash == digest else None

    def _replay(self, session: Session, tool: str, args: Any, call_id: str) -> Decision | None:
        rec = session.state.calls.get(call_id)
        # A call whose output was recorded was answered and ran: asking again is not a lost reply,
        # and must not admit it a second time outside its budget (the session denies the reused id).
        if rec is None or rec.tool != tool or rec.result_event is not None:
            return None
        try:
            safe, lost = jsonsafe_exact(args)
            if lost is not None or call_hash(tool, safe) != rec.call_hash:
                return None
        except Exception:
            return None
        return self._logged_decision(session, call_id)

    def _logged_decision(self, session: Session, call_id: str) -> Decision | None:
        hi = session.state.last_seq
        lo = max(0, hi - _LOOK_BACK)
        made: DecisionMade | None = None
        proposed: CallProposed | PlanDeclared | None = None
        while hi > lo and (made is None or proposed is None):
            start = max(lo, hi - 256)
            for item in reversed(self.store.read(session.id, start, limit=hi - start)):
                event = item.event()
                if isinstance(event, DecisionMade) and event.call_id == call_id:
                    made = event
                elif isinstance(event, CallProposed | PlanDeclared) and event.call_id == call_id:
                    proposed = event
            hi = start
        if made is None or proposed is None:
            return None
        return Decision(made.verdict, call_id, proposed.tool, made.reasons, proposed.call_hash, made.policy_hash)

    @staticmethod
    def _labels(session: Session, args: Any) -> dict[str, dict[str, Any]]:
        leaves: list[tuple[str, Any]] = []
        walk_leaves(args, "", leaves)
        flow = session.state.flow
        return {path.removeprefix("."): label_json(flow.origin(value).label) for path, value in leaves[:LABELLED_LEAVES]}

    def record(self, session_id: str, call_id: str, output: Any, *, error: bool = False, retry: bool = False) -> tuple[Label, bool]:
        """Record an admitted call's output; returns its label and whether it was already recorded
        (only when ``retry``: the client asks again after a lost reply, and the first record stands)."""
        with self._use(session_id, appends=True) as session:
            for attempt in range(2):
                rec = session.state.calls.get(call_id)
                if retry and rec is not None and rec.result_event is not None:
                    found = self._recorded(session, call_id)
                    if found is not None:
                        return found.label, True
                try:
                    return session.record_result(call_id, output, error=error), False
                except SessionError:
                    # Refused on the cache (a call admitted, or recorded, through another worker and
                    # not read yet?): read the log and look once more; refused again, it stands.
                    if attempt:
                        raise
                    session.refresh()
                except StoreError:
                    self.forget(session_id)
                    raise
            raise AssertionError("unreachable")

    def _recorded(self, session: Session, call_id: str) -> ResultRecorded | None:
        hi = session.state.last_seq
        for item in reversed(self.store.read(session.id, max(0, hi - _LOOK_BACK))):
            event = item.event()
            if isinstance(event, ResultRecorded) and event.call_id == call_id:
                return event
        return None

    def add_source(self, session_id: str, text: str, *, label: Label, origin: str) -> str:
        """Add data the agent read outside a tool call; returns the event id."""
        with self._use(session_id, appends=True) as session:
            return session.add_source(text, label=label, origin=origin)

    def log_message(self, session_id: str, message: dict[str, Any], *, retry: bool = False) -> str:
        """Log a message of the agent's conversation (stamped with this service's clock); returns
        its event id. ``retry``: a message whose id is among the latest events is not logged twice."""
        try:
            event = MessageAdded.model_validate({**message, "session_id": session_id, "time": self.clock()})
        except ValueError as exc:
            raise OversightError(422, f"not a message: {str(exc)[:500]}") from None
        with self._use(session_id, appends=not retry) as session:
            if retry:
                latest = self.store.read(session.id, max(0, session.state.last_seq - 64))
                if any(item.event().id == event.id for item in latest):
                    return event.id
            session.log_message(event)
            return event.id

    def events(self, session_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The session's events after ``after_seq`` exactly as logged: ``seq``, ``prev_hash``, ``hash``
        and ``body`` (the canonical JSON the hash covers), so a client can check the chain itself."""
        with self._use(session_id) as session:
            items = self.store.read(session.id, after_seq, limit=limit)
        return [{"seq": i.seq, "prev_hash": i.prev_hash, "hash": i.hash, "body": i.body.decode("utf-8")} for i in items]

    # ------------------------------------------------------------ approvals and the end

    def approval(self, session_id: str, call_id: str) -> ApprovalStatus:
        """The ask's status now (an expired ask is denied, and logged so)."""
        with self._use(session_id) as session:
            return session.approval_status(call_id)

    def answer(self, session_id: str, call_id: str, approved: bool, *, by: str, note: str = "") -> bool:
        """A human's answer to an ask (re-decided when approved); returns whether the call may run."""
        with self._use(session_id) as session:
            return session.answer(call_id, approved, by=by, note=note)

    def end(self, session_id: str, reason: str = "completed") -> dict[str, Any]:
        """End the session (its pending asks are denied); returns its summary."""
        with self._use(session_id) as session:
            session.end(reason)
            return self._summary(session)
