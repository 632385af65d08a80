"""The human side of a session: answers to approval requests, endorsements, check-ins, pause,
resume and kill, and waiting for an answer.

:class:`SessionOversight` is a base of :class:`~tether.session.Session`, so these methods are
called on a session like any other; it owns no state. What it uses of the session (the folded
state, its clock, its commit path) is :class:`SessionCore`, which :class:`Session` provides.
Every change is still built from the folded state and committed through ``_transact``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from tether._decision import Decision, Reason, ToolCall
from tether.approvals import ApprovalRecord, ApprovalStatus, Endorsement
from tether.errors import SessionError
from tether.events import (
    ApprovalAnswered,
    CheckedIn,
    EndorsementAdded,
    EndorsementRevoked,
    EndorsementScope,
    Event,
    SessionControl,
)
from tether.monitor import CheckView, SessionState
from tether.policy import Policy, canonical_value
from tether.session._inputs import bool_param, choice_param, free_text, shown, text_param
from tether.session._ledger import PrincipalLedger
from tether.store import EventStore

T = TypeVar("T")


class SessionCore(Protocol):
    """What the human side uses of a session: its state and configuration, and its commit path."""

    state: SessionState
    """The folded state."""
    policy: Policy
    """The policy the session's decisions are made under."""
    store: EventStore
    """Where the session's events go."""
    clock: Callable[[], float]
    """The time source (UTC Unix seconds)."""
    _lock: threading.RLock
    """Held for every read-modify-append of the session."""

    @property
    def id(self) -> str:
        """The session id."""
        ...

    def refresh(self) -> int:
        """Fold in the events other processes appended."""
        ...

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """The status of a call's approval request."""
        ...

    def ledger(self) -> PrincipalLedger | None:
        """The principal's ledger, up to date."""
        ...

    def _catch_up(self) -> int:
        """Fold the events appended since the state (checked against the chain)."""
        ...

    def _transact(self, build: Callable[[], tuple[Sequence[Event], T]]) -> T:
        """Build events from the current state and append them, if nobody appended first."""
        ...

    def _decide(self, call: ToolCall, digest: str, now: float, *, approved: bool = False) -> tuple[Decision, int]:
        """Decide a call on the session and its principal's ledger as they are now."""
        ...


class SessionOversight(SessionCore):
    """The methods a human (or the service acting for one) calls on a session."""

    def answer(
        self,
        call_id: str,
        approved: bool,
        *,
        by: str,
        note: str = "",
        remember: Sequence[str] | None = None,
        scope: EndorsementScope = "session",
        expires_at: float | None = None,
    ) -> bool:
        """Answer a pending approval; returns whether the call may now run.

        An approved call is decided again against the session as it is now: if a budget,
        a rate or the session's status no longer allows it, it is denied (and the log says
        so, next to the human's answer). An answer to an already answered request changes
        nothing and returns the earlier outcome; an expired request is denied.

        ``remember`` (approve and remember): the arguments whose values are endorsed with the
        approval, for ``scope`` until ``expires_at`` (see :meth:`endorse`); an empty list means
        the arguments whose provenance caused the ask (:meth:`asked_args`).
        """
        call_id = text_param("call id", call_id)
        approved = bool_param("approved", approved)
        by = free_text("by", by)
        note = free_text("note", note)
        with self._lock:
            self._catch_up()
            if approved and remember is not None and self.state.approvals.status(call_id, self.clock()) == "pending":
                rec = self.state.calls.get(call_id)
                if rec is not None and isinstance(rec.args, dict):
                    for arg in list(remember) or self.asked_args(call_id):
                        for value in _endorsable(rec.args.get(arg)):
                            self.endorse(rec.tool, arg, value, scope=scope, expires_at=expires_at, by=by, note=note, call_id=call_id)

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

    def asked_args(self, call_id: str) -> list[str]:
        """The arguments whose provenance can have caused a call's ask: those with a string or number
        that is untrusted (found only in untrusted data, or nowhere after untrusted data was read).
        What "approve and remember" endorses by default."""
        with self._lock:
            rec = self.state.calls.get(call_id)
            if rec is None or not isinstance(rec.args, dict):
                return []
            return self._untrusted_args(rec.tool, rec.args)

    def untrusted_args(self, tool: str, args: dict[str, Any]) -> list[str]:
        """The arguments of a call of ``tool`` with ``args`` (not made: a write a plan names) whose
        string or number values the session takes as untrusted now, as :meth:`asked_args` does for a
        call that was asked. What approving and remembering a plan endorses. Decides nothing."""
        with self._lock:
            self._catch_up()
            return self._untrusted_args(tool, dict(args))

    def _untrusted_args(self, tool_name: str, args: dict[str, Any]) -> list[str]:
        tool = self.policy.tool_for(tool_name)
        if tool is None:
            return []
        view = CheckView(self.state, tool, args)
        return [name for name in args if any(leaf.label.untrusted and _endorsable(leaf.value) for leaf in view.leaves(name))]

    # ------------------------------------------------------------ endorsements and check-ins

    def endorse(
        self,
        tool: str,
        arg: str,
        value: Any,
        *,
        scope: EndorsementScope = "session",
        expires_at: float | None = None,
        by: str,
        note: str = "",
        call_id: str = "",
    ) -> str:
        """Endorse ``value`` for argument ``arg`` of ``tool``: from now until ``expires_at`` (UTC Unix
        time, None: until revoked) it counts as trusted there in the flow check, in this session
        (``scope="session"``) or in every session of this principal (``"principal"``, kept in the
        principal's ledger). Integrity only: the value's confidentiality tags stay. Returns the
        endorsement's id. Raises :class:`SessionError` for a value that cannot be endorsed (not a
        non-empty string or a finite number, or text with control or invisible characters)."""
        tool = text_param("tool", tool, allow_empty=False)
        arg = text_param("argument", arg, allow_empty=False)
        scope = choice_param("scope", scope, ("session", "principal"))  # type: ignore[assignment]
        by = free_text("by", by)
        note = free_text("note", note)
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, int | float) or not math.isfinite(expires_at)
        ):
            raise SessionError(f"expires_at must be a finite UTC Unix time, got {shown(expires_at)}")
        canonical = canonical_value(value) if not isinstance(value, bool) else None
        if canonical is None:
            raise SessionError(
                f"{shown(value)} cannot be endorsed: only non-empty text without control or invisible characters, or a finite number"
            )
        with self._lock:
            ledger = self.ledger()
            if ledger is None:
                raise SessionError(f"session {self.id!r} has not started")

            def event() -> EndorsementAdded:
                return EndorsementAdded(
                    session_id=ledger.id if scope == "principal" else self.id,
                    time=self.clock(),
                    scope=scope,
                    principal=self.state.principal,
                    origin_session=self.id,
                    tool=tool,
                    arg=arg,
                    value=value,
                    canonical=canonical,
                    expires_at=None if expires_at is None else float(expires_at),
                    by=by,
                    call_id=call_id,
                    note=note,
                )

            if scope == "principal":
                made = event()
                ledger.append([made], expect_current=False)
                return made.id

            def build() -> tuple[list[Event], str]:
                made = event()
                return [made], made.id

            return self._transact(build)

    def revoke_endorsement(self, endorsement_id: str, *, by: str, note: str = "") -> bool:
        """Withdraw an endorsement of this session or of its principal; False when there is no such
        live endorsement (already revoked, or never given)."""
        endorsement_id = text_param("endorsement id", endorsement_id, allow_empty=False)
        by = free_text("by", by)
        note = free_text("note", note)
        with self._lock:
            self._catch_up()
            ledger = self.ledger()
            if ledger is not None and ledger.state.endorsements.get(endorsement_id) is not None:
                event = EndorsementRevoked(session_id=ledger.id, time=self.clock(), endorsement_id=endorsement_id, by=by, note=note)
                ledger.append([event], expect_current=False)
                return True

            def build() -> tuple[list[Event], bool]:
                if self.state.endorsements.get(endorsement_id) is None:
                    return [], False
                return [EndorsementRevoked(session_id=self.id, time=self.clock(), endorsement_id=endorsement_id, by=by, note=note)], True

            return self._transact(build)

    def endorsements(self, *, live_only: bool = True) -> list[Endorsement]:
        """The endorsements this session's decisions use: its own and its principal's (not revoked;
        with ``live_only``, not expired either), oldest first."""
        with self._lock:
            self._catch_up()
            now = self.clock() if live_only else None
            ledger = self.ledger()
            shared = ledger.state.endorsements.all(now) if ledger is not None else []
            return sorted([*self.state.endorsements.all(now), *shared], key=lambda e: e.time)

    def checkin(self, *, by: str, note: str = "") -> None:
        """A human looked at the session and lets it go on: the ``checkin`` counters restart."""
        by = free_text("by", by)
        note = free_text("note", note)
        with self._lock:
            self._transact(lambda: ([CheckedIn(session_id=self.id, time=self.clock(), by=by, note=note)], None))

    def _refusal(self, rec: ApprovalRecord, now: float, by: str, note: str) -> ApprovalAnswered:
        """The event that denies a pending request without a human (timeout, pause, kill, end)."""
        return ApprovalAnswered(
            session_id=self.id, time=now, call_id=rec.call_id, call_hash=rec.call_hash, approved=False, by=by, note=note, verdict="deny"
        )

    def _redecide(self, call_id: str, now: float) -> tuple[Literal["allow", "deny"], tuple[Reason, ...]]:
        """Decide an approved call again, on the same path as a check (decision, then detectors),
        against the state as it is now: the human's answer satisfies the asks; anything that
        would deny it still does."""
        plan = self.state.plans.get(call_id)
        if plan is not None:
            # A plan approved by a human still needs an active session (and a well-formed plan).
            if self.state.status != "active":
                return "deny", (Reason("session", "session.status", f"the session is {self.state.status}"),)
            return "allow", ()
        call = self.state.calls.get(call_id)
        if call is None:
            return "deny", (Reason("session", "approval", f"call {call_id!r} is no longer known to the session"),)
        args = call.args if isinstance(call.args, dict) else {}
        checked = ToolCall(call.tool, args, call_id)
        decision, _ = self._decide(checked, call.call_hash, now, approved=True)
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


def _endorsable(value: Any) -> list[Any]:
    """The scalars of an argument value that can be endorsed (each item of a list on its own)."""
    items = value if isinstance(value, list | tuple) else [value]
    return [v for v in items if not isinstance(v, bool) and canonical_value(v) is not None]
