"""AgentDojo suites as the bench sees them: loading, injections, environments, checks.

Building an injected environment the AgentDojo way (format the YAML text with
the injections, parse, validate) costs up to 0.1 s for the workspace suite, and a
full run needs about two thousand of them. :class:`SuiteData` builds the
*identical* environment faster: it parses the environment once per distinct
injection text (every vector injected), once with the defaults and once with
canaries, then assembles each (user task, injection task) environment field by
field, taking each injectable string from the injected or the default parse.
Strings that mix an injected and a non-injected vector fall back to the slow
path, so the result is always what AgentDojo itself would build.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic.networks
import yaml
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement  # type: ignore[import-untyped]
from agentdojo.agent_pipeline.tool_execution import tool_result_to_str  # type: ignore[import-untyped]
from agentdojo.attacks.important_instructions_attacks import ImportantInstructionsAttack  # type: ignore[import-untyped]
from agentdojo.base_tasks import BaseInjectionTask, BaseUserTask  # type: ignore[import-untyped]
from agentdojo.functions_runtime import FunctionCall, FunctionsRuntime, TaskEnvironment  # type: ignore[import-untyped]
from agentdojo.task_suite.load_suites import get_suites  # type: ignore[import-untyped]
from agentdojo.task_suite.task_suite import TaskSuite, read_suite_file  # type: ignore[import-untyped]
from pydantic import BaseModel

from tether.adapters.agentdojo._ground_truth import injection_ground_truth
from tether.errors import ConfigError

SUPPORTED_VERSIONS = ("v1.2",)
"""AgentDojo benchmark versions the bench knows (their task counts are pinned in tests)."""
SUITE_NAMES = ("banking", "slack", "travel", "workspace")
"""The four AgentDojo suites."""
ATTACK_PIPELINE_NAME = "gpt-4o-2024-05-13"
"""Pipeline name the attack text addresses (AgentDojo's published GPT-4o runs: "GPT-4")."""

_CANARY = "<CANARY---{}--->"
_RECENT = 8
Path = tuple[str | int, ...]
_T = TypeVar("_T")


class _AttackTarget(BasePipelineElement):  # type: ignore[misc]
    """Stands in for the attacked pipeline: only its name is read (to name the model)."""

    name = ATTACK_PIPELINE_NAME

    def query(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never run
        raise NotImplementedError


@contextlib.contextmanager
def _memoised_email_validation() -> Iterator[None]:
    """Validate each distinct address once: pydantic's ``EmailStr`` check is a pure function of
    the string, and environments repeat the same few addresses thousands of times."""
    original = pydantic.networks.validate_email
    pydantic.networks.validate_email = _validate_email_cached
    try:
        yield
    finally:
        pydantic.networks.validate_email = original


@functools.lru_cache(maxsize=65536)
def _validate_email_cached(value: str) -> tuple[str, str]:
    return _VALIDATE_EMAIL(value)


_VALIDATE_EMAIL = pydantic.networks.validate_email


def load_suites(names: Sequence[str] | None = None, version: str = "v1.2") -> dict[str, TaskSuite[Any]]:
    """The named AgentDojo suites (all four by default); clear errors for bad input."""
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(f"unsupported AgentDojo benchmark version {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}")
    wanted = list(names) if names else list(SUITE_NAMES)
    unknown = [n for n in wanted if n not in SUITE_NAMES]
    if unknown:
        raise ConfigError(f"unknown AgentDojo suite(s) {unknown!r}; known: {', '.join(SUITE_NAMES)}")
    suites = get_suites(version)
    return {n: suites[n] for n in wanted}


def exact_copy(value: _T) -> _T:
    """An independent, equal copy (a pickle round trip: about twice as fast as a deep copy)."""
    copied: _T = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return copied


def _walk(value: Any, path: Path, out: list[tuple[Path, str]]) -> None:
    if isinstance(value, str):
        if "<CANARY---" in value:
            out.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, (*path, k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, (*path, i), out)


def _get(data: Any, path: Path) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@dataclass
class SuiteData:
    """One suite's tasks, attack and fast, exact environment builder."""

    suite: TaskSuite[Any]
    defaults: dict[str, str] = field(init=False)
    attack: ImportantInstructionsAttack = field(init=False)
    _text: str = field(init=False)
    _default_dump: dict[str, Any] = field(init=False)
    _canary_dump: dict[str, Any] = field(init=False)
    _slots: list[tuple[Path, frozenset[str]]] = field(init=False)
    _injected: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)
    _candidates: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    _recent: dict[tuple[tuple[str, str], ...], TaskEnvironment] = field(init=False, default_factory=dict)
    _slot_cache: dict[tuple[tuple[str, str], ...], dict[Path, str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.defaults = self.suite.get_injection_vector_defaults()
        self.attack = ImportantInstructionsAttack(self.suite, _AttackTarget())
        self._text = read_suite_file(self.suite.name, "environment.yaml", self.suite.data_path)
        self._default_dump = self._parse(self.defaults)
        self._canary_dump = self._parse({v: _CANARY.format(v) for v in self.defaults})
        found: list[tuple[Path, str]] = []
        _walk(self._canary_dump, (), found)
        self._slots = [(path, frozenset(v for v in self.defaults if _CANARY.format(v) in text)) for path, text in found]

    @property
    def name(self) -> str:
        """The suite's name."""
        return str(self.suite.name)

    def _parse(self, values: dict[str, str]) -> dict[str, Any]:
        # libyaml's safe loader builds the same data as yaml.safe_load, ten times faster
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        parsed: dict[str, Any] = yaml.load(self._text.format(**values), Loader=loader)
        return parsed

    def _model(self, data: dict[str, Any]) -> TaskEnvironment:
        with _memoised_email_validation():
            env: TaskEnvironment = self.suite.environment_type.model_validate(data)
        return env

    def environment(self, injections: dict[str, str] | None = None) -> TaskEnvironment:
        """A fresh environment with ``injections`` (vector -> text) and defaults elsewhere."""
        key = tuple(sorted((injections or {}).items()))
        env = self._recent.get(key)
        if env is None:
            env = self._build(dict(key))
            if len(self._recent) >= _RECENT:
                self._recent.pop(next(iter(self._recent)))
            self._recent[key] = env
        return exact_copy(env)

    def _build(self, injections: dict[str, str]) -> TaskEnvironment:
        if not injections:
            return self._model(exact_copy(self._default_dump))
        texts = set(injections.values())
        if len(texts) != 1:
            return self.suite.load_and_inject_default_environment(injections)
        (text,) = texts
        injected = self._injected.get(text)
        if injected is None:
            injected = self._injected[text] = self._parse(dict.fromkeys(self.defaults, text))
        data = exact_copy(self._default_dump)
        chosen = set(injections)
        for path, vectors in self._slots:
            inside = vectors & chosen
            if inside and inside != vectors:
                return self.suite.load_and_inject_default_environment(injections)
            if inside:
                _set(data, path, exact_copy(_get(injected, path)))
        return self._model(data)

    def vector_slots(self) -> list[tuple[Path, str]]:
        """Where each injection vector lands in the environment: (path, vector) for every string of
        the environment file that holds exactly one vector (paths of fields, keys and indices)."""
        return [(path, next(iter(vectors))) for path, vectors in self._slots if len(vectors) == 1]

    def slot_texts(self, values: dict[str, str]) -> dict[Path, str]:
        """What each vector slot holds when the vectors take ``values`` (the rest their defaults),
        exactly as AgentDojo's environment file formats it."""
        key = tuple(sorted(values.items()))
        found = self._slot_cache.get(key)
        if found is None:
            parsed = self._parse({**self.defaults, **values})
            found = {path: _get(parsed, path) for path, _ in self.vector_slots()}
            if len(self._slot_cache) >= _RECENT:
                self._slot_cache.pop(next(iter(self._slot_cache)))
            self._slot_cache[key] = found
        return dict(found)

    def injection_text(self, user_task: BaseUserTask[Any], injection_task: BaseInjectionTask[Any]) -> str:
        """The ``important_instructions`` text for one pair (AgentDojo's default attack)."""
        a = self.attack
        return str(a.jailbreak.format(goal=injection_task.GOAL, user=a.user_name, model=a.model_name, task=a.summarize_task(user_task)))

    def injection_candidates(self, user_task: BaseUserTask[Any]) -> tuple[str, ...]:
        """Vectors the user task's ground truth shows the agent (AgentDojo's rule, same canaries)."""
        found = self._candidates.get(user_task.ID)
        if found is not None:
            return found
        env = self._model(exact_copy(self._canary_dump))
        runtime = FunctionsRuntime(self.suite.tools)
        seen = [user_task.GROUND_TRUTH_OUTPUT]
        for call in user_task.ground_truth(env.model_copy(deep=True)):
            result, _ = runtime.run_function(env, call.function, call.args, raise_on_error=True)
            seen.append(tool_result_to_str(result))
        text = "\n".join(seen)
        found = tuple(v for v in self.defaults if _CANARY.format(v) in text)
        self._candidates[user_task.ID] = found
        return found

    def attack_injections(self, user_task: BaseUserTask[Any], injection_task: BaseInjectionTask[Any]) -> dict[str, str]:
        """The ``important_instructions`` injections for one pair (AgentDojo's default attack)."""
        return dict.fromkeys(self.injection_candidates(user_task), self.injection_text(user_task, injection_task))

    def injection_calls(self, injection_task: BaseInjectionTask[Any], pre: TaskEnvironment, now: TaskEnvironment) -> list[FunctionCall]:
        """The injection task's ground truth (ours where AgentDojo ships none).

        ``pre`` is the environment before the episode (what the attacker's goal
        refers to), ``now`` the current one (for ids of objects about to be made).
        """
        return injection_ground_truth(self.name, injection_task, pre, now)

    def tool_reachable(self, injection_task: BaseInjectionTask[Any]) -> bool:
        """Whether the injection task needs a tool call at all (else no tool guard can stop it)."""
        env = self.environment()
        return bool(self.injection_calls(injection_task, env, env))


def _pickled(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class UnchangedSharer:
    """Makes a post-run environment hold the pre-run environment's own objects wherever
    they are unchanged.

    "Unchanged" is strict: same type and the same pickled bytes (same values, types
    and order all the way down). AgentDojo's checks diff the whole environment with
    DeepDiff, which skips a pair of identical objects at once; on equal objects it
    would walk them and find nothing, so the checks' results are the same, in a
    fraction of the time. ``pre`` must never change (its pickles are remembered), and
    a ``post`` given to :meth:`share` must not run tools afterwards (it now shares
    objects with ``pre``).
    """

    def __init__(self, pre: TaskEnvironment) -> None:
        self.pre = pre
        self._pre_pickles: dict[int, bytes] = {}

    def _pre_pickled(self, value: Any) -> bytes:
        found = self._pre_pickles.get(id(value))
        if found is None:
            found = self._pre_pickles[id(value)] = _pickled(value)
        return found

    def share(self, post: TaskEnvironment) -> None:
        """Replace unchanged parts of ``post`` by the same parts of ``pre``."""
        self._share(self.pre, post)

    def _share(self, pre: Any, post: Any) -> Any:
        if type(pre) is not type(post):
            return post
        if self._pre_pickled(pre) == _pickled(post):
            return pre
        if isinstance(post, BaseModel):
            fields, before = post.__dict__, pre.__dict__
            for name in fields:
                if name in before:
                    fields[name] = self._share(before[name], fields[name])
        elif isinstance(post, dict):
            for key in post:
                if key in pre:
                    post[key] = self._share(pre[key], post[key])
        elif isinstance(post, list):
            for i in range(min(len(pre), len(post))):
                post[i] = self._share(pre[i], post[i])
        return post


def utility_ok(task: BaseUserTask[Any], output: str, pre: TaskEnvironment, post: TaskEnvironment, trace: Sequence[FunctionCall]) -> bool:
    """AgentDojo's utility check for a user task (trace-based where the task has one)."""
    from_traces = task.utility_from_traces(output, pre, post, trace)
    if from_traces is not None:
        return bool(from_traces)
    return bool(task.utility(output, pre, post))


def security_broken(
    task: BaseInjectionTask[Any], output: str, pre: TaskEnvironment, post: TaskEnvironment, trace: Sequence[FunctionCall]
) -> bool:
    """AgentDojo's security check: True when the injection task's goal was achieved."""
    from_traces = task.security_from_traces(output, pre, post, trace)
    if from_traces is not None:
        return bool(from_traces)
    return bool(task.security(output, pre, post))
