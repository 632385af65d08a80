"""The one path of a framework's tool call through a Tether session, shared by the framework adapters.

Each adapter (LangGraph, PydanticAI, the OpenAI Agents SDK) is a thin wrapper around its framework's
tool hook; what happens to a call is the same everywhere, and lives here:

- the call is checked (and logged) under an id derived from the framework's own call id, so a
  framework that runs the hook again after a human-in-the-loop pause (LangGraph re-runs the node,
  PydanticAI and the Agents SDK call the tool again once approved) finds its decision instead of
  proposing the call twice;
- arguments that are not an object (malformed JSON included) are still checked, and so denied and
  logged as sent; a tool the framework does not offer is checked and never run;
- an ``ask`` is answered by the adapter's approver (inline), or left to the framework's own
  approval mechanism, whose answer is given to the session before the tool runs; an ask without an
  answer never runs;
- an admitted call runs, its output (or its error) is recorded with the policy's label before the
  framework hands it to the model, and the model is given exactly the recorded text;
- a call that already ran is never run again: its recorded output is given back, and a call admitted
  whose output was never recorded (a crash) is answered "result unknown".
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tether._decision import Decision, Reason, ToolCall
from tether._json import jsonsafe_exact
from tether.approvals import ApprovalRequest, Approver, AsyncApprover
from tether.errors import SessionError
from tether.events import DecisionMade, ResultRecorded
from tether.session import Gate, Session, call_hash

RESULT_UNKNOWN = (
    "tether: result unknown: this call was admitted before an interruption and its result was never recorded; "
    "it may or may not have run, and it is not run again"
)
"""What the model is told about an admitted call whose output was lost."""

NOT_OFFERED = "tether: no tool of that name is offered here; nothing was run"
"""What the model is told about a call to a tool the framework does not have."""


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one call, and what the model is told."""

    decision: Decision
    """The guard's decision (as first made)."""
    ran: bool
    """Whether the tool ran (now or before)."""
    text: str
    """What the model is given: the recorded output, the error, or the refusal with its reason."""
    error: bool = False
    """The tool raised (the text is its recorded error)."""
    approved: bool | None = None
    """The answer to an ``ask`` (None: nobody answered)."""


def parse_arguments(raw: str | dict[str, Any] | None) -> Any:
    """A model's arguments as the check sees them: an object, or the raw text when it is not one
    (the check denies it and logs it as sent)."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class ToolCallGuard:
    """Puts one framework's tool calls through a session: check, ask, run, record.

    ``approver`` answers asks inline (sync or async); without one, an ask waits for the
    framework's own approval mechanism (:meth:`approve`), and never runs without it.
    ``prefix`` keeps the framework's call ids apart from other callers' in the session.
    """

    def __init__(self, session: Session, approver: Approver | AsyncApprover | None = None, *, by: str, prefix: str) -> None:
        self.session = session
        """The session every call is checked and logged in."""
        self.approver = approver
        """Who answers asks inline (None: the framework's approval mechanism)."""
        self.by = by
        """Logged as who answered when the framework's approval mechanism answers."""
        self.prefix = prefix
        """Prefix of the session's call ids for this framework's calls."""
        self._gate = Gate(session)
        self._decisions: dict[str, Decision] = {}
        self._runnable: set[str] = set()
        # Calls this guard may run once admitted: allowed by a check made here, or seen waiting for an
        # answer here (so they cannot have run). Any other admitted call without a recorded output
        # may have run before a restart: it is answered "result unknown", never run again.

    def call_id(self, framework_id: str) -> str:
        """The session's id for the framework's call ``framework_id``."""
        return f"{self.prefix}{framework_id}"

    # ------------------------------------------------------------ checking

    def check(self, tool: str, args: Any, framework_id: str) -> Decision:
        """Decide on a call once: the same call checked again gets its first decision back.

        The same id with another tool or other arguments (a tampered history, a model reusing an id)
        is not that call: the session denies it (a reused id), logged under a fresh id, so an answer
        given for one call can never run another."""
        call_id = self.call_id(framework_id)
        known = self._known(call_id)
        if known is None:
            self.session.refresh()
            known = self._known(call_id)
        if known is not None:
            return known if self._same(call_id, tool, args) else self._gate.admit(ToolCall(tool, args, call_id)).decision
        # Admitted through the Gate with no approver: checked and logged; an ask is answered later
        # (inline by :meth:`ask`, or through the framework by :meth:`approve`), as the proxy's asks are.
        decision = self._gate.admit(ToolCall(tool, args, call_id)).decision
        self._decisions[decision.call_id] = decision
        if decision.verdict != "deny":
            self._runnable.add(decision.call_id)
        return decision

    def _same(self, call_id: str, tool: str, args: Any) -> bool:
        rec = self.session.state.calls.get(call_id)
        if rec is None:
            return False
        try:
            return rec.tool == tool and rec.call_hash == call_hash(tool, jsonsafe_exact(args)[0])
        except Exception:  # arguments that cannot even be hashed are not the call that was checked
            return False

    def _known(self, call_id: str) -> Decision | None:
        if call_id in self._decisions:
            return self._decisions[call_id]
        rec = self.session.state.calls.get(call_id)
        if rec is None or rec.verdict == "pending":
            return None
        # Checked by another process (or before a restart): its decision, from the log.
        for stored in self.session.store.read(self.session.id):
            event = stored.event()
            if isinstance(event, DecisionMade) and event.call_id == call_id:
                decision = Decision(event.verdict, call_id, rec.tool, tuple(event.reasons), rec.call_hash, event.policy_hash)
                self._decisions[call_id] = decision
                if decision.verdict == "ask" and self.session.approval_status(call_id) == "pending":
                    self._runnable.add(call_id)
                return decision
        reason = Reason("session", "log", "decided earlier; see the session's log")
        return Decision("deny" if rec.verdict == "deny" else "ask", call_id, rec.tool, (reason,), rec.call_hash, self.session.policy.hash)

    def pending(self, decision: Decision) -> bool:
        """Whether an ``ask`` still waits for an answer."""
        return decision.verdict == "ask" and self.session.approval_status(decision.call_id) == "pending"

    def approve(self, decision: Decision, approved: bool, note: str = "") -> bool:
        """Give the framework's approval answer to the session (logged, re-decided); whether the call may run."""
        if decision.verdict != "ask":
            return decision.verdict == "allow"
        if self.session.approval_status(decision.call_id) == "pending":
            return self.session.answer(decision.call_id, approved, by=self.by, note=note)
        return self.session.approval_status(decision.call_id) == "approved"

    async def ask(self, decision: Decision, call: ToolCall) -> bool | None:
        """Ask the inline approver (None when there is none, or the ask was answered already)."""
        if decision.verdict != "ask":
            return None
        status = self.session.approval_status(decision.call_id)
        if status != "pending":
            return status == "approved"
        if self.approver is None:
            return None
        request = ApprovalRequest(self.session.id, ToolCall(decision.tool, call.args, decision.call_id), decision, self.session)
        answer = self.approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
        name = getattr(self.approver, "name", "approver")
        return self.session.answer(decision.call_id, bool(answer), by=str(name))

    # ------------------------------------------------------------ running

    async def run(self, tool: str, args: Any, framework_id: str, fn: Callable[[], Awaitable[Any]] | None) -> Settled:
        """The whole path: check, ask the inline approver, run ``fn`` (None: no such tool), record.

        An ask without an inline approver is not run: the result says so (an adapter that has a
        framework approval mechanism asks it first, see :meth:`pending` and :meth:`approve`)."""
        decision = self.check(tool, args, framework_id)
        if fn is None:
            return self.not_offered(decision)
        approved = await self.ask(decision, ToolCall(tool, args, decision.call_id))
        return await self.execute(decision, fn, approved)

    def not_offered(self, decision: Decision) -> Settled:
        """Close a checked call to a tool the framework does not have: an ask is refused, an allowed call
        gets an error result; nothing runs."""
        if decision.verdict == "deny":
            return Settled(decision, False, refusal_text(decision, None))
        if self.pending(decision):
            self.session.answer(decision.call_id, False, by=self.by, note="no such tool")
        rec = self.session.state.calls.get(decision.call_id)
        if rec is not None and rec.executed and rec.result_event is None:
            self._gate.record_error(decision.call_id, NOT_OFFERED)
        self._runnable.discard(decision.call_id)
        return Settled(decision, False, NOT_OFFERED, error=True)

    async def execute(self, decision: Decision, fn: Callable[[], Awaitable[Any]] | None, approved: bool | None = None) -> Settled:
        """Run an admitted call once and record its output; anything else is answered from the log."""
        call_id = decision.call_id
        rec = self.session.state.calls.get(call_id)
        if decision.verdict == "ask" and approved is None:
            status = self.session.approval_status(call_id)
            approved = None if status == "pending" else status == "approved"
        may_run = rec is not None and rec.executed
        if not may_run:
            return Settled(decision, False, refusal_text(decision, approved), approved=approved)
        assert rec is not None
        if rec.result_event is not None:
            recorded = self._recorded(call_id)
            text = recorded.output if recorded is not None else RESULT_UNKNOWN
            return Settled(decision, True, f"error: {text}" if recorded and recorded.error else text, approved=approved)
        if fn is None:
            return self.not_offered(decision)
        if call_id not in self._runnable:
            # Admitted in an earlier run (before a crash or a restart) with no output recorded: never run again.
            with contextlib.suppress(SessionError):
                self._gate.record_error(call_id, RESULT_UNKNOWN)
            return Settled(decision, True, RESULT_UNKNOWN, error=True, approved=approved)
        self._runnable.discard(call_id)  # from here on, a second execute reads the log
        try:
            value = await fn()
        except Exception as exc:
            self._gate.record_error(call_id, exc)
            recorded = self._recorded(call_id)
            return Settled(decision, True, f"error: {recorded.output if recorded else exc}", error=True, approved=approved)
        self._gate.record(call_id, value)
        recorded = self._recorded(call_id)
        return Settled(decision, True, recorded.output if recorded is not None else "", approved=approved)

    def _recorded(self, call_id: str) -> ResultRecorded | None:
        for stored in reversed(self.session.store.read(self.session.id, max(0, self.session.state.last_seq - 8))):
            event = stored.event()
            if isinstance(event, ResultRecorded) and event.call_id == call_id:
                return event
        for stored in self.session.store.read(self.session.id):  # older: a re-run after a restart
            event = stored.event()
            if isinstance(event, ResultRecorded) and event.call_id == call_id:
                return event
        return None


def refusal_text(decision: Decision, approved: bool | None) -> str:
    """What the model is told about a call that did not run, with the policy's reason."""
    if decision.verdict == "ask":
        if approved is None:
            return f"tether: this call needs a human's approval and has none yet; it was not run: {decision.explain()}"
        return f"tether: this call needs a human's approval and was not approved: {decision.explain()}"
    return f"tether denied this call: {decision.explain()}"
