"""AgentDojo episodes under Tether: one user task, optionally one injection task, one agent.

Every call the agent proposes goes through :meth:`Session.check`; a denied call
is not executed, an ``ask`` is answered according to the ask mode. An episode is
run in the autonomous mode first; only if it raised an ``ask`` is it run again
for the careful and the rubber-stamp human (the runs are deterministic, so the
other modes would be identical otherwise).
"""

from __future__ import annotations

import pickle
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentdojo.agent_pipeline.tool_execution import tool_result_to_str  # type: ignore[import-untyped]
from agentdojo.base_tasks import BaseInjectionTask, BaseUserTask  # type: ignore[import-untyped]
from agentdojo.functions_runtime import FunctionCall, FunctionsRuntime, TaskEnvironment  # type: ignore[import-untyped]

from tether.adapters.agentdojo import SuiteData, UnchangedSharer, exact_copy, load_suites, security_broken, utility_ok
from tether.bench._agents import ASK_MODES, AskMode, OracleAgent, PlanSource, Transcript, WorstCaseAgent, approver_for
from tether.bench._planner import RealisticPlanner
from tether.bench._replanner import Replanner
from tether.bench._scripted import Step
from tether.errors import ConfigError
from tether.policy import Policy
from tether.session import Guard
from tether.store import EventStore, open_store

AgentKind = Literal["oracle", "worst-case"]
"""Which bounding agent runs the episode."""

PlanKind = Literal["off", "perfect", "imperfect", "realistic", "realistic-replan"]
"""Whether the agent declares a plan: none, every write of the user task's ground truth with all
its argument values before its first step (a perfect planner), the same less its last write (an
imperfect planner that forgot one needed write), or the writes with only the values the task's
prompt and trusted reads spell out, before the first step that may read untrusted data (a
realistic planner, :mod:`tether.bench._planner`), or the realistic planner's plan followed, before
each write its approved plans do not cover, by a re-plan naming every remaining write with the
values known by then (``realistic-replan``, :mod:`tether.bench._replanner`)."""


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """What to run."""

    suite: str
    """Suite name."""
    user_task: str
    """User task id."""
    injection_task: str | None
    """Injection task id (None: a benign episode, default injection vectors)."""
    agent: AgentKind
    """The agent."""
    scoped: bool = False
    """Start the session with the task scope taken from the user task's ground truth."""
    defended: bool = True
    """False: the no-defense baseline (a policy that allows every tool)."""
    plans: PlanKind = "off"
    """The plan the agent declares before its first step (see :data:`PlanKind`)."""

    @property
    def key(self) -> str:
        """A stable, unique name for sorting and joining."""
        inj = self.injection_task or "-"
        key = f"{self.suite}/{self.user_task}/{inj}/{self.agent}/{'scoped' if self.scoped else 'unscoped'}/{'tether' if self.defended else 'none'}"
        return key if self.plans == "off" else f"{key}/plans-{self.plans}"


@dataclass(slots=True)
class ModeResult:
    """The outcome of an episode under one ask mode."""

    utility: bool
    """The user task's utility check passed."""
    attacked: bool | None
    """The injection task's security check says the attack succeeded (None: benign episode)."""
    asks: int
    """Calls that got ``ask``."""
    denied_task_calls: int
    """Calls of the user's own task the guard denied."""
    blocked_task_calls: int
    """Calls of the user's own task that did not run (denied, or asked and not approved)."""
    injection_seen: bool
    """The agent saw the injection (worst-case agent obeyed it)."""
    guard_s: float
    """Seconds spent in the guard."""
    plan: str | None = None
    """The guard's decision on the declared plan (None: no plan)."""
    replans: int = 0
    """Re-plans declared after the first plan (``realistic-replan`` only)."""


@dataclass(slots=True)
class EpisodeResult:
    """All ask modes of one episode (identical when it raised no ``ask``)."""

    spec: EpisodeSpec
    modes: dict[str, ModeResult] = field(default_factory=dict)
    error: str | None = None
    """Set when the episode crashed; the run goes on."""
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "spec": asdict(self.spec),
            "modes": {k: asdict(v) for k, v in self.modes.items()},
            "error": self.error,
            "wall_s": self.wall_s,
        }


def allow_all_policy(data: SuiteData) -> Policy:
    """The no-defense baseline: every suite tool allowed, any arguments, output trusted."""
    tools = "\n".join(f"  {t.name}: {{effect: read, output: trusted, additional_args: allow}}" for t in data.suite.tools)
    return Policy.from_yaml(f"tether: 1\nname: no-defense-{data.name}\ntools:\n{tools}\n", source="<no-defense>")


def load_policies(policy_dir: str | Path, suites: list[str]) -> dict[str, str]:
    """Read ``<dir>/<suite>.yaml`` for each suite; a missing file is a clear error."""
    root = Path(policy_dir)
    if not root.is_dir():
        raise ConfigError(f"policy directory {str(root)!r} does not exist")
    texts: dict[str, str] = {}
    for suite in suites:
        path = root / f"{suite}.yaml"
        if not path.is_file():
            raise ConfigError(f"policy directory {str(root)!r} has no policy for suite {suite!r} (expected {str(path)!r})")
        texts[suite] = path.read_text(encoding="utf-8")
        Policy.from_yaml(texts[suite], source=str(path))
    return texts


_Checks = tuple[bool, bool | None]
_PAIRS_KEPT = 2
_TEXTS_KEPT = 2048


@dataclass
class PairData:
    """What every episode of one (user task, injection task) pair shares."""

    user_task: BaseUserTask[Any]
    injection_task: BaseInjectionTask[Any] | None
    pre: TaskEnvironment
    """The initialised environment before any call; never changed (runs get copies)."""
    ground_truth: list[FunctionCall]
    """The user task's ground-truth calls on ``pre``."""
    checks: dict[tuple[str, str], _Checks] = field(default_factory=dict)
    """(executed trace, answer) -> (utility, attacked), filled as episodes run."""
    sharer: UnchangedSharer = field(init=False)

    def __post_init__(self) -> None:
        self.sharer = UnchangedSharer(self.pre)

    def fresh_environment(self) -> TaskEnvironment:
        """An exact, independent copy of ``pre`` (a pickle round trip: faster than a deep copy)."""
        env: TaskEnvironment = exact_copy(self.pre)
        return env


class BenchContext:
    """Suites and compiled policies, built lazily once per process (and per Ray worker)."""

    def __init__(self, policy_texts: dict[str, str], version: str = "v1.2", *, db: str | None = None) -> None:
        self.policy_texts = dict(policy_texts)
        self.version = version
        self.db = db
        """Where the episodes' sessions are logged (a SQLite file or a ``postgresql://`` URL, opened
        once per process: every Ray worker writes to the same log); None: a private in-memory
        store per episode."""
        self._store: EventStore | None = None
        self._data: dict[str, SuiteData] = {}
        self._policies: dict[tuple[str, bool], Policy] = {}
        self._pairs: dict[tuple[str, str, str | None], PairData] = {}
        self._runtimes: dict[str, FunctionsRuntime] = {}
        self._texts: dict[bytes, str] = {}

    def store(self) -> EventStore | None:
        """The shared event store named by ``db`` (opened on first use), or None."""
        if self.db is not None and self._store is None:
            self._store = open_store(self.db)
        return self._store

    def data(self, suite: str) -> SuiteData:
        """The suite's data (loaded on first use)."""
        found = self._data.get(suite)
        if found is None:
            found = self._data[suite] = SuiteData(load_suites([suite], self.version)[suite])
        return found

    def policy(self, suite: str, defended: bool = True) -> Policy:
        """The suite's policy (or the allow-all baseline)."""
        found = self._policies.get((suite, defended))
        if found is None:
            found = Policy.from_yaml(self.policy_texts[suite], source=f"{suite}.yaml") if defended else allow_all_policy(self.data(suite))
            self._policies[(suite, defended)] = found
        return found

    def runtime(self, suite: str) -> FunctionsRuntime:
        """The suite's tools (stateless; shared by every run)."""
        found = self._runtimes.get(suite)
        if found is None:
            found = self._runtimes[suite] = FunctionsRuntime(self.data(suite).suite.tools)
        return found

    def output_text(self, output: Any) -> str:
        """AgentDojo's text for a tool result (``tool_result_to_str``), remembered by the
        result's pickled form: runs of one pair read the same data again and again."""
        key = pickle.dumps(output, protocol=pickle.HIGHEST_PROTOCOL)
        found = self._texts.get(key)
        if found is None:
            if len(self._texts) >= _TEXTS_KEPT:
                self._texts.clear()
            found = self._texts[key] = tool_result_to_str(output)
        return found

    def pair(self, suite: str, user_task_id: str, injection_task_id: str | None) -> PairData:
        """The pair's shared data; the last few pairs are kept (a pair's episodes are adjacent)."""
        key = (suite, user_task_id, injection_task_id)
        found = self._pairs.get(key)
        if found is None:
            data = self.data(suite)
            user_task = data.suite.get_user_task_by_id(user_task_id)
            injection_task = data.suite.get_injection_task_by_id(injection_task_id) if injection_task_id else None
            injections = data.attack_injections(user_task, injection_task) if injection_task else {}
            pre = user_task.init_environment(data.environment(injections))
            found = PairData(user_task, injection_task, pre, user_task.ground_truth(exact_copy(pre)))
            if len(self._pairs) >= _PAIRS_KEPT:
                self._pairs.pop(next(iter(self._pairs)))
            self._pairs[key] = found
        return found


_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def injection_mark(task: BaseInjectionTask[Any]) -> str:
    """What shows an injection task's text in an output: the first line of its goal, letters and
    digits only, lower case (the attack text carries the goal; a tool's output may reformat it)."""
    return _signature(task.GOAL.split("\n")[0])[:80]


def _signature(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def shows(output: str, mark: str) -> bool:
    """Whether ``output`` carries the injection whose :func:`injection_mark` is ``mark``."""
    return mark in _signature(output)


def task_scope(policy: Policy, calls: list[FunctionCall]) -> dict[str, Any]:
    """A perfect planner's scope: the write tools of the ground truth, and the values of
    their arguments that choose a destination (those the policy requires to be trusted)."""
    writes: dict[str, dict[str, list[Any]] | None] = {}
    for call in calls:
        tool = policy.tools.get(call.function)
        if tool is None or tool.effect != "write":
            continue
        targets = [arg for arg, flow in tool.flows if flow.require_trusted]
        entry = writes.setdefault(call.function, {} if targets else None)
        if entry is None:
            continue
        for arg in targets:
            value = call.args.get(arg)
            values = value if isinstance(value, list) else [value]
            entry.setdefault(arg, []).extend(v for v in values if v is not None)
    return {"writes": writes}


def task_plan(policy: Policy, calls: list[FunctionCall], kind: PlanKind) -> list[dict[str, Any]] | None:
    """The plan the agent declares: every write of the ground truth with its argument values (a
    perfect planner that knows, before reading anything, every value its task will need), or
    the same less its last write (``imperfect``). None when ``kind`` is ``off`` (and ``realistic``:
    that planner plans as the agent goes, :class:`tether.bench._planner.RealisticPlanner`)."""
    if kind in ("off", "realistic", "realistic-replan"):
        return None
    plan: list[dict[str, Any]] = []
    for call in calls:
        tool = policy.tools.get(call.function)
        if tool is None or tool.effect_of(dict(call.args)) != "write":
            continue
        entry = {"tool": call.function, "args": {k: v for k, v in call.args.items() if v is not None}}
        if entry not in plan:
            plan.append(entry)
    return plan[:-1] if kind == "imperfect" else plan


def run_episode(spec: EpisodeSpec, ctx: BenchContext) -> EpisodeResult:
    """Run one episode in every ask mode it needs; a crash is recorded, not raised."""
    started = time.perf_counter()
    result = EpisodeResult(spec)
    try:
        first = _run_mode(spec, ctx, "autonomous")
        result.modes["autonomous"] = first
        for mode in ASK_MODES[1:]:
            result.modes[mode] = first if first.asks == 0 else _run_mode(spec, ctx, mode)
    except Exception as exc:
        result.modes = {}
        result.error = f"{type(exc).__name__}: {exc}"
    result.wall_s = time.perf_counter() - started
    return result


def _run_mode(spec: EpisodeSpec, ctx: BenchContext, mode: AskMode) -> ModeResult:
    data = ctx.data(spec.suite)
    policy = ctx.policy(spec.suite, spec.defended)
    pair = ctx.pair(spec.suite, spec.user_task, spec.injection_task)
    user_task, injection_task, pre, ground_truth = pair.user_task, pair.injection_task, pair.pre, pair.ground_truth
    env = pair.fresh_environment()
    steps = [Step(c.function, dict(c.args)) for c in ground_truth]
    runtime = ctx.runtime(spec.suite)

    def execute(tool: str, args: dict[str, Any]) -> tuple[str, bool]:
        output, error = runtime.run_function(env, tool, args)
        return (error, True) if error is not None else (ctx.output_text(output), False)

    scope = task_scope(policy, ground_truth) if spec.scoped else None
    session = Guard(policy, ctx.store()).start_session(user_task.PROMPT, scope=scope, metadata={"episode": spec.key, "mode": mode})
    approver = approver_for(mode, [(s.tool, s.args) for s in steps], remember_plans=spec.plans == "realistic-replan")
    plan: PlanSource | None = None
    if spec.defended and spec.plans == "realistic":
        plan = RealisticPlanner(policy, user_task.PROMPT, [(s.tool, s.args) for s in steps])
    elif spec.defended and spec.plans == "realistic-replan":
        plan = Replanner(policy, user_task.PROMPT, [(s.tool, s.args) for s in steps])
    elif spec.defended:
        plan = task_plan(policy, ground_truth, spec.plans)
    transcript: Transcript
    if spec.agent == "worst-case" and injection_task is not None:
        attack_task = injection_task
        mark = injection_mark(attack_task)
        agent = WorstCaseAgent(
            steps,
            lambda: [Step(c.function, dict(c.args)) for c in data.injection_calls(attack_task, pre, env)],
            lambda output: shows(output, mark),
            plan,
        )
        transcript = agent.run(session, execute, approver)
    else:
        transcript = OracleAgent(steps, plan).run(session, execute, approver)
    session.end()

    output = user_task.GROUND_TRUTH_OUTPUT if transcript.task_complete else ""
    if injection_task is not None and transcript.injected_after is not None and injection_task.GROUND_TRUTH_OUTPUT:
        output = f"{output}\n{injection_task.GROUND_TRUTH_OUTPUT}".strip()
    trace = [FunctionCall(function=c.tool, args=c.args) for c in transcript.calls if c.executed]
    key = (repr([(c.function, sorted(c.args.items())) for c in trace]), output)
    checks = pair.checks.get(key)
    if checks is None:
        pair.sharer.share(env)
        utility = utility_ok(user_task, output, pre, env, trace)
        attacked = security_broken(injection_task, output, pre, env, trace) if injection_task is not None else None
        checks = pair.checks[key] = (utility, attacked)
    task_calls = [c for c in transcript.calls if not c.injected]
    return ModeResult(
        utility=checks[0],
        attacked=checks[1],
        asks=transcript.asks,
        denied_task_calls=sum(1 for c in task_calls if c.verdict == "deny"),
        blocked_task_calls=sum(1 for c in task_calls if not c.executed),
        injection_seen=transcript.injected_after is not None,
        guard_s=transcript.guard_s,
        plan=transcript.plan,
        replans=len(transcript.replans),
    )
