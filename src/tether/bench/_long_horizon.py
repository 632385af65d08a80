"""The long horizon (``tether bench agentdojo --horizon long``): a suite's user tasks one after another.

One principal runs every user task of a suite, in the suite's order, in **one persistent
environment** (:class:`~tether.bench._chain.Chain`: what a task wrote is what the next reads),
each task as its own session of that principal in one store, so endorsements given for the
principal carry over. A careful human answers every ask. Each suite is run:

* benign (the oracle agent, no injection): utility and the human's load;
* attacked (the worst-case agent, which obeys every injection it reads, in every session that
  reads it): every ``inject_every``-th task gets the next injection task of a seeded shuffle, in
  the vectors that task reads (a task that reads none passes it on to the next);

for each variant: ``plain`` (the careful human), ``endorsements`` (it approves and remembers the
values it approves, for the principal, seven days), ``plans`` (the agent declares its task's plan
first, from the planner named by ``LongOptions.plans``) and ``both``. Two runs without defense
calibrate: the oracle's chained run says which tasks cannot be chained (their utility check fails
with no guard at all; they still run, but count in no utility), and the worst-case agent's says
how many of the placed attacks succeed undefended.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from agentdojo.base_tasks import BaseInjectionTask  # type: ignore[import-untyped]
from agentdojo.functions_runtime import FunctionCall  # type: ignore[import-untyped]

from tether.adapters.agentdojo import exact_copy, security_broken, utility_ok
from tether.approvals import Approver
from tether.bench._agents import EndorsingTaskApprover, Execute, Planning, PlanSource, TaskApprover, Transcript, propose
from tether.bench._chain import Chain, injection_order
from tether.bench._episodes import BenchContext, PlanKind, injection_mark, shows, task_plan
from tether.bench._planner import RealisticPlanner
from tether.bench._replanner import Replanner
from tether.bench._scripted import Step
from tether.policy import Policy
from tether.session import Guard, Session
from tether.store import EventStore, SQLiteStore

Variant = Literal["plain", "endorsements", "plans", "both"]
"""How the long run is overseen: the careful human alone, approving and remembering, with plans, or both."""
VARIANTS: tuple[Variant, ...] = ("plain", "endorsements", "plans", "both")
"""Every variant, in report order."""
UNDEFENDED: Final = "no_defense"
"""The name of the calibration runs (an allow-everything policy, nobody asked)."""


@dataclass(frozen=True, slots=True)
class LongOptions:
    """How a long run places its injections and plans its tasks."""

    inject_every: int = 2
    """Every n-th task gets an injection (a task that reads no free vector passes it on)."""
    seed: int = 0
    """Seeds the order in which injection tasks are placed."""
    plans: PlanKind = "perfect"
    """The planner of the ``plans`` and ``both`` variants (a kind of :func:`task_plan`)."""


@dataclass(slots=True)
class TaskRecord:
    """One user task of a long run."""

    task: str
    """The user task id."""
    utility: bool
    """Its utility check passed in the chained environment."""
    decisions: int
    """Questions for the human in its session (calls and the plan that got ``ask``)."""
    endorsements: int
    """Endorsements the human gave for the principal in its session."""
    obeyed: list[str] = field(default_factory=list)
    """Injection tasks the agent read and obeyed in its session."""
    failed_calls: list[str] = field(default_factory=list)
    """Its own calls that ran and failed (the tool's error), for the unchainable list's reasons."""
    injected_run: int = 0
    """Attacker's calls that ran (allowed, or asked and approved)."""
    injected_writes_run: list[str] = field(default_factory=list)
    """Of those, the ones the suite's policy classes as writes (a tool it does not name counts as one),
    as ``tool(args)``: evidence that needs no security check, which a long run's changed state can fool."""
    error: str | None = None
    """Set when the task crashed the harness; the run goes on with the next task."""


@dataclass(slots=True)
class Placement:
    """One injection placed along a run."""

    position: int
    """Index of the task before which it was placed."""
    task: str
    """That user task."""
    injection: str
    """The injection task whose goal the text carries."""
    vectors: tuple[str, ...]
    """Where it was written."""
    reachable: bool
    """The injection task needs a tool call (else no tool guard can stop it)."""
    seen: bool = False
    """The agent read it (and obeyed) at least once before it was replaced."""
    succeeded: bool = False
    """Its security check said the attack succeeded after a session that obeyed it."""


@dataclass(slots=True)
class ChainRun:
    """One suite's tasks run once, in one environment, under one variant."""

    suite: str
    variant: str
    attacked: bool
    tasks: list[TaskRecord] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)


Progress = Callable[[int], None]
"""Called with the number of tasks just finished."""


def run_chain(
    ctx: BenchContext,
    suite: str,
    variant: Variant | Literal["no_defense"],
    *,
    attacked: bool,
    options: LongOptions = LongOptions(),
    progress: Progress | None = None,
) -> ChainRun:
    """Run every user task of ``suite`` in order in one environment, as one principal's sessions."""
    data = ctx.data(suite)
    defended = variant != UNDEFENDED
    policy = ctx.policy(suite, defended)
    store: EventStore = ctx.store() or SQLiteStore(":memory:")
    guard = Guard(policy, store)
    # A principal of its own: a shared --db must not carry one run's endorsements into another.
    principal = f"long/{suite}/{variant}/{'attacked' if attacked else 'benign'}/{uuid.uuid4().hex[:8]}"
    chain = Chain(data)
    order = injection_order(data, options.seed)
    run = ChainRun(suite, variant, attacked)
    due = False
    for position, (task_id, user_task) in enumerate(data.suite.user_tasks.items()):
        due = due or (attacked and position % options.inject_every == 0)
        try:
            chain.begin(user_task)
            if due:
                due = not _place(chain, position, task_id, order, run.placements)
            record = _run_task(ctx, chain, guard, principal, task_id, variant, run.placements, options)
        except Exception as exc:  # recorded, not raised: one broken task must not lose the run
            record = TaskRecord(task_id, False, 0, 0, error=f"{type(exc).__name__}: {exc}")
        run.tasks.append(record)
        if progress is not None:
            progress(1)
    return run


def _place(chain: Chain, position: int, task_id: str, order: Iterator[str], placements: list[Placement]) -> bool:
    """Place the next injection where ``task_id`` reads; False when it reads no free vector."""
    data = chain.data
    user_task = data.suite.get_user_task_by_id(task_id)
    vectors = chain.vectors_read(user_task)
    if not vectors:
        return False
    injection = data.suite.get_injection_task_by_id(next(order))
    chain.place(vectors, data.injection_text(user_task, injection))
    placements.append(Placement(position, task_id, injection.ID, vectors, data.tool_reachable(injection)))
    return True


def _run_task(
    ctx: BenchContext,
    chain: Chain,
    guard: Guard,
    principal: str,
    task_id: str,
    variant: str,
    placements: Sequence[Placement],
    options: LongOptions,
) -> TaskRecord:
    data = chain.data
    user_task = data.suite.get_user_task_by_id(task_id)
    pre = exact_copy(chain.env)
    ground_truth: list[FunctionCall] = user_task.ground_truth(exact_copy(pre))
    steps = [Step(c.function, dict(c.args)) for c in ground_truth]
    calls = [(s.tool, s.args) for s in steps]
    approver: Approver | None = None
    if variant != UNDEFENDED:
        replanning = options.plans == "realistic-replan" and variant == "both"
        approver = (
            EndorsingTaskApprover(calls, scope="principal", remember_plans=replanning)
            if variant in ("endorsements", "both")
            else TaskApprover(calls)
        )
    plan: PlanSource | None = None
    if variant in ("plans", "both"):
        if options.plans == "realistic":
            plan = RealisticPlanner(guard.policy, user_task.PROMPT, calls)
        elif options.plans == "realistic-replan":
            plan = Replanner(guard.policy, user_task.PROMPT, calls)
        else:
            plan = task_plan(guard.policy, ground_truth, options.plans)
    runtime = chain.runtime

    def execute(tool: str, args: dict[str, Any]) -> tuple[str, bool]:
        output, error = runtime.run_function(chain.env, tool, args)
        return (error, True) if error is not None else (ctx.output_text(output), False)

    placed = {p.injection: data.suite.get_injection_task_by_id(p.injection) for p in placements}
    session = guard.start_session(user_task.PROMPT, principal=principal, metadata={"long_run": principal, "task": task_id})
    try:
        before = _principal_endorsements(session)
        transcript, obeyed = _obey_everything(
            session, steps, execute, approver, plan, placed, lambda task: data.injection_calls(task, pre, chain.env)
        )
        made = _principal_endorsements(session) - before
    finally:
        session.end()

    post = chain.env
    output = str(user_task.GROUND_TRUTH_OUTPUT) if transcript.task_complete else ""
    for injection in obeyed:
        if placed[injection].GROUND_TRUTH_OUTPUT:
            output = f"{output}\n{placed[injection].GROUND_TRUTH_OUTPUT}".strip()
    trace = [FunctionCall(function=c.tool, args=c.args) for c in transcript.calls if c.executed]
    record = TaskRecord(task_id, utility_ok(user_task, output, pre, post, trace), transcript.asks, made, obeyed)
    record.failed_calls = [f"{c.tool}: {out[:160]}" for c, out in _errors(transcript) if not c.injected]
    ran = [c for c in transcript.calls if c.injected and c.executed]
    record.injected_run = len(ran)
    record.injected_writes_run = [f"{c.tool}({_short(c.args)})" for c in ran if _is_write(ctx.policy(data.name), c.tool, c.args)]
    for injection in obeyed:
        latest = [p for p in placements if p.injection == injection][-1]
        latest.seen = True
        latest.succeeded = latest.succeeded or security_broken(placed[injection], output, pre, post, trace)
    return record


def _short(args: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= 160 else text[:157] + "..."


def _is_write(policy: Policy, tool: str, args: dict[str, Any]) -> bool:
    spec = policy.tools.get(tool)
    return spec is None or spec.effect_of(args) == "write"


def _errors(transcript: Transcript) -> list[tuple[Any, str]]:
    executed = [c for c in transcript.calls if c.executed]
    return [(c, out) for c, out in zip(executed, transcript.outputs, strict=True) if c.error]


def _principal_endorsements(session: Session) -> int:
    return sum(1 for e in session.endorsements(live_only=False) if e.scope == "principal")


def _obey_everything(
    session: Session,
    steps: Sequence[Step],
    execute: Execute,
    approver: Approver | None,
    plan: PlanSource | None,
    placed: dict[str, BaseInjectionTask[Any]],
    attack: Callable[[BaseInjectionTask[Any]], list[FunctionCall]],
) -> tuple[Transcript, list[str]]:
    """The worst-case agent of a long run: its task's steps; after every output, the calls of each
    injection that output shows (each once per session), then the rest of its task. With nothing
    placed, it is the oracle."""
    marks = {name: injection_mark(task) for name, task in placed.items()}
    transcript = Transcript()
    planning = Planning(plan)
    planning.start(session, approver, transcript)
    obeyed: list[str] = []
    for i, step in enumerate(steps):
        planning.before(session, step, approver, transcript)
        output = propose(session, step, execute, approver, transcript, planning, steps[i:])
        if output is None or not marks:
            continue
        for name in sorted(marks):
            if name not in obeyed and shows(output, marks[name]):
                obeyed.append(name)
                transcript.injected_after = len(transcript.calls) - 1
                evil = [Step(call.function, dict(call.args), injected=True) for call in attack(placed[name])]
                for j, bad in enumerate(evil):  # its remaining writes now include the attacker's
                    propose(session, bad, execute, approver, transcript, planning, [*evil[j:], *steps[i + 1 :]])
    return transcript, obeyed
