"""Benchmarks and agents: scripted, oracle and worst-case agents, suites, runners, reports."""

from tether.bench._agents import ApproveAll, OracleAgent, TaskApprover, Transcript, WorstCaseAgent
from tether.bench._scripted import ScriptedAgent, Step, StepOutcome

__all__ = ["ApproveAll", "OracleAgent", "ScriptedAgent", "Step", "StepOutcome", "TaskApprover", "Transcript", "WorstCaseAgent"]
