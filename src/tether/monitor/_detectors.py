"""Detectors: optional checks (classifiers, LLM monitors, pin checks) that may only tighten a decision.

The decision itself (:func:`~tether.monitor.decide`) is deterministic; a detector runs after it
and can turn an ``allow`` into ``ask`` or ``deny``, or an ``ask`` into ``deny``, never the other
way. A detector that raises denies the call (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from tether._decision import Decision, Reason, ToolCall
from tether.monitor._state import SessionState


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector reports: a stricter verdict and why."""

    verdict: Literal["ask", "deny"]
    """``ask`` or ``deny``: a detector can only tighten."""
    message: str
    """Why, for the human and the log."""


class Detector(Protocol):
    """An optional check (classifier, LLM monitor...). It can only tighten a decision."""

    name: str

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        """Return a finding to tighten the decision, or None."""
        ...


def tighten(decision: Decision, call: ToolCall, state: SessionState, detectors: Sequence[Detector]) -> Decision:
    """``decision`` after every detector has looked at ``call`` (a deny is final and skips them)."""
    if decision.verdict == "deny":
        return decision
    for detector in detectors:
        try:
            finding = detector.inspect(call, state)
        except Exception as exc:
            return decision.tighten("deny", Reason("detector", getattr(detector, "name", "detector"), f"detector failed: {exc!r}"))
        if finding is not None and finding.verdict in ("ask", "deny"):
            decision = decision.tighten(finding.verdict, Reason("detector", detector.name, finding.message))
    return decision
