"""A scripted agent: plays a fixed list of tool calls through a guarded session.

It is the simplest test double for a model: no LLM, fully repeatable. Steps can
be marked as injected (the calls a compromised model would add after reading an
attack), so a test can assert the guard stops exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether._decision import Decision, ToolCall
from tether.approvals import Approver, AsyncApprover
from tether.session import Gate, Session, error_text

Tool = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Step:
    """One call the agent will propose."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    """What the step is for, in words."""
    injected: bool = False
    """True when the call comes from an attacker's instructions."""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What happened to one step."""

    step: Step
    decision: Decision
    executed: bool
    output: Any = None
    approved: bool | None = None


class ScriptedAgent:
    """Proposes its steps in order; executes the ones the guard lets through."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)

    def run(self, session: Session, tools: dict[str, Tool], approver: Approver | AsyncApprover | None = None) -> list[StepOutcome]:
        """Run every step; an ``ask`` goes to ``approver`` (none: not executed)."""
        gate = Gate(session, approver)
        outcomes: list[StepOutcome] = []
        for step in self.steps:
            fn = tools.get(step.tool)

            def run_step(fn: Tool | None = fn, step: Step = step) -> Any:
                if fn is None:
                    raise LookupError(f"no implementation for tool {step.tool!r}")
                return fn(**step.args)

            outcome = gate.run(ToolCall(step.tool, dict(step.args)), run_step)
            # A failing tool is data, not a crash: the agent reads the error text.
            output = error_text(outcome.error) if outcome.error is not None else outcome.value
            outcomes.append(StepOutcome(step, outcome.decision, outcome.ran, output, outcome.admission.approved))
        return outcomes
