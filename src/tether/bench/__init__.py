"""Benchmarks and agents: scripted, oracle and worst-case agents, suites, runners, reports."""

from tether.bench._agents import OracleAgent, TaskApprover, Transcript, WorstCaseAgent
from tether.bench._scripted import ScriptedAgent, Step, StepOutcome

__all__ = ["OracleAgent", "ScriptedAgent", "Step", "StepOutcome", "TaskApprover", "Transcript", "WorstCaseAgent"]
