"""Definition text vouches only for its own server: a detector that keeps approved text of one server
from grounding values sent to another.

A tool definition (or a server's instructions) a human approved is recorded
as trusted text: the human vouched that it carries no attacker's
instructions, so reading it leaves the session's context trusted and a
value taken from it is grounded. That is right for the server that wrote
it (its own paths, enums, examples) and wrong for every other server: a
description approved once ("send reports to out/exfil.txt") must not ground
a path for another server's ``write_file``.

The session's provenance index does not know servers, so the scope is kept
here, beside it: the proxy records each server's approved text as its own
source event (:meth:`DefinitionScope.note`), and for a call bound for
server B this detector looks at every leaf of the arguments. A leaf whose
trusted grounding comes *only* from other servers' definitions (the
evidence events of its label are all theirs: not the task, not a trusted
tool output, not B's own definitions) is treated as untrusted for B: where
a ``require: trusted`` flow rule covers it, that rule's verdict applies
(deny, or ask). A detector can only tighten, so the deterministic decision
is unchanged everywhere else. A value found nowhere still takes the
session's context label: approving text still vouches that reading it
leaves the session trusted; what changes is that it cannot be copied from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from tether._decision import ToolCall
from tether.flow import walk_leaves
from tether.monitor import Finding, SessionState
from tether.policy import CompiledFlow, CompiledTool, Policy

TargetOf = Callable[[ToolCall], str | None]
"""The name of the server a call (or pseudo-call) goes to; None when no server takes it."""


class DefinitionScope:
    """The detector ``mcp-definition-scope``: approved definitions ground values for their own server only."""

    name = "mcp-definition-scope"

    def __init__(self, policy: Policy, target_of: TargetOf) -> None:
        self._policy = policy
        self._target_of = target_of
        self._owner: dict[str, str] = {}

    def note(self, event_id: str, server: str) -> None:
        """The source event ``event_id`` holds definition text of ``server`` (its gateway name)."""
        if event_id:
            self._owner[event_id] = server

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        """Tighten when a value is grounded only in other servers' definitions and a rule requires trusted data."""
        if not self._owner or not isinstance(call.args, dict):
            return None
        target = self._target_of(call)
        tool = self._policy.tool_for(str(call.tool))
        if target is None or tool is None:
            return None
        worst: Literal["ask", "deny"] | None = None
        where: list[str] = []
        for arg, value in call.args.items():
            verdicts = _require_trusted(tool, arg)
            if not verdicts:
                continue
            leaves: list[tuple[str, Any]] = []
            walk_leaves(value, arg, leaves)
            for path, leaf in leaves:
                if isinstance(leaf, str) and self._borrowed(leaf, target, state):
                    where.append(path)
                    worst = "deny" if "deny" in verdicts or worst == "deny" else "ask"
        if worst is None:
            return None
        return Finding(
            worst,
            f"value of {', '.join(repr(w) for w in where[:4])} is grounded only in tool definitions of another MCP server; "
            "approved definitions vouch for values sent to their own server's tools only",
        )

    def _borrowed(self, value: str, target: str, state: SessionState) -> bool:
        origin = state.flow.origin(value)
        if not origin.found or origin.label.untrusted or not origin.sources:
            return False
        owners = [self._owner.get(s) for s in origin.sources]
        return all(o is not None and o != target for o in owners)


def _require_trusted(tool: CompiledTool, arg: str) -> set[str]:
    """The verdicts of the ``require: trusted`` rules that cover argument ``arg`` (own rules and defaults)."""
    own: tuple[CompiledFlow, ...] = tuple(f for name, f in tool.flows if name == arg)
    defaults = tool.defaults_for(tool.effect)
    rules = defaults.effective(own) if defaults is not None else own
    return {f.on_violation for f in rules if f.require_trusted}
