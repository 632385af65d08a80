"""Try a policy on one call without an agent: a throw-away session in memory, a short history
of tool outputs and sources, then the call, decided exactly as the guard decides it.

``tether policy eval`` and ``tether policy test`` are built on :func:`trial`. The history is
replayed through a real :class:`~tether.session.Session` (each earlier call is checked,
approved by a human stand-in when the policy asks, and its output recorded), so outputs get
the labels the policy gives them and budgets, rates and the context label are those of a real
session that did the same things.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tether._decision import Decision, ToolCall
from tether.errors import ConfigError
from tether.flow import TRUSTED, UNTRUSTED, Label, walk_leaves
from tether.policy import Policy
from tether.session._guard import Guard
from tether.session._session import Session
from tether.store import SQLiteStore


class TrialError(ConfigError):
    """A trial's history cannot be replayed as written (an earlier call the policy denies, a malformed step)."""


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """One thing the agent saw before the call: a tool's output, or a source outside tool calls."""

    tool: str | None = None
    """The tool whose output this is (None: a source such as a user's message)."""
    args: Mapping[str, Any] = field(default_factory=dict)
    """The earlier call's arguments (they must pass the policy's checks)."""
    output: str = ""
    """What the tool returned, or the source's text."""
    label: Literal["trusted", "untrusted"] | None = None
    """A source's label (default trusted, like a user's message); not used for tool outputs,
    which get the label the policy gives them."""
    error: bool = False
    """The tool failed and ``output`` is its error text."""


@dataclass(frozen=True, slots=True)
class ArgumentLabel:
    """The label one scalar of the call's arguments got, and why."""

    path: str
    """Where in the arguments (``to[0]``, ``opts.tag``)."""
    value: Any
    """The scalar."""
    integrity: str
    """``trusted`` or ``untrusted``."""
    tags: tuple[str, ...]
    """Confidentiality tags (``secret``, ``pii``)."""
    found: bool
    """Some output or source the session read contains the value."""

    def to_json(self) -> dict[str, Any]:
        """The form ``tether policy eval --json`` prints."""
        return {"path": self.path, "value": self.value, "integrity": self.integrity, "tags": list(self.tags), "found": self.found}


@dataclass(frozen=True, slots=True)
class Trial:
    """The decision on a tried call, and the labels its arguments got."""

    decision: Decision
    """What the guard decided (verdict and every reason)."""
    labels: tuple[ArgumentLabel, ...]
    """Each scalar argument's label, as the decision saw it."""

    def to_json(self) -> dict[str, Any]:
        """The form ``tether policy eval --json`` prints."""
        return {
            "tool": self.decision.tool,
            "verdict": self.decision.verdict,
            "reasons": [r.to_json() for r in self.decision.reasons],
            "labels": [lab.to_json() for lab in self.labels],
            "policy": self.decision.policy_hash,
        }


def trial(
    policy: Policy,
    call: ToolCall,
    history: Sequence[HistoryStep] = (),
    *,
    task: str = "policy trial",
    plan: Sequence[dict[str, Any]] | None = None,
) -> Trial:
    """Decide ``call`` under ``policy`` after ``history``, as the guard would in a live session
    (``plan``: writes declared as the session's plan first; one that asks is approved, as a
    human would for the history to have happened).

    Raises :class:`TrialError` when a history step cannot happen under the policy (an earlier
    call it denies): the case describes a session that cannot exist.
    """
    guard = Guard(policy, SQLiteStore(":memory:"), snapshot_every=None)
    try:
        session = guard.start_session(task)
        if plan is not None:
            declared = session.declare_plan([dict(w) for w in plan])
            if declared.verdict == "ask":
                session.answer(declared.call_id, True, by="policy trial", note="the case's plan")
            elif declared.verdict == "deny":
                why = "; ".join(r.message for r in declared.reasons)
                raise TrialError(f"the policy denies the case's plan ({why})")
        for n, step in enumerate(history, 1):
            _replay_step(session, step, n)
        labels = _labels(session, call.args)
        return Trial(session.check(call), labels)
    finally:
        guard.store.close()


def _replay_step(session: Session, step: HistoryStep, n: int) -> None:
    if step.tool is None:
        session.add_source(step.output, label=UNTRUSTED if step.label == "untrusted" else TRUSTED, origin=f"history step {n}")
        return
    decision = session.check(ToolCall(step.tool, dict(step.args)))
    runs = decision.verdict == "allow"
    if decision.verdict == "ask":
        # A human said yes: the history describes what happened, approvals included.
        runs = session.answer(decision.call_id, True, by="policy trial", note=f"history step {n}")
    if not runs:
        why = "; ".join(r.message for r in decision.reasons) or decision.verdict
        raise TrialError(f"history step {n}: the policy does not let {step.tool!r} run with {dict(step.args)!r} ({why})")
    session.record_result(decision.call_id, step.output, error=step.error)


def _labels(session: Session, args: Mapping[str, Any]) -> tuple[ArgumentLabel, ...]:
    leaves: list[tuple[str, Any]] = []
    walk_leaves(dict(args), "", leaves)
    out = []
    for path, value in leaves:
        if path.startswith("{"):
            continue  # a top-level argument's name is the tool's, not data
        origin = session.state.flow.origin(value)
        lab: Label = origin.label
        out.append(ArgumentLabel(path.lstrip("."), value, lab.integrity, tuple(sorted(lab.tags)), origin.found))
    return tuple(out)
