"""Benchmarks and agents: scripted, oracle and worst-case agents, suites, runners, reports."""

from tether.bench._scripted import ScriptedAgent, Step, StepOutcome

__all__ = ["ScriptedAgent", "Step", "StepOutcome"]
