"""The one admission path: check a call, ask an approver, run the tool, record what it returned.

Every integration goes through :class:`Gate`: the ``@guarded`` decorator, the
scripted and benchmark agents, the AgentDojo defense, the MCP proxy, and later the
agent loop and framework adapters. So the order (nothing runs before its decision
is logged; an ``ask`` runs only once approved; every output that ran is recorded
and labelled, failures included) is written once.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tether._decision import Decision, ToolCall
from tether.approvals import ApprovalRequest, Approver, AsyncApprover
from tether.errors import ApprovalRequired, ToolDenied
from tether.flow import Label
from tether.monitor import PLAN_TOOL
from tether.session._agent_session import AgentSession

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of putting one call through the guard and its approver."""

    decision: Decision
    """The guard's decision."""
    approved: bool | None
    """Whether the call may run after the ``ask`` was answered (None: nobody was asked)."""

    @property
    def may_run(self) -> bool:
        """Whether the call may run now: allowed, or asked and approved."""
        return self.decision.verdict == "allow" or self.approved is True

    def raise_if_refused(self) -> None:
        """Raise :class:`ToolDenied` or :class:`ApprovalRequired` unless the call may run."""
        if self.may_run:
            return
        if self.decision.verdict == "ask" and self.approved is None:
            raise ApprovalRequired(self.decision)
        raise ToolDenied(self.decision)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What happened to one call put through :meth:`Gate.run`."""

    admission: Admission
    """The decision and the approver's answer."""
    ran: bool
    """Whether the tool ran."""
    value: R | None = None
    """What the tool returned (None when it did not run or failed)."""
    error: BaseException | None = None
    """The exception the tool raised, if it failed (recorded as untrusted error output)."""
    label: Label | None = None
    """The label its output was recorded with (None when it did not run)."""

    @property
    def decision(self) -> Decision:
        """The guard's decision."""
        return self.admission.decision

    def unwrap(self) -> R:
        """The tool's value; raises the guard's refusal or the tool's own exception otherwise."""
        self.admission.raise_if_refused()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def error_text(exc: BaseException) -> str:
    """How a tool's failure is recorded (it is data the agent will read, so it is labelled)."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:
        return type(exc).__name__


class Gate:
    """Puts calls through a session: check, ask, run, record. Sync and async.

    ``approver`` answers asks (sync or async; None: an ask is not done). ``output``
    turns a tool's return value into what is recorded (default: the value itself, which
    the session turns into text).
    """

    def __init__(
        self,
        session: AgentSession,
        approver: Approver | AsyncApprover | None = None,
        *,
        output: Callable[[Any], Any] | None = None,
    ) -> None:
        self.session = session
        """The session every call is checked and logged in (in this process, or a :class:`tether.client.RemoteSession`)."""
        self.approver = approver
        """Who answers an ``ask``."""
        self.output = output

    # ------------------------------------------------------------ admission

    def admit(self, call: ToolCall) -> Admission:
        """Check ``call`` and, on ``ask``, ask the (synchronous) approver; the answer is logged."""
        decision = self.session.check(call)
        if decision.verdict != "ask" or self.approver is None:
            return Admission(decision, None)
        answer = self.approver(self._request(call, decision))
        if inspect.isawaitable(answer):
            _close(answer)
            raise TypeError("this approver is asynchronous: use Gate.aadmit / Gate.arun")
        return Admission(decision, self._answer(decision, bool(answer)))

    async def aadmit(self, call: ToolCall) -> Admission:
        """Like :meth:`admit`, awaiting an asynchronous approver (a sync one is called as is)."""
        decision = self.session.check(call)
        if decision.verdict != "ask" or self.approver is None:
            return Admission(decision, None)
        answer = self.approver(self._request(call, decision))
        if inspect.isawaitable(answer):
            answer = await answer
        return Admission(decision, self._answer(decision, bool(answer)))

    def admit_plan(self, writes: Any, *, plan_id: str | None = None) -> Admission:
        """Declare a plan (:meth:`AgentSession.declare_plan`, in process or through the guard
        service) and, on ``ask``, ask the (synchronous) approver once for the whole plan (shown as a
        call of ``tether.plan`` with the plan as its arguments); the answer is logged. ``may_run`` says whether the plan is approved."""
        decision = self.session.declare_plan(writes, plan_id=plan_id)
        if decision.verdict != "ask" or self.approver is None:
            return Admission(decision, None)
        call = ToolCall(PLAN_TOOL, {"writes": writes}, decision.call_id)
        answer = self.approver(self._request(call, decision))
        if inspect.isawaitable(answer):
            _close(answer)
            raise TypeError("this approver is asynchronous: use Gate.aadmit_plan")
        return Admission(decision, self._answer(decision, bool(answer)))

    async def aadmit_plan(self, writes: Any, *, plan_id: str | None = None) -> Admission:
        """Like :meth:`admit_plan`, awaiting an asynchronous approver."""
        decision = self.session.declare_plan(writes, plan_id=plan_id)
        if decision.verdict != "ask" or self.approver is None:
            return Admission(decision, None)
        answer = self.approver(self._request(ToolCall(PLAN_TOOL, {"writes": writes}, decision.call_id), decision))
        if inspect.isawaitable(answer):
            answer = await answer
        return Admission(decision, self._answer(decision, bool(answer)))

    def _request(self, call: ToolCall, decision: Decision) -> ApprovalRequest:
        return ApprovalRequest(self.session.id, ToolCall(decision.tool, call.args, decision.call_id), decision, self.session)

    def _answer(self, decision: Decision, answer: bool) -> bool:
        name = getattr(self.approver, "name", "approver")
        return self.session.answer(decision.call_id, answer, by=str(name))

    # ------------------------------------------------------------ running

    def run(self, call: ToolCall, fn: Callable[[], R]) -> Outcome[R]:
        """Admit ``call``; if it may run, call ``fn()`` and record its value (or its exception)."""
        admission = self.admit(call)
        if not admission.may_run:
            return Outcome(admission, False)
        try:
            value = fn()
        except Exception as exc:
            return Outcome(admission, True, error=exc, label=self.record_error(admission.decision.call_id, exc))
        return Outcome(admission, True, value, label=self.record(admission.decision.call_id, value))

    async def arun(self, call: ToolCall, fn: Callable[[], Awaitable[R]]) -> Outcome[R]:
        """Like :meth:`run` for a coroutine-returning ``fn`` (and async approvers)."""
        admission = await self.aadmit(call)
        if not admission.may_run:
            return Outcome(admission, False)
        try:
            value = await fn()
        except Exception as exc:
            return Outcome(admission, True, error=exc, label=self.record_error(admission.decision.call_id, exc))
        return Outcome(admission, True, value, label=self.record(admission.decision.call_id, value))

    def record(self, call_id: str, value: Any) -> Label:
        """Record an admitted call's output (for callers that run the tool themselves)."""
        return self.session.record_result(call_id, value if self.output is None else self.output(value))

    def record_error(self, call_id: str, exc: BaseException | str) -> Label:
        """Record an admitted call's failure as error output."""
        return self.session.record_result(call_id, exc if isinstance(exc, str) else error_text(exc), error=True)


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
