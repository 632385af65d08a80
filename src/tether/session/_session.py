"""A session: one agent run under a guard, shared safely by any number of processes.

Every change to a session is an append to its hash-chained log, and every append
names the sequence number its writer last saw. When another process got there
first, the store refuses the append (``StaleSession``); the session folds the events
it had not seen and decides again. So no decision is ever committed on stale
state: two processes under one spend budget can never spend it twice, a call id is
never logged twice, and :meth:`Session.refresh` sees every event, whoever wrote it.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from tether._decision import Decision, Reason, ToolCall, new_id
from tether._json import dumps, jsonsafe_exact, output_text
from tether.approvals import ApprovalStatus
from tether.errors import DuplicateCall, SessionError, StaleSession, StoreError
from tether.events import (
    ApprovalRequested,
    BudgetReleased,
    BudgetReserved,
    CallProposed,
    DecisionMade,
    Event,
    MessageAdded,
    PlanDeclared,
    ProtocolRefused,
    ResultRecorded,
    SessionEnded,
    SessionStarted,
    SnapshotTaken,
    SourceAdded,
)
from tether.flow import TRUSTED, UNTRUSTED, Label
from tether.monitor import PLAN_TOOL, Detector, SessionState, decide, decide_plan, result_label, result_labels, spend_of, tighten
from tether.policy import Policy
from tether.session import _snapshot as snapshots
from tether.session._inputs import bool_param, clean_text, free_text, label_param, name_problem, shown
from tether.session._ledger import PrincipalLedger
from tether.session._oversight import SessionOversight
from tether.session._snapshot import SnapshotPolicy, Work
from tether.store import GENESIS, EventStore, StoredEvent, chain_break

MAX_OUTPUT_CHARS = 16 << 20
"""A tool output longer than this is refused before any work: neither indexed nor logged (a notice
with its length is recorded in its place, labelled untrusted and with every tag the session has read)."""
MAX_RETRIES = 64
"""Appends retried after losing a race to another writer before giving up (and denying)."""

T = TypeVar("T")


def call_hash(tool: str, safe_args: Any) -> str:
    """Hash binding an approval to exactly one tool and argument set."""
    return "sha256:" + hashlib.sha256(dumps({"tool": tool, "args": safe_args})).hexdigest()


def _output_as_text(output: Any) -> tuple[str, bool, int]:
    """The text of an output, whether it had to be replaced (it could not be turned into text),
    and its length when it is over :data:`MAX_OUTPUT_CHARS` (0 otherwise; the text is then a notice)."""
    try:
        text = output_text(output)
    except Exception as exc:
        try:
            why = f"{type(exc).__name__}: {exc}"
        except Exception:
            why = type(exc).__name__
        return clean_text(f"[tether: the output could not be read as text ({why[:200]})]"), True, 0
    if len(text) > MAX_OUTPUT_CHARS:
        # Refused before any work (no encoding check, no normalising, indexing or logging of
        # megabytes): the notice is recorded instead, and its label is raised (see record_result).
        return f"[tether: an output of {len(text)} characters was not recorded: over the cap of {MAX_OUTPUT_CHARS}]", False, len(text)
    return clean_text(text), False, 0


class SessionHost(Protocol):
    """What a session takes from the guard that opens it (:class:`~tether.session.Guard` is one):
    its configuration, read once when the session is built."""

    policy: Policy
    store: EventStore
    detectors: tuple[Detector, ...]
    clock: Callable[[], float]
    snapshots: SnapshotPolicy

    def new_state(self, session_id: str) -> SessionState:
        """The empty state a session's events are folded into."""
        ...


class Session(SessionOversight):
    """One agent run under a guard. Create with :meth:`Guard.start_session`, :meth:`Guard.resume_session`
    or :meth:`Guard.open_session`.

    Thread-safe; several :class:`Session` objects (in one process or many) may serve
    the same session id at once.
    """

    def __init__(self, guard: SessionHost, state: SessionState) -> None:
        self.guard = guard
        """The guard (the factory that opened this session, with its configuration)."""
        self.policy: Policy = guard.policy
        """The policy every decision of this session is made under."""
        self.store: EventStore = guard.store
        """Where this session's events go."""
        self.detectors: tuple[Detector, ...] = tuple(guard.detectors)
        """Optional checks that may only tighten a decision (run on every check and on re-decisions at approval time)."""
        self.clock: Callable[[], float] = guard.clock
        """The time source (UTC Unix seconds)."""
        self.snapshots: SnapshotPolicy = guard.snapshots
        """When this session saves a snapshot of its state on its own."""
        self.state = state
        """The folded state (read it, do not modify it)."""
        self._lock = threading.RLock()
        self._broken: str | None = None
        self._since_snapshot = Work()
        self._ledger: PrincipalLedger | None = None

    # ------------------------------------------------------------ opening

    @classmethod
    def begin(cls, guard: SessionHost, started: SessionStarted) -> Session:
        """Open a new session by logging its ``session_started`` event (refused when the id exists)."""
        session = cls(guard, guard.new_state(started.session_id))
        sid = started.session_id
        if session.store.head(sid) is not None:
            raise SessionError(f"session {sid!r} already exists")

        def build() -> tuple[list[Event], None]:
            # Another process may have started this id since the check above: the append then
            # loses the race and folds that start; never append a second one after it.
            if session.state.last_seq:
                raise SessionError(f"session {sid!r} already exists")
            return [started], None

        try:
            session._transact(build)
        except StoreError as exc:
            if session.store.head(sid) is not None:
                raise SessionError(f"session {sid!r} already exists") from exc
            raise
        return session

    @classmethod
    def load(cls, guard: SessionHost, session_id: str, *, verified: bool) -> Session:
        """Rebuild a session from its log: from the newest snapshot bound to the chain, else by
        folding every event. ``verified``: the whole chain was just recomputed, so the events
        read here need no second check (a snapshot's tail is always checked)."""
        restored = snapshots.restore(guard.store, session_id, guard.policy)
        if restored is not None:
            state, tail = restored
            session = cls(guard, state)
            session._apply(tail)
            return session
        session = cls(guard, guard.new_state(session_id))
        head = session.store.head(session_id)
        stored = session.store.read(session_id)
        if not verified:
            session._check_chain(stored)
        session._apply(stored)
        last = (session.state.last_seq, session.state.last_hash)
        if head is None or last[0] < head.seq or (last[0] == head.seq and last[1] != head.hash):
            raise SessionError(f"session {session_id!r}: the log does not end at its recorded head (truncated?); run 'tether audit verify'")
        return session

    @property
    def id(self) -> str:
        """The session id."""
        return self.state.session_id

    @property
    def context(self) -> Label:
        """Join of the labels of everything the agent has read."""
        return self.state.context

    # ------------------------------------------------------------ event plumbing

    def _apply(self, stored: Sequence[StoredEvent]) -> None:
        """Fold events that follow the state (checked by ``_check_chain`` when read from the store;
        appended by this session otherwise, linked by the store in the same transaction)."""
        policy = self.policy
        for item in stored:
            self.state.apply(item.event(), policy)
            self.state.last_seq = item.seq
            self.state.last_hash = item.hash
        self._since_snapshot.add(stored)

    def _catch_up(self) -> int:
        stored = self.store.read(self.id, self.state.last_seq)
        self._check_chain(stored)
        self._apply(stored)
        return len(stored)

    def _check_chain(self, stored: Sequence[StoredEvent]) -> None:
        """Refuse events read from the store whose hash does not cover their body and predecessor:
        an event edited in the database (or written by a broken writer) is never folded."""
        bad = chain_break(stored, self.state.last_seq, self.state.last_hash or GENESIS)
        if bad is not None:
            raise StoreError(
                f"session {self.id!r}: event {bad.seq} does not match its hash (the log was modified); run 'tether audit verify'"
            )

    def _transact(self, build: Callable[[], tuple[Sequence[Event], T]]) -> T:
        """Build events from the current state and append them, if nobody appended first.

        The first attempt is optimistic. A writer that lost the race then takes its turn at the
        store's write lock (``EventStore.turn``): inside it, it folds what it missed, builds again
        and appends, and nobody can move the head in between, so a loser waits once instead of
        losing again to writers that are always up to date (writers take turns). What is
        committed was always decided on the latest state.
        """
        stored: list[StoredEvent] | None = None
        result: T
        for attempt in range(MAX_RETRIES):
            with self.store.turn() if attempt else contextlib.nullcontext():
                if attempt:
                    self._catch_up()
                events, result = build()
                if not events:
                    return result
                try:
                    stored = self.store.append(self.id, events, expect_seq=self.state.last_seq)
                except StaleSession:
                    continue
            break
        if stored is None:
            raise StoreError(f"session {self.id!r}: lost the race to other writers {MAX_RETRIES} times in a row")
        self._apply(stored)
        if self.snapshots.due(self._since_snapshot):
            self._save_snapshot()
        return result

    def save_snapshot(self) -> bool:
        """Save a snapshot of the state now, bound to the chain by a ``snapshot_taken`` event (one is
        also saved on its own when :class:`SnapshotPolicy` says enough work was done since the last).
        False when another writer appended first (the next commit tries again) or the store refused it."""
        with self._lock:
            return self._save_snapshot()

    def _save_snapshot(self) -> bool:
        state = self.state
        try:
            body, digest = snapshots.encode(state)
        except Exception:  # a snapshot only saves time: failing to take one must never fail a commit
            return False
        record = snapshots.record_for(state, body, digest)
        marker = SnapshotTaken(session_id=self.id, time=self.clock(), seq=state.last_seq, digest=digest, policy_hash=self.policy.hash)
        try:
            stored = self.store.append(self.id, [marker], expect_seq=state.last_seq)
            self._apply(stored)
            self.store.put_snapshot(record)
        except (StaleSession, StoreError):
            return False
        self._since_snapshot = Work()
        return True

    def refresh(self) -> int:
        """Fold in the events other processes appended (approvals, kills, their calls); return how many."""
        with self._lock:
            return self._catch_up()

    # ------------------------------------------------------------ the monitor

    def check(self, call: ToolCall | str, args: dict[str, Any] | None = None) -> Decision:
        """Decide on a proposed call; the call and decision are logged before returning.

        Never raises for bad input: a call that cannot be understood or logged as given
        is denied (and logged in a sanitised form).
        """
        if not isinstance(call, ToolCall):
            call = ToolCall(call, args if args is not None else {})
        with self._lock:
            try:
                return self._check(call)
            except StoreError as exc:  # an unlogged call never runs
                self._broken = f"event store unavailable ({exc}); denying every call until the session is resumed"
                return self._refused(call, Reason("error", "store", f"could not log the call: {exc}"))
            except Exception as exc:
                return self._refused(
                    call, Reason("error", "guard", f"internal error while checking the call ({type(exc).__name__}); denied")
                )

    def _refused(self, call: ToolCall, reason: Reason) -> Decision:
        tool, _ = name_problem(call.tool)
        call_id = call.id if isinstance(call.id, str) else new_id()
        return Decision("deny", call_id, tool, (reason,), "sha256:unloggable", self.policy.hash)

    def _check(self, call: ToolCall) -> Decision:
        policy = self.policy
        tool, tool_problem = name_problem(call.tool)
        call_id, id_problem = name_problem(call.id)
        refusal: Reason | None = None
        if tool_problem is not None:
            refusal = Reason("malformed", "tool", f"tool name {tool_problem}; denied")
        if id_problem is not None or not call_id:
            refusal = Reason("malformed", "call_id", f"call id {call_id!r} is not usable ({id_problem or 'empty'}); denied")
            call_id = new_id()
        try:
            safe, lost = jsonsafe_exact(call.args)
            digest = call_hash(tool, safe)
        except Exception as exc:  # fail closed: what cannot be logged does not run
            safe, digest, lost = {"$unloggable": type(exc).__name__}, "sha256:unloggable", type(exc).__name__
        if lost is not None:
            # The fold (budgets, what the session sent out) reads the log: it must hold what runs.
            refusal = Reason("malformed", "limits", f"arguments cannot be logged faithfully ({lost}); denied")
        if self._broken is not None:
            refusal = Reason("error", "store", self._broken)
        clean = ToolCall(tool, call.args if isinstance(call.args, dict) else {"$args": safe}, call_id)
        if not isinstance(call.args, dict) and refusal is None:
            refusal = Reason("malformed", "limits", f"arguments must be an object, got {type(call.args).__name__}")

        def build() -> tuple[list[Event], Decision]:
            # Decided afresh on every attempt: a retry after losing a race sees the new state.
            now = self.clock()
            reason = refusal
            call = clean
            if reason is None and (call.id in self.state.calls or call.id in self.state.plans):
                # Never let a new call take over an earlier one's record (and its approval).
                reason = Reason("malformed", "call_id", f"call id {call.id!r} was already used in this session; denied")
            if reason is not None and reason.rule == "call_id":
                call = ToolCall(call.tool, call.args, new_id())
            ledger_seq = 0
            if reason is not None:
                decision = Decision("deny", call.id, call.tool, (reason,), digest, policy.hash)
            else:
                decision, ledger_seq = self._decide(clean, digest, now)
            proposed = CallProposed(session_id=self.id, time=now, call_id=call.id, tool=call.tool, args=safe, call_hash=digest)
            return self._decided(now, proposed, decision, ledger_seq), decision

        for _ in range(MAX_RETRIES):
            try:
                return self._transact(build)
            except DuplicateCall:
                # The id was used long ago (no longer in memory): deny, under a fresh id.
                refusal = Reason("malformed", "call_id", f"call id {clean.id!r} was already used in this session; denied")
        raise StoreError("could not find an unused call id")

    def ledger(self) -> PrincipalLedger | None:
        """The principal's ledger, up to date (None before the session has started)."""
        ledger = self._ledger_as_known()
        if ledger is not None:
            ledger.catch_up()
        return ledger

    def _ledger_as_known(self) -> PrincipalLedger | None:
        """The principal's ledger as last folded (read from the store the first time)."""
        if self._ledger is None:
            if not self.state.principal:
                return None
            self._ledger = PrincipalLedger(self.store, self.policy, self.state.principal)
            self._ledger.catch_up()
        return self._ledger

    def _decide(self, call: ToolCall, digest: str, now: float, *, approved: bool = False) -> tuple[Decision, int]:
        """Decide on the session and its principal's ledger as they are now (decision, then detectors).

        When the policy sets ``principal_budgets``, an allow first reserves the call's share in the
        ledger (conditionally: a lost race is decided again on the new ledger), so no two sessions
        of one principal can spend the same unit. A reservation left by an earlier attempt of this
        call that is no longer an allow is released. ``approved``: a human approved the call, so an
        ``ask`` runs too. Returns the decision and the ledger event it saw.
        """
        policy = self.policy
        ledger = self._ledger_as_known()
        if ledger is None:
            return tighten(decide(policy, self.state, call, digest, now), call, self.state, self.detectors), 0
        budgets = policy.spec.principal_budgets
        fleet = budgets is not None and budgets.active
        if not fleet:
            return self._decide_on_endorsements(ledger, call, digest, now)

        def attempt() -> tuple[list[Event], tuple[Decision, int]]:
            seen = ledger.state.last_seq
            decision = tighten(decide(policy, self.state, call, digest, now, ledger.state), call, self.state, self.detectors)
            held = ledger.state.reserved(self.id, call.id)
            runs = decision.verdict == "allow" or (approved and decision.verdict == "ask")
            if fleet and runs and not held:
                tool = policy.tool_for(call.tool)
                write = tool is not None and tool.effect_of(call.args) == "write"
                spend = spend_of(tool, call.args) if tool is not None else 0.0
                reserve = BudgetReserved(
                    session_id=ledger.id, time=now, for_session=self.id, call_id=call.id, tool=call.tool, write=write, spend=spend
                )
                return [reserve], (decision, seen)
            if held and not runs:
                return [BudgetReleased(session_id=ledger.id, time=now, for_session=self.id, call_id=call.id)], (decision, seen)
            return [], (decision, seen)

        return ledger.commit(attempt, MAX_RETRIES)

    def _decide_on_endorsements(self, ledger: PrincipalLedger, call: ToolCall, digest: str, now: float) -> tuple[Decision, int]:
        """Without fleet budgets, the ledger matters only through principal endorsements, and is read
        only when they can matter: an allow that needed none stands whatever the ledger holds now;
        an ask or a deny (a new endorsement could spare it) or an allow spared by a principal
        endorsement (it could have been revoked) is decided again if the ledger moved. Either way the
        decision names the ledger event it saw, so a replay gives the same. Saves a store read on
        most checks."""
        policy, state = self.policy, self.state
        decision = tighten(decide(policy, state, call, digest, now, ledger.state), call, state, self.detectors)
        shared = any(ledger.state.endorsements.get(e) is not None for e in decision.endorsements)
        if decision.verdict == "allow" and not shared:
            return decision, ledger.state.last_seq
        seen = ledger.state.last_seq
        ledger.catch_up()
        if ledger.state.last_seq == seen:
            return decision, seen
        return tighten(decide(policy, state, call, digest, now, ledger.state), call, state, self.detectors), ledger.state.last_seq

    def declare_plan(self, writes: Any, *, plan_id: str | None = None) -> Decision:
        """Declare the writes the task intends: a list of ``{"tool": NAME, "args": {ARG: VALUE}}``
        (an argument left out is unconstrained by the plan). Logged as a ``plan_declared`` event and
        decided like a call of the pseudo-tool ``tether.plan`` (its id is ``decision.call_id``):
        ``allow`` (approved: the session's first plan, declared before any untrusted data was read,
        fitting the policy), ``ask`` (one approval request for the whole plan, answered with
        :meth:`answer` like any call) or ``deny``. See docs/policy.md, "Plans and intent".

        Never raises for bad input: a plan that cannot be understood or logged is denied.
        """
        plan_id = plan_id if plan_id is not None else new_id()
        with self._lock:
            try:
                return self._declare_plan(writes, plan_id)
            except StoreError as exc:
                self._broken = f"event store unavailable ({exc}); denying every call until the session is resumed"
                return self._refused(ToolCall(PLAN_TOOL, {}, plan_id), Reason("error", "store", f"could not log the plan: {exc}"))
            except Exception as exc:
                return self._refused(
                    ToolCall(PLAN_TOOL, {}, plan_id),
                    Reason("error", "guard", f"internal error while checking the plan ({type(exc).__name__}); denied"),
                )

    def _declare_plan(self, writes: Any, plan_id: str) -> Decision:
        policy = self.policy
        plan_id, id_problem = name_problem(plan_id)
        refusal: Reason | None = None
        if id_problem is not None or not plan_id:
            refusal = Reason("malformed", "call_id", f"plan id {plan_id!r} is not usable ({id_problem or 'empty'}); denied")
            plan_id = new_id()
        try:
            safe, lost = jsonsafe_exact({"writes": writes})
            digest = call_hash(PLAN_TOOL, safe)
        except Exception as exc:
            safe, digest, lost = {"writes": []}, "sha256:unloggable", type(exc).__name__
        if lost is not None:
            refusal = Reason("malformed", "limits", f"the plan cannot be logged faithfully ({lost}); denied")
        if self._broken is not None:
            refusal = Reason("error", "store", self._broken)
        if not isinstance(safe, dict):
            safe = {"writes": []}

        def build() -> tuple[list[Event], Decision]:
            now = self.clock()
            reason = refusal
            pid = plan_id
            if reason is None and (pid in self.state.calls or pid in self.state.plans):
                reason = Reason("malformed", "call_id", f"id {pid!r} was already used in this session; denied")
            if reason is not None and reason.rule == "call_id":
                pid = new_id()
            if reason is not None:
                decision = Decision("deny", pid, PLAN_TOOL, (reason,), digest, policy.hash)
            else:
                decision = decide_plan(policy, self.state, pid, safe, digest, now)
            declared = PlanDeclared(session_id=self.id, time=now, call_id=pid, args=safe, call_hash=digest)
            return self._decided(now, declared, decision), decision

        for _ in range(MAX_RETRIES):
            try:
                return self._transact(build)
            except DuplicateCall:
                refusal = Reason("malformed", "call_id", f"id {plan_id!r} was already used in this session; denied")
        raise StoreError("could not find an unused plan id")

    def _decided(self, now: float, proposed: CallProposed | PlanDeclared, decision: Decision, ledger_seq: int = 0) -> list[Event]:
        """The events of one decided call or plan: requests past their deadline denied now (nothing
        waits on them, and they no longer hold memory or count against the pending limit), what was
        proposed, the decision, and the approval request when it asks."""
        events: list[Event] = [self._refusal(rec, now, "timeout", "approval timed out") for rec in self.state.approvals.expired(now)]
        events.append(proposed)
        events.append(
            DecisionMade(
                session_id=self.id,
                time=now,
                call_id=proposed.call_id,
                verdict=decision.verdict,
                reasons=decision.reasons,
                policy_hash=self.policy.hash,
                endorsements=decision.endorsements,
                ledger_seq=ledger_seq,
            )
        )
        if decision.verdict == "ask":
            events.append(
                ApprovalRequested(
                    session_id=self.id,
                    time=now,
                    call_id=proposed.call_id,
                    call_hash=proposed.call_hash,
                    expires_at=now + self.policy.spec.approval_timeout_s,
                    summary=decision.explain()[:2000],
                )
            )
        return events

    def output_label(self, call_id: str, text: str, *, error: bool = False, data: Any = None) -> Label:
        """The label a recorded call's output ``text`` gets (policy label, echoed arguments, errors;
        ``data``: the structured output ``text`` was written from, whose fields may name its readers)."""
        rec = self.state.calls.get(call_id)
        if rec is None:
            return UNTRUSTED
        return result_label(self.policy, self.state, rec.tool, rec.args, text, error=error, data=data)

    def record_result(self, call_id: str, output: Any, *, error: bool = False) -> Label:
        """Record what an allowed (or approved) call returned: label it, index it, log it.

        Raises :class:`SessionError` for a call that may not have run (unknown, denied,
        still waiting for approval) or whose result was already recorded: the log must
        never show a result after a denial.
        """
        if not isinstance(call_id, str):
            raise SessionError(f"call id must be text (str), got {type(call_id).__name__}")
        call_id = name_problem(call_id)[0]
        error = bool_param("error", error)
        text, unreadable, over_cap = _output_as_text(output)
        with self._lock:

            def build() -> tuple[list[Event], Label]:
                rec = self.state.calls.get(call_id)
                if rec is None:
                    raise SessionError(f"call {shown(call_id)} is not a call of session {self.id!r} (or is too old to record)")
                if not rec.executed:
                    raise SessionError(f"call {shown(call_id)} was not allowed to run ({rec.verdict}); its result cannot be recorded")
                if rec.result_event is not None:
                    raise SessionError(f"the result of call {shown(call_id)} was already recorded")
                structured = output if isinstance(output, dict | list | tuple) and not (unreadable or over_cap) else None
                lab, records = result_labels(self.policy, self.state, rec.tool, rec.args, text, error=error or unreadable, data=structured)
                if over_cap:
                    # The agent may read text the session never indexed: values from it are found
                    # nowhere (context label), and the output itself may carry anything the session
                    # sent out or read, so it gets the context's label and is untrusted.
                    lab, records = lab.join(self.state.context).join(UNTRUSTED), ()
                event = ResultRecorded(
                    session_id=self.id,
                    time=self.clock(),
                    call_id=call_id,
                    output=text,
                    label=lab,
                    error=error or unreadable,
                    records=records,
                )
                return [event], lab

            try:
                return self._transact(build)
            except StoreError as exc:
                # The agent has seen data the log does not hold: stop trusting anything.
                self._broken = f"event store unavailable ({exc}); denying every call until the session is resumed"
                self.state.context = self.state.context.join(UNTRUSTED)
                raise

    def add_source(self, text: str, *, label: Label = TRUSTED, origin: str = "user") -> str:
        """Add data the agent sees outside tool calls (a user's follow-up message, a file, a listing);
        returns the id of the event that records it (the evidence later decisions cite)."""
        text = free_text("text", text)
        label = label_param("label", label)
        origin = free_text("origin", origin)
        with self._lock:

            def build() -> tuple[list[Event], str]:
                event = SourceAdded(session_id=self.id, time=self.clock(), text=clean_text(text), label=label, origin=origin)
                return [event], event.id

            return self._transact(build)

    def log_message(self, message: MessageAdded) -> None:
        """Append a conversation message (it changes no state: the model's words are not a source;
        what tools returned is recorded by :meth:`record_result`). After losing a race to another
        writer it is appended again, unchanged, after the events it had not seen."""
        if not isinstance(message, MessageAdded) or message.session_id != self.id:
            raise SessionError(f"expected a message event of session {self.id!r}, got {shown(message)}")
        with self._lock:
            self._transact(lambda: ([message], None))

    def log_refused(self, event: ProtocolRefused) -> None:
        """Append a protocol message an adapter refused (it changes no state; the adapter bounds how
        many it logs, see :class:`~tether.events.ProtocolRefused`)."""
        if not isinstance(event, ProtocolRefused) or event.session_id != self.id:
            raise SessionError(f"expected a protocol_refused event of session {self.id!r}, got {shown(event)}")
        with self._lock:
            self._transact(lambda: ([event], None))

    # ------------------------------------------------------------ approvals

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """``none``, ``pending``, ``approved`` or ``denied`` (an expired request is denied, and logged so)."""
        with self._lock:
            status = self.state.approvals.status(call_id, self.clock())
            if status == "expired":
                self.answer(call_id, False, by="timeout", note="approval timed out")
                status = self.state.approvals.status(call_id, self.clock())
            return status

    # ------------------------------------------------------------ ending

    def end(self, reason: str = "completed") -> None:
        """Mark the session finished (pending approvals are denied)."""
        with self._lock:

            def build() -> tuple[list[Event], None]:
                if self.state.status in ("ended", "killed"):
                    return [], None
                now = self.clock()
                events: list[Event] = [self._refusal(rec, now, "guard", "the session ended") for rec in self.state.approvals.pending()]
                events.append(SessionEnded(session_id=self.id, time=now, reason=reason))
                return events, None

            self._transact(build)
