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
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from tether._decision import Decision, Reason, ToolCall, new_id
from tether._json import dumps, jsonsafe_exact, output_text
from tether.approvals import ApprovalRecord, ApprovalStatus
from tether.errors import DuplicateCall, SessionError, StaleSession, StoreError
from tether.events import (
    ApprovalAnswered,
    ApprovalRequested,
    CallProposed,
    DecisionMade,
    Event,
    MessageAdded,
    ResultRecorded,
    SessionControl,
    SessionEnded,
    SessionStarted,
    SnapshotTaken,
    SourceAdded,
)
from tether.flow import TRUSTED, UNTRUSTED, Label
from tether.monitor import Detector, SessionState, decide, result_label, tighten
from tether.policy import Policy
from tether.session import _snapshot as snapshots
from tether.session._inputs import bool_param, choice_param, clean_text, free_text, label_param, name_problem, shown, text_param
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


class Session:
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
            if reason is None and call.id in self.state.calls:
                # Never let a new call take over an earlier one's record (and its approval).
                reason = Reason("malformed", "call_id", f"call id {call.id!r} was already used in this session; denied")
            if reason is not None and reason.rule == "call_id":
                call = ToolCall(call.tool, call.args, new_id())
            if reason is not None:
                decision = Decision("deny", call.id, call.tool, (reason,), digest, policy.hash)
            else:
                decision = tighten(decide(policy, self.state, clean, digest, now), call, self.state, self.detectors)
            # Requests past their deadline are denied in the log now, with this call: nothing
            # waits on them, and they no longer hold memory or count against the pending limit.
            events: list[Event] = [self._refusal(rec, now, "timeout", "approval timed out") for rec in self.state.approvals.expired(now)]
            events += [
                CallProposed(session_id=self.id, time=now, call_id=call.id, tool=call.tool, args=safe, call_hash=digest),
                DecisionMade(
                    session_id=self.id,
                    time=now,
                    call_id=call.id,
                    verdict=decision.verdict,
                    reasons=decision.reasons,
                    policy_hash=policy.hash,
                ),
            ]
            if decision.verdict == "ask":
                events.append(
                    ApprovalRequested(
                        session_id=self.id,
                        time=now,
                        call_id=call.id,
                        call_hash=digest,
                        expires_at=now + policy.spec.approval_timeout_s,
                        summary=decision.explain()[:2000],
                    )
                )
            return events, decision

        for _ in range(MAX_RETRIES):
            try:
                return self._transact(build)
            except DuplicateCall:
                # The id was used long ago (no longer in memory): deny, under a fresh id.
                refusal = Reason("malformed", "call_id", f"call id {clean.id!r} was already used in this session; denied")
        raise StoreError("could not find an unused call id")

    def output_label(self, call_id: str, text: str, *, error: bool = False) -> Label:
        """The label a recorded call's output ``text`` gets (policy label, echoed arguments, errors)."""
        rec = self.state.calls.get(call_id)
        if rec is None:
            return UNTRUSTED
        return result_label(self.policy, self.state, rec.tool, rec.args, text, error=error)

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
                lab = self.output_label(call_id, text, error=error or unreadable)
                if over_cap:
                    # The agent may read text the session never indexed: values from it are found
                    # nowhere (context label), and the output itself may carry anything the session
                    # sent out or read, so it gets the context's label and is untrusted.
                    lab = lab.join(self.state.context).join(UNTRUSTED)
                event = ResultRecorded(
                    session_id=self.id, time=self.clock(), call_id=call_id, output=text, label=lab, error=error or unreadable
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

    # ------------------------------------------------------------ approvals

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """``none``, ``pending``, ``approved`` or ``denied`` (an expired request is denied, and logged so)."""
        with self._lock:
            status = self.state.approvals.status(call_id, self.clock())
            if status == "expired":
                self.answer(call_id, False, by="timeout", note="approval timed out")
                status = self.state.approvals.status(call_id, self.clock())
            return status

    def answer(self, call_id: str, approved: bool, *, by: str, note: str = "") -> bool:
        """Answer a pending approval; returns whether the call may now run.

        An approved call is decided again against the session as it is now: if a budget,
        a rate or the session's status no longer allows it, it is denied (and the log says
        so, next to the human's answer). An answer to an already answered request changes
        nothing and returns the earlier outcome; an expired request is denied.
        """
        call_id = text_param("call id", call_id)
        approved = bool_param("approved", approved)
        by = free_text("by", by)
        note = free_text("note", note)
        with self._lock:
            self._catch_up()

            def build() -> tuple[list[Event], bool]:
                now = self.clock()
                book = self.state.approvals
                rec = book.get(call_id)
                if rec is None:
                    raise SessionError(f"call {shown(call_id)} has no approval request in session {self.id!r}")
                status = book.status(call_id, now)
                if status in ("approved", "denied"):
                    return [], status == "approved"
                base = {"session_id": self.id, "time": now, "call_id": call_id, "call_hash": rec.call_hash}
                if status == "expired":
                    return [self._refusal(rec, now, "timeout", "approval timed out before it was answered")], False
                if not approved:
                    return [ApprovalAnswered(**base, approved=False, by=by, note=note, verdict="deny")], False
                verdict, reasons = self._redecide(call_id, now)
                return [ApprovalAnswered(**base, approved=True, by=by, note=note, verdict=verdict, reasons=reasons)], verdict == "allow"

            return self._transact(build)

    def _refusal(self, rec: ApprovalRecord, now: float, by: str, note: str) -> ApprovalAnswered:
        """The event that denies a pending request without a human (timeout, pause, kill, end)."""
        return ApprovalAnswered(
            session_id=self.id, time=now, call_id=rec.call_id, call_hash=rec.call_hash, approved=False, by=by, note=note, verdict="deny"
        )

    def _redecide(self, call_id: str, now: float) -> tuple[Literal["allow", "deny"], tuple[Reason, ...]]:
        """Decide an approved call again, on the same path as a check (decision, then detectors),
        against the state as it is now: the human's answer satisfies the asks; anything that
        would deny it still does."""
        call = self.state.calls.get(call_id)
        if call is None:
            return "deny", (Reason("session", "approval", f"call {call_id!r} is no longer known to the session"),)
        args = call.args if isinstance(call.args, dict) else {}
        checked = ToolCall(call.tool, args, call_id)
        decision = tighten(decide(self.policy, self.state, checked, call.call_hash, now), checked, self.state, self.detectors)
        if decision.verdict == "deny":
            return "deny", decision.reasons
        return "allow", ()

    def wait_for_approval(self, call_id: str, *, timeout_s: float | None = None, poll_s: float = 0.2) -> bool:
        """Block until a pending approval is answered (possibly by another process) or expires;
        returns whether the call may run. ``timeout_s`` stops waiting earlier (the request stays pending).

        The wait is the store's (``EventStore.wait_for_change``): an answer appended by any
        process wakes it as soon as it is committed; ``poll_s`` bounds how long it sleeps
        between looks at the clock (for the request's expiry)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.refresh()
            status = self.approval_status(call_id)
            if status != "pending":
                return status == "approved"
            wait = poll_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return False
            self.store.wait_for_change(self.id, self.state.last_seq, wait)

    # ------------------------------------------------------------ control

    def control(self, action: Literal["pause", "resume", "kill"], *, by: str = "user", note: str = "") -> bool:
        """Pause, resume or kill the session; returns whether its status changed.

        A killed session denies everything, for good. Pausing or killing also denies every
        pending approval (logged as answers by ``guard``), so nothing asked before can run
        after. Resuming a killed or ended session is refused. Asking for the status the session
        already has (pausing a paused session, resuming an active one, killing a killed one)
        appends nothing and returns False.
        """
        action = choice_param("control action", action, ("pause", "resume", "kill"))  # type: ignore[assignment]
        by = free_text("by", by)
        note = free_text("note", note)
        already = {"pause": "paused", "resume": "active", "kill": "killed"}[action]
        with self._lock:

            def build() -> tuple[list[Event], bool]:
                status = self.state.status
                if status == already:
                    return [], False
                if status in ("killed", "ended"):
                    verb = {"pause": "paused", "resume": "resumed", "kill": "killed"}[action]
                    raise SessionError(f"session {self.id!r} is {status}; it cannot be {verb}")
                now = self.clock()
                events: list[Event] = [SessionControl(session_id=self.id, time=now, action=action, by=by, note=note)]
                if action != "resume":
                    why = f"the session was {'paused' if action == 'pause' else 'killed'} by {by}"
                    events += [self._refusal(rec, now, "guard", why) for rec in self.state.approvals.pending()]
                return events, True

            return self._transact(build)

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
