"""The guard (reference monitor) and its sessions: the one place decisions are made."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tether._decision import Decision, Reason, ToolCall, new_id
from tether.errors import SessionError, StoreError
from tether.flow import TRUSTED, UNTRUSTED, FlowLimits, FlowTracker, Label
from tether.policy._compiled import Policy
from tether.session._engine import decide
from tether.session._labelling import result_label
from tether.session._state import ApprovalStatus, SessionState
from tether.store._chain import EventStore, StoredEvent
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
from tether.store._jsonsafe import dumps, jsonsafe, output_text
from tether.store._sqlite_store import SQLiteStore

MAX_OUTPUT_CHARS = 16 << 20
"""Tool output beyond this many characters is neither indexed nor logged."""


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector reports: a stricter verdict and why."""

    verdict: Literal["ask", "deny"]
    message: str


class Detector(Protocol):
    """An optional check (classifier, LLM monitor...). It can only tighten a decision."""

    name: str

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        """Return a finding to tighten the decision, or None."""
        ...


def call_hash(tool: str, safe_args: Any) -> str:
    """Hash binding an approval to exactly one tool and argument set."""
    return "sha256:" + hashlib.sha256(dumps({"tool": tool, "args": safe_args})).hexdigest()


def clean_text(text: str) -> str:
    """Text that can always be stored as UTF-8 (undecodable bytes become U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class Guard:
    """The reference monitor: a policy, an event store, optional detectors."""

    def __init__(
        self,
        policy: Policy,
        store: EventStore | None = None,
        *,
        detectors: Sequence[Detector] = (),
        clock: Callable[[], float] = time.time,
        flow_limits: FlowLimits | None = None,
    ) -> None:
        self.policy = policy
        """The policy every decision is made under."""
        self.store: EventStore = store if store is not None else SQLiteStore(":memory:")
        """Where events go."""
        self.detectors = tuple(detectors)
        self.clock = clock
        self.flow_limits = flow_limits if flow_limits is not None else FlowLimits()
        """Bounds on each session's provenance memory (resume a session with the limits it ran under)."""

    def _new_state(self, session_id: str) -> SessionState:
        return SessionState(session_id, flow=FlowTracker(self.flow_limits))

    def start_session(
        self,
        task: str,
        *,
        principal: str = "user",
        scope: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Begin a session for a trusted ``task`` text."""
        sid = session_id or new_id()
        session = Session(self, self._new_state(sid))
        if scope is not None and not isinstance(scope.get("writes", {}), dict):
            raise SessionError(f"scope must look like {{'writes': {{tool: {{arg: [values]}}}}}}, got {scope!r}")
        event = SessionStarted(
            session_id=sid,
            time=self.clock(),
            principal=principal,
            task=clean_text(task),
            policy_hash=self.policy.hash,
            policy_name=self.policy.name,
            scope=jsonsafe(scope) if scope is not None else None,
            metadata=jsonsafe(metadata or {}),
        )
        if self.store.read(sid, 0):
            raise SessionError(f"session {sid!r} already exists")
        session._commit([event])
        return session

    def resume_session(self, session_id: str) -> Session:
        """Rebuild a session from its events (after a crash, or in another process)."""
        report = self.store.verify([session_id])
        if not report.ok:
            assert report.problem is not None
            raise SessionError(f"session {session_id!r} fails verification: {report.problem.message} (event {report.problem.seq})")
        stored = self.store.read(session_id)
        if not stored:
            raise SessionError(f"no session {session_id!r} in the store")
        first = stored[0].event()
        if not isinstance(first, SessionStarted):
            raise SessionError(f"session {session_id!r} does not begin with session_started")
        if first.policy_hash != self.policy.hash:
            raise SessionError(
                f"session {session_id!r} was started under policy {first.policy_hash[:19]} but this guard has {self.policy.hash[:19]}"
            )
        session = Session(self, self._new_state(session_id))
        session._apply_stored(stored)
        return session


class Session:
    """One agent run under a guard. Create with :meth:`Guard.start_session`."""

    def __init__(self, guard: Guard, state: SessionState) -> None:
        self.guard = guard
        self.state = state
        """The folded state (read it, do not modify it)."""
        self._lock = threading.RLock()
        self._broken: str | None = None

    @property
    def id(self) -> str:
        """The session id."""
        return self.state.session_id

    # ------------------------------------------------------------ event plumbing

    def _commit(self, events: Sequence[Event]) -> list[StoredEvent]:
        bodies = [e.model_dump_json().encode("utf-8") for e in events]
        stored = self.guard.store.append(self.id, bodies, [e.time for e in events])
        for event, item in zip(events, stored, strict=True):
            self.state.apply(event, self.guard.policy)
            self.state.last_seq = item.seq
            self.state.last_hash = item.hash
        return stored

    def _apply_stored(self, stored: Sequence[StoredEvent]) -> None:
        for item in stored:
            self.state.apply(item.event(), self.guard.policy)
            self.state.last_seq = item.seq
            self.state.last_hash = item.hash

    def refresh(self) -> int:
        """Fold in events other processes appended (approvals, kills); return how many."""
        with self._lock:
            stored = self.guard.store.read(self.id, self.state.last_seq)
            self._apply_stored(stored)
            return len(stored)

    # ------------------------------------------------------------ the monitor

    def check(self, call: ToolCall | str, args: dict[str, Any] | None = None) -> Decision:
        """Decide on a proposed call; the call and decision are logged before returning."""
        if isinstance(call, str):
            call = ToolCall(call, args if args is not None else {})
        with self._lock:
            now = self.guard.clock()
            refusal: Reason | None = None
            try:
                safe = jsonsafe(call.args)
                digest = call_hash(str(call.tool), safe)
            except Exception as exc:  # fail closed: what cannot be logged does not run
                safe, digest = {"$unloggable": repr(exc)[:200]}, "sha256:unloggable"
                refusal = Reason("malformed", "limits", f"arguments cannot be logged faithfully ({type(exc).__name__}); denied")
            if not isinstance(call.id, str) or not call.id or call.id in self.state.calls:
                # Never let a new call take over an earlier one's record (and its approval).
                refusal = Reason("malformed", "call_id", f"call id {call.id!r} was already used in this session (or is empty); denied")
                call = ToolCall(call.tool, call.args, new_id())
            if self._broken is not None:
                refusal = Reason("error", "store", self._broken)
            if refusal is not None:
                decision = Decision("deny", call.id, str(call.tool), (refusal,), digest, self.guard.policy.hash)
            else:
                decision = decide(self.guard.policy, self.state, call, digest, now)
                decision = self._detect(call, decision)
            events: list[Event] = [
                CallProposed(session_id=self.id, time=now, call_id=call.id, tool=str(call.tool), args=safe, call_hash=digest),
                DecisionMade(
                    session_id=self.id,
                    time=now,
                    call_id=call.id,
                    verdict=decision.verdict,
                    reasons=[r.to_json() for r in decision.reasons],
                    policy_hash=self.guard.policy.hash,
                ),
            ]
            if decision.verdict == "ask":
                events.append(
                    ApprovalRequested(
                        session_id=self.id,
                        time=now,
                        call_id=call.id,
                        call_hash=digest,
                        expires_at=now + self.guard.policy.spec.approval_timeout_s,
                        summary=decision.explain()[:2000],
                    )
                )
            try:
                self._commit(events)
            except Exception as exc:  # an unlogged call never runs
                self._broken = f"event store unavailable ({exc}); denying every call until the session is resumed"
                reason = Reason("error", "store", f"could not log the call: {exc}")
                return Decision("deny", call.id, str(call.tool), (reason,), digest, self.guard.policy.hash)
            return decision

    def _detect(self, call: ToolCall, decision: Decision) -> Decision:
        if decision.verdict == "deny":
            return decision
        for detector in self.guard.detectors:
            try:
                finding = detector.inspect(call, self.state)
            except Exception as exc:
                return decision.tighten("deny", Reason("detector", getattr(detector, "name", "detector"), f"detector failed: {exc!r}"))
            if finding is not None and finding.verdict in ("ask", "deny"):
                decision = decision.tighten(finding.verdict, Reason("detector", detector.name, finding.message))
        return decision

    def output_label(self, call_id: str, text: str, *, error: bool = False) -> Label:
        """The label a recorded call's output ``text`` gets (policy label, echoed arguments, errors)."""
        rec = self.state.calls.get(call_id)
        if rec is None:
            return UNTRUSTED
        return result_label(self.guard.policy, self.state, rec.tool, rec.args, text, error=error)

    def record_result(self, call_id: str, output: Any, *, error: bool = False) -> Label:
        """Record what a tool returned: label it, index it, log it. Returns the label."""
        with self._lock:
            text = clean_text(output_text(output))
            if len(text) > MAX_OUTPUT_CHARS:
                # Beyond the cap nothing is indexed: values from there count as not found
                # (context label), which is the conservative side.
                text = text[:MAX_OUTPUT_CHARS] + f"\n[tether: output truncated from {len(text)} characters]"
            lab = self.output_label(call_id, text, error=error)
            event = ResultRecorded(
                session_id=self.id, time=self.guard.clock(), call_id=call_id, output=text, label=lab.to_json(), error=error
            )
            try:
                self._commit([event])
            except StoreError as exc:
                # The agent has seen data the log does not hold: stop trusting anything.
                self._broken = f"event store unavailable ({exc}); denying every call until the session is resumed"
                self.state.context = self.state.context.join(lab)
                raise
            return lab

    def add_source(self, text: str, *, label: Label = TRUSTED, origin: str = "user") -> None:
        """Add data the agent sees outside tool calls (a user's follow-up message, a file)."""
        with self._lock:
            self._commit(
                [SourceAdded(session_id=self.id, time=self.guard.clock(), text=clean_text(text), label=label.to_json(), origin=origin)]
            )

    # ------------------------------------------------------------ approvals

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """``none``, ``pending``, ``approved`` or ``denied`` (an expired request is denied)."""
        with self._lock:
            rec = self.state.calls.get(call_id)
            if rec is None:
                return "none"
            if rec.approval == "pending" and rec.expires_at is not None and self.guard.clock() > rec.expires_at:
                self._answer(call_id, False, "timeout", "approval timed out")
            return rec.approval

    def answer(self, call_id: str, approved: bool, *, by: str, note: str = "") -> bool:
        """Answer a pending approval; returns whether the call may now run."""
        with self._lock:
            self.refresh()
            rec = self.state.calls.get(call_id)
            if rec is None or rec.approval == "none":
                raise SessionError(f"call {call_id!r} has no approval request in session {self.id!r}")
            if rec.approval != "pending":
                return rec.approval == "approved"
            if rec.expires_at is not None and self.guard.clock() > rec.expires_at:
                self._answer(call_id, False, "timeout", "approval timed out before it was answered")
                return False
            self._answer(call_id, approved, by, note)
            return self._is_approved(call_id)

    def _is_approved(self, call_id: str) -> bool:
        return self.state.calls[call_id].approval == "approved"

    def _answer(self, call_id: str, approved: bool, by: str, note: str) -> None:
        rec = self.state.calls[call_id]
        self._commit(
            [
                ApprovalAnswered(
                    session_id=self.id,
                    time=self.guard.clock(),
                    call_id=call_id,
                    call_hash=rec.call_hash,
                    approved=approved,
                    by=by,
                    note=note,
                )
            ]
        )

    def wait_for_approval(self, call_id: str, *, poll_s: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Block until a pending approval is answered (possibly by another process) or times out."""
        while True:
            self.refresh()
            status = self.approval_status(call_id)
            if status != "pending":
                return status == "approved"
            sleep(poll_s)

    # ------------------------------------------------------------ control

    def control(self, action: Literal["pause", "resume", "kill"], *, by: str = "user", note: str = "") -> None:
        """Pause, resume or kill the session (a killed session denies everything, for good)."""
        with self._lock:
            self._commit([SessionControl(session_id=self.id, time=self.guard.clock(), action=action, by=by, note=note)])

    def end(self, reason: str = "completed") -> None:
        """Mark the session finished."""
        with self._lock:
            if self.state.status not in ("ended", "killed"):
                self._commit([SessionEnded(session_id=self.id, time=self.guard.clock(), reason=reason)])

    @property
    def context(self) -> Label:
        """Join of the labels of everything the agent has read."""
        return self.state.context
