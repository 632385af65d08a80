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
from tether.session._guard import Session
from tether.session._wrap import Approver, admit

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

    def run(self, session: Session, tools: dict[str, Tool], approver: Approver | None = None) -> list[StepOutcome]:
        """Run every step; an ``ask`` goes to ``approver`` (none: not executed)."""
        outcomes: list[StepOutcome] = []
        for step in self.steps:
            call = ToolCall(step.tool, dict(step.args))
            admission = admit(session, call, approver)
            if not admission.may_run:
                outcomes.append(StepOutcome(step, admission.decision, False, approved=admission.approved))
                continue
            fn = tools.get(step.tool)
            try:
                if fn is None:
                    raise LookupError(f"no implementation for tool {step.tool!r}")
                output = fn(**step.args)
            except Exception as exc:  # a failing tool is data, not a crash
                output = f"{type(exc).__name__}: {exc}"
                session.record_result(call.id, output, error=True)
            else:
                session.record_result(call.id, output)
            outcomes.append(StepOutcome(step, admission.decision, True, output, admission.approved))
        return outcomes
