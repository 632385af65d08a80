"""PydanticAI under Tether: a wrapper toolset that puts every call through a session.

:class:`TetherToolset` wraps any PydanticAI toolset (``FunctionToolset``, an MCP server toolset...)
the way PydanticAI's own ``ApprovalRequiredToolset`` does. Each call is checked (and logged) under
an id derived from PydanticAI's ``tool_call_id``; a denial is returned to the model as the tool's
result, with the policy's reason; an ask is answered by the inline approver when one is given, else
it becomes PydanticAI's deferred approval (``ApprovalRequired``: the run ends with
``DeferredToolRequests``, and a later run with ``DeferredToolResults(approvals={id: True})`` gives the
human's answer, which is logged before the tool runs). Arguments PydanticAI cannot validate and
names it does not know never reach a toolset: PydanticAI asks the model to retry, and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import ApprovalRequired
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from tether._decision import ToolCall, new_id
from tether.adapters._tool_calls import ToolCallGuard
from tether.approvals import Approver, AsyncApprover
from tether.session import Session


@dataclass
class TetherToolset(WrapperToolset[Any]):
    """``wrapped``'s tools, every call checked, asked, run and recorded in ``session``.

    ``approver`` answers asks inline; without one an ask is deferred to PydanticAI's approval
    flow (give the agent ``output_type=[str, DeferredToolRequests]``)."""

    session: Session = field(kw_only=True)
    """The Tether session every call is checked and logged in."""
    approver: Approver | AsyncApprover | None = field(default=None, kw_only=True)
    """Answers asks inline (None: PydanticAI's deferred approvals)."""
    guard: ToolCallGuard = field(init=False, repr=False)
    """The path every call takes."""

    def __post_init__(self) -> None:
        self.guard = ToolCallGuard(self.session, self.approver, by="pydantic-ai-approval", prefix="pai:")

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]) -> Any:
        """Check the call; ask (inline, or defer to PydanticAI); run it once if admitted; record its output."""
        decision = self.guard.check(name, tool_args, ctx.tool_call_id or new_id())
        approved: bool | None = None
        if decision.verdict == "ask":
            if ctx.tool_call_approved:
                approved = self.guard.approve(decision, True, note="approved through PydanticAI's deferred tool results")
            elif self.guard.approver is not None:
                approved = await self.guard.ask(decision, ToolCall(name, tool_args, decision.call_id))
            elif self.guard.pending(decision):
                raise ApprovalRequired(metadata={"tether_call_id": decision.call_id, "reason": decision.explain()})

        async def invoke() -> Any:
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        settled = await self.guard.execute(decision, invoke, approved)
        return settled.text


def guarded(toolset: AbstractToolset[Any], session: Session, *, approver: Approver | AsyncApprover | None = None) -> TetherToolset:
    """``toolset`` wrapped in a :class:`TetherToolset`."""
    return TetherToolset(toolset, session=session, approver=approver)
