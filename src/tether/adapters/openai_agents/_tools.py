"""The OpenAI Agents SDK under Tether: function tools whose every call goes through a session.

:meth:`AgentsGuard.tool` returns a copy of an SDK ``FunctionTool`` (the original is left as it is)
with two hooks replaced:

- ``needs_approval``: the call is checked (and logged) when the SDK asks whether it needs approval;
  an ``ask`` with no inline approver is the SDK's human in the loop: the run stops with
  ``result.interruptions``, and ``state.approve(item)`` / ``state.reject(item)`` answer it;
- ``on_invoke_tool``: runs the original only for an admitted call (allowed, or approved: by the
  inline approver, or by the SDK's ``RunState.approve``, which is logged as the human's answer and
  re-decided first), once, and records its output with the policy's label before the SDK hands it to
  the model. A denial is returned as the tool's result, with the policy's reason (the SDK's idiom
  for an error the model should see). Malformed arguments are checked as sent, and denied (without an
inline approver the SDK itself first holds a call whose arguments it cannot parse for a human; approved,
it is still denied by the check).

MCP servers of the SDK are guarded by running them behind ``tether mcp`` (the proxy): give the
SDK's ``MCPServerStdio`` the command ``tether mcp --policy FILE -- <server command>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from agents import FunctionTool, RunContextWrapper, Tool
from agents.tool_context import ToolContext

from tether._decision import ToolCall
from tether.adapters._tool_calls import ToolCallGuard, parse_arguments
from tether.approvals import Approver, AsyncApprover
from tether.session import Session


class AgentsGuard:
    """Guards the SDK function tools of one session.

    ``approver`` answers asks inline; without one an ask interrupts the run (``needs_approval``)."""

    def __init__(self, session: Session, *, approver: Approver | AsyncApprover | None = None) -> None:
        self.guard = ToolCallGuard(session, approver, by="openai-agents-approval", prefix="oa:")
        """The path every call takes."""

    def tools(self, tools: Iterable[FunctionTool]) -> list[Tool]:
        """:meth:`tool` of each (typed as the SDK's ``Agent(tools=...)`` takes them)."""
        return [self.tool(t) for t in tools]

    def tool(self, tool: FunctionTool) -> FunctionTool:
        """A guarded copy of ``tool``."""
        name = tool.name
        original = tool.on_invoke_tool
        guard = self.guard

        async def needs_approval(ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
            decision = guard.check(name, params, call_id)
            return guard.approver is None and guard.pending(decision)

        async def on_invoke_tool(ctx: ToolContext[Any], arguments: str) -> Any:
            args = parse_arguments(arguments)
            decision = guard.check(name, args, ctx.tool_call_id)
            approved: bool | None = None
            if decision.verdict == "ask":
                if guard.approver is not None:
                    approved = await guard.ask(decision, ToolCall(name, args, decision.call_id))
                elif guard.pending(decision) and ctx.is_tool_approved(name, ctx.tool_call_id) is True:
                    approved = guard.approve(decision, True, note="approved through the Agents SDK's interruptions")

            async def invoke() -> Any:
                return await original(ctx, arguments)

            return (await guard.execute(decision, invoke, approved)).text

        # With an inline approver the SDK need not pause at all (and arguments it cannot parse, which it
        # would hold for a human, go straight to the check, which denies them).
        approval: Any = needs_approval if guard.approver is None else False
        return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool, needs_approval=approval)
