"""Core value types: a proposed tool call and the guard's decision on it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["allow", "deny", "ask"]
"""What the guard says about a call."""

ReasonKind = Literal[
    "unknown_tool",
    "malformed",
    "constraint",
    "flow",
    "deny_rule",
    "scope",
    "budget",
    "rate",
    "ask_rule",
    "intent",
    "plan",
    "detector",
    "session",
    "error",
]
"""Which part of the check produced a reason."""

_SEVERITY: dict[Verdict, int] = {"allow": 0, "ask": 1, "deny": 2}


def new_id() -> str:
    """A fresh random identifier (32 hex characters, 128 random bits)."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call proposed by the agent."""

    tool: str
    """The tool's name."""
    args: dict[str, Any] = field(default_factory=dict)
    """Arguments by name, as the agent produced them."""
    id: str = field(default_factory=new_id)
    """Identifier of this call within its session."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One explanation attached to a decision."""

    kind: ReasonKind
    """Which part of the check produced it."""
    rule: str
    """The policy location that fired, e.g. ``tools.send_money.args.recipient.flow``."""
    message: str
    """A sentence a human can read."""
    arg: str | None = None
    """The argument concerned (dotted path for nested values), if any."""
    sources: tuple[str, ...] = ()
    """Event ids the argument's data came from (provenance evidence)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in events."""
        out: dict[str, Any] = {"kind": self.kind, "rule": self.rule, "message": self.message}
        if self.arg is not None:
            out["arg"] = self.arg
        if self.sources:
            out["sources"] = list(self.sources)
        return out

    @staticmethod
    def from_json(data: dict[str, Any]) -> Reason:
        """Parse the form written by :meth:`to_json`."""
        return Reason(
            kind=data["kind"],
            rule=data["rule"],
            message=data["message"],
            arg=data.get("arg"),
            sources=tuple(data.get("sources", ())),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's answer for one call."""

    verdict: Verdict
    """``allow``, ``deny`` or ``ask`` (a human must approve)."""
    call_id: str
    """The call this decides."""
    tool: str
    """The tool named by the call."""
    reasons: tuple[Reason, ...] = ()
    """Why; empty for a plain allow."""
    call_hash: str = ""
    """Hash of tool and arguments: an approval is bound to exactly this call."""
    policy_hash: str = ""
    """The policy the decision was made under."""
    endorsements: tuple[str, ...] = ()
    """Endorsements that spared an ask (without them the call would have been asked about)."""

    @property
    def allowed(self) -> bool:
        """True when the call may run now."""
        return self.verdict == "allow"

    def tighten(self, verdict: Verdict, reason: Reason) -> Decision:
        """This decision made at least as strict as ``verdict`` (never looser)."""
        stricter = verdict if _SEVERITY[verdict] > _SEVERITY[self.verdict] else self.verdict
        spared = self.endorsements if stricter == "allow" else ()
        return Decision(stricter, self.call_id, self.tool, (*self.reasons, reason), self.call_hash, self.policy_hash, spared)

    def explain(self) -> str:
        """A one-paragraph explanation for humans (and for the agent, on deny)."""
        head = f"{self.verdict.upper()} {self.tool}"
        if not self.reasons:
            return head
        parts = []
        for r in self.reasons:
            src = f" (data from events {', '.join(s[:12] for s in r.sources)})" if r.sources else ""
            parts.append(f"{r.message} [rule {r.rule}]{src}")
        return head + ": " + "; ".join(parts)
