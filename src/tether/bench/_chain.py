"""One persistent AgentDojo environment for a whole suite, and injections placed into it along the way.

A single-task episode starts from a fresh environment with the attack already in it. Over a long
run the environment is one object: what task k wrote is what task k+1 reads. An injection is
placed where the attacker could reach at that moment: in the vectors (AgentDojo's injectable
strings) that the next task's ground truth, run on a copy of the *current* environment, shows the
agent (AgentDojo's own rule, applied to the chained state), and only in vectors no task has
changed since (an email the user edited is the user's text, not the attacker's). The text stays
there afterwards, so later tasks may read it again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from agentdojo.agent_pipeline.tool_execution import tool_result_to_str  # type: ignore[import-untyped]
from agentdojo.base_tasks import BaseUserTask  # type: ignore[import-untyped]
from agentdojo.functions_runtime import FunctionsRuntime, TaskEnvironment  # type: ignore[import-untyped]
from pydantic import BaseModel

from tether.adapters.agentdojo import SuiteData, exact_copy

_CANARY = "<LONG-RUN-CANARY-{}>"
Path = tuple[str | int, ...]


def _child(value: Any, key: str | int) -> Any:
    return getattr(value, str(key)) if isinstance(value, BaseModel) else value[key]


def _get(value: Any, path: Path) -> Any:
    for key in path:
        value = _child(value, key)
    return value


def _write(root: Any, path: Path, text: str) -> None:
    """Put ``text`` at ``path``; a key that named the old text is renamed with it."""
    parent, key = _get(root, path[:-1]), path[-1]
    old = _child(parent, key)
    if isinstance(parent, BaseModel):
        setattr(parent, str(key), text)
    else:
        parent[key] = text
    if isinstance(old, str) and old:
        _rename_keys(root, old, text)


def _rename_keys(value: Any, old: str, new: str) -> None:
    """Rename every mapping key equal to ``old``, and ``old`` in every list a mapping holds (a channel
    renamed by an injection keeps its messages and its members). A list elsewhere (a hotel's reviews)
    is text, not names: an equal review elsewhere is left alone, as AgentDojo's file would leave it."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _rename_keys(getattr(value, name), old, new)
    elif isinstance(value, dict):
        if old in value and new not in value:
            value[new] = value.pop(old)
        for item in value.values():
            if isinstance(item, list):
                item[:] = [new if x == old else x for x in item]
            _rename_keys(item, old, new)
    elif isinstance(value, list):
        for item in value:
            _rename_keys(item, old, new)


class Chain:
    """A suite's one environment, carried from task to task, and the injection vectors in it."""

    def __init__(self, data: SuiteData) -> None:
        self.data = data
        self.env: TaskEnvironment = data.environment()
        """The environment now: tasks run their tools on it, one after another."""
        self.runtime = FunctionsRuntime(data.suite.tools)
        self._slots = data.vector_slots()
        self._expected = data.slot_texts({})
        """What each vector's slot held when it was last written by the data or an injection."""

    def begin(self, user_task: BaseUserTask[Any]) -> TaskEnvironment:
        """Prepare the environment for ``user_task`` (AgentDojo's ``init_environment``) and return it."""
        self.env = user_task.init_environment(self.env)
        return self.env

    def _free(self) -> set[str]:
        """Vectors whose every slot still holds what was last placed there (no task changed it)."""
        changed: set[str] = set()
        for path, vector in self._slots:
            try:
                same = _get(self.env, path) == self._expected[path]
            except (AttributeError, KeyError, IndexError, TypeError):
                same = False  # the object holding it was deleted
            if not same:
                changed.add(vector)
        return {v for _, v in self._slots} - changed

    def vectors_read(self, user_task: BaseUserTask[Any]) -> tuple[str, ...]:
        """Free vectors that ``user_task``'s ground truth, run on a copy of the environment now, shows the agent."""
        free = self._free()
        if not free:
            return ()
        canaries = self.data.slot_texts({v: _CANARY.format(v) for v in free})
        probe = exact_copy(self.env)
        for path, vector in self._slots:
            if vector in free:
                _write(probe, path, canaries[path])
        seen = [str(user_task.GROUND_TRUTH_OUTPUT)]
        for call in user_task.ground_truth(exact_copy(probe)):
            result, error = self.runtime.run_function(probe, call.function, call.args)
            seen.append(error if error is not None else tool_result_to_str(result))
        text = "\n".join(seen)
        return tuple(v for v in sorted(free) if _CANARY.format(v) in text)

    def place(self, vectors: tuple[str, ...], text: str) -> None:
        """Write ``text`` into ``vectors`` as AgentDojo's environment file would hold it."""
        new = self.data.slot_texts(dict.fromkeys(vectors, text))
        for path, vector in self._slots:
            if vector in vectors:
                _write(self.env, path, new[path])
                self._expected[path] = new[path]


def injection_order(data: SuiteData, seed: int) -> Iterator[str]:
    """The suite's injection tasks in a seeded shuffle, repeated (each pass shuffled afresh)."""
    rng = random.Random(f"{data.name}/{seed}")
    tasks = sorted(data.suite.injection_tasks)
    while True:
        rng.shuffle(tasks)
        yield from list(tasks)
