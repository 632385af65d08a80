"""Benchmarks: agents that bound what any model could do, and the AgentDojo harness.

The agents (:class:`ScriptedAgent`, :class:`OracleAgent`, :class:`WorstCaseAgent`) need
nothing but Tether. The AgentDojo harness (``BenchContext``, ``run``, ``summarize``,
reports) needs the ``bench`` extra; its names are imported on first use, so a base
install can use the agents.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tether.bench._agents import OracleAgent, TaskApprover, Transcript, WorstCaseAgent
from tether.bench._scripted import ScriptedAgent, Step, StepOutcome

if TYPE_CHECKING:
    from tether.bench._episodes import BenchContext, load_policies
    from tether.bench._long_horizon import LongOptions
    from tether.bench._long_report import long_horizon
    from tether.bench._metrics import baseline, summarize
    from tether.bench._report import write_html, write_json
    from tether.bench._runner import episode_specs, run

_LAZY = {
    "BenchContext": "_episodes",
    "load_policies": "_episodes",
    "LongOptions": "_long_horizon",
    "long_horizon": "_long_report",
    "baseline": "_metrics",
    "summarize": "_metrics",
    "write_html": "_report",
    "write_json": "_report",
    "episode_specs": "_runner",
    "run": "_runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tether.bench.{module}"), name)


__all__ = [
    "BenchContext",
    "LongOptions",
    "OracleAgent",
    "ScriptedAgent",
    "Step",
    "StepOutcome",
    "TaskApprover",
    "Transcript",
    "WorstCaseAgent",
    "baseline",
    "episode_specs",
    "load_policies",
    "long_horizon",
    "run",
    "summarize",
    "write_html",
    "write_json",
]
