"""Agents that bound what any model could do: the oracle and the worst-case compromised agent.

Neither calls a model. The **oracle** performs a task's ground-truth calls, so its
utility is an upper bound for any agent under the same guard. The **worst-case**
agent does the same, but the moment a tool output shows it an injection it
performs every call the attacker asked for, then resumes its task: it obeys every
injection, so its attack success rate is an upper bound too. Both work on any
tools: give them steps and an ``execute`` function.

A denied call is not executed and the agent goes on with its next step (a real
agent would get an error back). An ``ask`` goes to the approver; with none, the
call is not executed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from tether._decision import ToolCall, Verdict
from tether.approvals import ApprovalRequest, Approver, StaticApprover
from tether.bench._replanner import Replanner
from tether.bench._scripted import Step
from tether.errors import SessionError
from tether.events import EndorsementScope
from tether.monitor import PLAN_TOOL, matches
from tether.policy import same_value
from tether.session import Admission, Gate, Session

Execute = Callable[[str, dict[str, Any]], tuple[str, bool]]
"""Runs a tool: ``(tool, args) -> (output text, error?)``."""


@runtime_checkable
class Planner(Protocol):
    """Builds the agent's plan when it must plan: before its first step that may read untrusted data."""

    def due(self, step: Step) -> bool:
        """Whether the plan must be declared before ``step``."""
        ...

    def plan(self, read: Sequence[str]) -> list[dict[str, Any]]:
        """The plan, from the output texts read so far (all trusted: nothing untrusted was read yet)."""
        ...


PlanSource = Sequence[dict[str, Any]] | Planner
"""A fixed plan (declared before the first step) or a :class:`Planner` (declared when due)."""

AskMode = Literal["autonomous", "careful_human", "careful_endorsing", "rubber_stamp"]
"""How an ``ask`` is answered: nobody (not done), a careful human, a careful human who approves
and remembers (endorses the values it approves, so the same ask is not raised again), or a
human who approves everything."""

ASK_MODES: tuple[AskMode, ...] = ("autonomous", "careful_human", "careful_endorsing", "rubber_stamp")
"""All ask modes, in report order."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What happened to one proposed call."""

    tool: str
    """The tool called."""
    args: dict[str, Any]
    """Its arguments."""
    verdict: Verdict
    """The guard's decision."""
    executed: bool
    """Whether the tool ran (allowed, or asked and approved)."""
    injected: bool
    """Whether the call came from an attacker's instructions."""
    approved: bool | None = None
    """The human's answer to an ``ask`` (None when nobody was asked)."""
    error: bool = False
    """Whether the tool itself failed."""
    reasons: tuple[str, ...] = ()
    """The decision's reasons, as rule names."""


@dataclass(slots=True)
class Transcript:
    """Everything one agent run did."""

    calls: list[CallOutcome] = field(default_factory=list)
    """Every proposed call, in order."""
    outputs: list[str] = field(default_factory=list)
    """Output texts of executed calls, in order."""
    injected_after: int | None = None
    """Index in ``calls`` after which the injection was obeyed (None: never seen)."""
    guard_s: float = 0.0
    """Seconds spent in the guard (checks, approvals, result recording)."""
    plan: Verdict | None = None
    """The guard's decision on the agent's plan (None: it declared none)."""
    plan_approved: bool | None = None
    """The human's answer when the plan was asked (None when nobody was asked)."""
    replans: list[tuple[Verdict, bool | None]] = field(default_factory=list)
    """Each re-plan declared after the first plan (``--plans realistic-replan``): the guard's
    decision and the human's answer (None when nobody was asked)."""
    withdrawn: int = 0
    """Asks the agent withdrew to re-plan instead (refused by the agent itself, never put to a human)."""

    @property
    def task_complete(self) -> bool:
        """Every task (non-injected) call ran without error."""
        return all(c.executed and not c.error for c in self.calls if not c.injected)

    @property
    def asks(self) -> int:
        """How many calls (and plans) got ``ask``: each one is a question for a human."""
        return sum(1 for c in self.calls if c.verdict == "ask") + (self.plan == "ask") + sum(1 for v, _ in self.replans if v == "ask")


class TaskApprover:
    """A careful human: approves a call only if it is one of the user's task calls.

    The task calls stand for what the user asked for (in a benchmark, the user
    task's ground truth); anything else is refused.
    """

    name = "careful_human"

    def __init__(self, task_calls: Collection[tuple[str, dict[str, Any]]]) -> None:
        self.task_calls = list(task_calls)

    def __call__(self, request: ApprovalRequest) -> bool:
        """Approve iff the call equals a task call (same tool, same argument values); a plan iff
        every write it names is one of the task calls (each named value equal to the call's)."""
        call = request.call
        if call.tool == PLAN_TOOL:
            writes = call.args.get("writes")
            return isinstance(writes, list) and all(self._planned(w) for w in writes)
        return any(tool == call.tool and _same_args(args, call.args) for tool, args in self.task_calls)

    def _planned(self, write: Any) -> bool:
        if not isinstance(write, dict) or not isinstance(write.get("args", {}), dict):
            return False
        named = write.get("args") or {}
        return any(
            tool == write.get("tool") and all(k in args and matches(args[k], v) for k, v in named.items()) for tool, args in self.task_calls
        )


class EndorsingTaskApprover(TaskApprover):
    """The careful human who approves and remembers: when it approves a call, it also endorses the
    values of the arguments whose provenance caused the ask (for the session or the principal, for
    seven days), so the same value for the same argument is not asked about again; when it
    approves a plan (with ``remember_plans``), the untrusted values each planned write names (for
    that write's tool and argument: the same value would be asked about there). It refuses what :class:`TaskApprover`
    refuses, and endorses nothing it refuses."""

    name = "careful_endorsing"

    def __init__(
        self, task_calls: Collection[tuple[str, dict[str, Any]]], *, scope: EndorsementScope = "session", remember_plans: bool = False
    ) -> None:
        super().__init__(task_calls)
        self.scope: EndorsementScope = scope
        """``session``, or ``principal``: every later session of the same principal is spared too."""
        self.remember_plans = remember_plans
        """Also remember the values of the plans it approves (the re-planning variant; off elsewhere,
        so the figures of the other variants stay as they were measured)."""

    def __call__(self, request: ApprovalRequest) -> bool:
        """Approve iff the call is a task call; then endorse its untrusted argument values."""
        approved = super().__call__(request)
        session = request.session
        if approved and isinstance(session, Session):
            call = request.call
            if call.tool == PLAN_TOOL:
                if not self.remember_plans:
                    return approved
                # a plan: the untrusted values each of its writes names, for that write's tool and argument
                for write in call.args.get("writes") or []:
                    args = dict(write.get("args") or {})
                    for arg in session.untrusted_args(write["tool"], args):
                        self._endorse(session, write["tool"], arg, args.get(arg), call.id)
            else:
                for arg in session.asked_args(call.id):
                    self._endorse(session, call.tool, arg, call.args.get(arg), call.id)
        return approved

    def _endorse(self, session: Session, tool: str, arg: str, value: Any, call_id: str) -> None:
        for item in value if isinstance(value, list) else [value]:
            try:
                expires = session.clock() + 7 * 86400
                session.endorse(tool, arg, item, scope=self.scope, by=self.name, call_id=call_id, expires_at=expires)
            except SessionError:
                continue  # not a value that can be endorsed (a boolean, text with hidden characters)


def approver_for(mode: AskMode, task_calls: Collection[tuple[str, dict[str, Any]]], *, remember_plans: bool = False) -> Approver | None:
    """The approver standing for ``mode`` (None: autonomous, asks are not done)."""
    if mode == "careful_human":
        return TaskApprover(task_calls)
    if mode == "careful_endorsing":
        return EndorsingTaskApprover(task_calls, remember_plans=remember_plans)
    if mode == "rubber_stamp":
        return StaticApprover(True, name="rubber_stamp")
    return None


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return _same_args(a, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is b
    return same_value(a, b)


def _same_args(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = {k for k, v in a.items() if v is not None} | {k for k, v in b.items() if v is not None}
    return all(_same_value(a.get(k), b.get(k)) for k in keys)


def propose(
    session: Session,
    step: Step,
    execute: Execute,
    approver: Approver | None,
    transcript: Transcript,
    planning: Planning | None = None,
    remaining: Sequence[Step] = (),
) -> str | None:
    """Put one step through the guard; run it if allowed or approved. Returns its output.

    With a re-planning agent (``planning`` holds a :class:`~tether.bench._replanner.Replanner` that
    has not stopped), a write the guard asks about is not put to the human: the agent
    withdraws it (answers its own request with a refusal, logged as the agent's), declares a
    re-plan naming ``remaining`` (this step and every one after it), and proposes the write again
    under whatever the human decided. A write denied only for being outside every approved plan
    (``plans.outside: deny``) is re-planned the same way (nothing to withdraw)."""
    gate = Gate(session, approver)
    started = time.perf_counter()
    admission: Admission | None = None
    replanned = False
    replanner = planning.replanner if planning is not None else None
    if replanner is not None and not replanner.stopped and replanner.is_write(step):
        first = Gate(session, None).admit(ToolCall(step.tool, dict(step.args)))
        why = first.decision.reasons
        outside = first.decision.verdict == "deny" and bool(why) and all(r.rule == "plans.outside" for r in why)
        if first.decision.verdict != "ask" and not outside:
            admission = first
        else:
            if first.decision.verdict == "ask":
                note = "withdrawn: the agent re-plans the rest of its task instead"
                session.answer(first.decision.call_id, False, by=WITHDRAWN_BY, note=note)
                transcript.withdrawn += 1
            transcript.guard_s += time.perf_counter() - started
            writes = replanner.replan(remaining or [step], transcript.outputs)
            replanner.settled(redeclare(session, writes, approver, transcript))
            replanned = True
            started = time.perf_counter()
    if admission is None:
        admission = gate.admit(ToolCall(step.tool, dict(step.args)))
    if replanned and replanner is not None and admission.decision.verdict != "allow":
        replanner.stop()
    decision, approved = admission.decision, admission.approved
    transcript.guard_s += time.perf_counter() - started
    reasons = tuple(r.rule for r in decision.reasons)
    if not admission.may_run:
        transcript.calls.append(CallOutcome(step.tool, dict(step.args), decision.verdict, False, step.injected, approved, reasons=reasons))
        return None
    output, error = execute(step.tool, dict(step.args))
    started = time.perf_counter()
    if error:
        gate.record_error(decision.call_id, output)
    else:
        gate.record(decision.call_id, output)
    transcript.guard_s += time.perf_counter() - started
    transcript.calls.append(CallOutcome(step.tool, dict(step.args), decision.verdict, True, step.injected, approved, error, reasons))
    transcript.outputs.append(output)
    return output


def declare(session: Session, plan: Sequence[dict[str, Any]] | None, approver: Approver | None, transcript: Transcript) -> bool:
    """Declare the agent's plan (when it has one); ask the approver on ``ask``. Returns whether it was approved."""
    if plan is None:
        return False
    started = time.perf_counter()
    admission = Gate(session, approver).admit_plan([dict(w) for w in plan])
    transcript.guard_s += time.perf_counter() - started
    transcript.plan, transcript.plan_approved = admission.decision.verdict, admission.approved
    return admission.may_run


WITHDRAWN_BY = "agent (re-planning)"
"""Who a withdrawn ask's refusal is logged as: the agent, never a human."""


def redeclare(session: Session, plan: Sequence[dict[str, Any]], approver: Approver | None, transcript: Transcript) -> bool:
    """Declare a further plan (a re-plan); ask the approver on ``ask``. Returns whether it was approved."""
    started = time.perf_counter()
    admission = Gate(session, approver).admit_plan([dict(w) for w in plan])
    transcript.guard_s += time.perf_counter() - started
    transcript.replans.append((admission.decision.verdict, admission.approved))
    return admission.may_run


class Planning:
    """When an agent declares its plan: a fixed plan before its first step, a planner's when due,
    and, with a :class:`~tether.bench._replanner.Replanner`, a re-plan instead of a write's ask
    (:func:`propose`)."""

    def __init__(self, plan: PlanSource | None) -> None:
        self.fixed = None if plan is None or isinstance(plan, Planner) else [dict(w) for w in plan]
        self.planner = plan if isinstance(plan, Planner) else None
        self.replanner = plan if isinstance(plan, Replanner) else None

    def start(self, session: Session, approver: Approver | None, transcript: Transcript) -> None:
        declare(session, self.fixed, approver, transcript)

    def before(self, session: Session, step: Step, approver: Approver | None, transcript: Transcript) -> None:
        """Declare the planner's plan before ``step`` when it is due (or the context is untrusted already)."""
        planner = self.planner
        if planner is not None and (planner.due(step) or session.context.untrusted):
            self.planner = None
            declare(session, planner.plan(list(transcript.outputs)), approver, transcript)


class OracleAgent:
    """Performs exactly the task's ground-truth calls: a utility upper bound.

    With a fixed ``plan`` it declares it before its first step (before reading anything); with a
    :class:`Planner`, before its first step that may read untrusted data.
    """

    def __init__(self, steps: Sequence[Step], plan: PlanSource | None = None) -> None:
        self.steps = list(steps)
        self.plan = plan

    def run(self, session: Session, execute: Execute, approver: Approver | None = None) -> Transcript:
        """Declare the plan (if any) when due, and propose every step in order."""
        transcript = Transcript()
        planning = Planning(self.plan)
        planning.start(session, approver, transcript)
        for i, step in enumerate(self.steps):
            planning.before(session, step, approver, transcript)
            propose(session, step, execute, approver, transcript, planning, self.steps[i:])
        return transcript


class WorstCaseAgent:
    """Does its task, and obeys the first injection it sees, completely.

    ``injected(output)`` says whether a tool output carries the attacker's
    instructions; ``attack()`` returns the attacker's calls at that moment (it is
    called once, so the calls can depend on the state the agent has reached). With a
    ``plan`` it declares it as the oracle does: the user task's plan, which the
    attacker's writes fall outside.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        attack: Callable[[], Sequence[Step]],
        injected: Callable[[str], bool],
        plan: PlanSource | None = None,
    ) -> None:
        self.steps = list(steps)
        self.attack = attack
        self.injected = injected
        self.plan = plan

    def run(self, session: Session, execute: Execute, approver: Approver | None = None) -> Transcript:
        """Propose the task's steps; after the first injected output, the attacker's, then the rest."""
        transcript = Transcript()
        planning = Planning(self.plan)
        planning.start(session, approver, transcript)
        obeyed = False
        for i, step in enumerate(self.steps):
            planning.before(session, step, approver, transcript)
            output = propose(session, step, execute, approver, transcript, planning, self.steps[i:])
            if not obeyed and output is not None and self.injected(output):
                obeyed = True
                transcript.injected_after = len(transcript.calls) - 1
                evil = [Step(e.tool, dict(e.args), e.note, injected=True) for e in self.attack()]
                for j, bad in enumerate(evil):
                    # its remaining writes now include the attacker's: a re-plan names them all
                    propose(session, bad, execute, approver, transcript, planning, [*evil[j:], *self.steps[i + 1 :]])
        return transcript
