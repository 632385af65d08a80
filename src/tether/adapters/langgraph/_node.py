"""A LangGraph tool node whose every call goes through a Tether session; asks become ``interrupt()``s.

:class:`GuardedToolNode` replaces LangGraph's prebuilt ``ToolNode``: it reads the tool calls of the
last AI message (and its ``invalid_tool_calls``, which are checked and denied as sent), checks
every call first, and, when any call needs a human and no inline approver is given, pauses the
graph with one ``interrupt()`` listing them all. The graph resumes with
``Command(resume=ANSWER)``: ``True``/``False`` for all of them, or a mapping from a call's
``tool_call_id`` (or Tether call id) to ``True``/``False``; anything but ``True`` refuses. LangGraph
re-runs the node from the start on resume: the calls were checked under ids derived from the AI
message and tool-call ids, so they are not proposed again, and nothing ran before the interrupt.
Needs a checkpointer, as every LangGraph interrupt does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from langgraph.types import interrupt

from tether._decision import Decision, ToolCall
from tether.adapters._tool_calls import Settled, ToolCallGuard, parse_arguments
from tether.approvals import Approver, AsyncApprover
from tether.session import Session

INTERRUPT_KIND = "tether_approval"
"""The ``kind`` of the value a Tether interrupt carries."""


class GuardedToolNode:
    """A graph node running the tools of the last AI message through ``session``.

    ``approver`` answers asks inline (a terminal, the store...); without one they become a
    LangGraph interrupt. Use it where ``ToolNode(tools)`` would go:
    ``graph.add_node("tools", GuardedToolNode(tools, session))``.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        session: Session,
        *,
        approver: Approver | AsyncApprover | None = None,
        messages_key: str = "messages",
        name: str = "tools",
    ) -> None:
        self.tools: dict[str, BaseTool] = {}
        """The tools by name."""
        for item in tools:
            tool = item if isinstance(item, BaseTool) else as_tool(item)
            self.tools[tool.name] = tool
        self.guard = ToolCallGuard(session, approver, by="langgraph-interrupt", prefix="lg:")
        """The path every call takes."""
        self.messages_key = messages_key
        """Where the state keeps its messages."""
        self.name = name
        """The node's name (LangGraph reads it)."""

    def __call__(self, state: Any) -> dict[str, Any]:
        """Check every call of the last AI message (``state``: a mapping with the messages, or the
        messages), interrupt for the asks, run what is admitted."""
        messages = state if isinstance(state, Sequence) else state[self.messages_key]
        message = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if message is None:
            return {self.messages_key: []}
        calls = self._calls(message)
        decisions = [self.guard.check(name, args, fid) for name, args, fid, _ in calls]
        answers = self._human_answers([(c, d) for c, d in zip(calls, decisions, strict=True) if self.guard.pending(d)])
        out: list[ToolMessage] = []
        for (name, args, _fid, tool_call_id), decision in zip(calls, decisions, strict=True):
            if decision.call_id in answers:
                self.guard.approve(decision, answers[decision.call_id], note="answered through a LangGraph interrupt")
            settled = asyncio.run(self._settle(name, args, decision))
            status = "success" if settled.ran and not settled.error else "error"
            out.append(ToolMessage(content=settled.text, tool_call_id=tool_call_id, name=name, status=status))
        return {self.messages_key: out}

    def _calls(self, message: AIMessage) -> list[tuple[str, Any, str, str]]:
        """(tool, arguments as checked, the framework id the session's id derives from, tool_call_id)."""
        prefix = f"{message.id}:" if message.id else ""
        out = [(c["name"], c["args"], f"{prefix}{c['id']}", str(c["id"])) for c in message.tool_calls]
        for bad in message.invalid_tool_calls:
            raw = bad.get("args")
            out.append(
                (
                    str(bad.get("name") or ""),
                    parse_arguments(raw if isinstance(raw, str) else None),
                    f"{prefix}{bad.get('id')}",
                    str(bad.get("id")),
                )
            )
        return out

    def _human_answers(self, waiting: list[tuple[tuple[str, Any, str, str], Decision]]) -> dict[str, bool]:
        """One interrupt for every call still waiting (when no inline approver answers them)."""
        if not waiting or self.guard.approver is not None:
            return {}
        requests = [
            {"call_id": d.call_id, "tool_call_id": tcid, "tool": name, "args": args, "reason": d.explain()}
            for (name, args, _fid, tcid), d in waiting
        ]
        answer = interrupt({"kind": INTERRUPT_KIND, "session_id": self.guard.session.id, "requests": requests})
        out: dict[str, bool] = {}
        for request in requests:
            given = answer.get(request["tool_call_id"], answer.get(request["call_id"])) if isinstance(answer, Mapping) else answer
            out[request["call_id"]] = given is True  # only an explicit True approves
        return out

    async def _settle(self, name: str, args: Any, decision: Decision) -> Settled:
        tool = self.tools.get(name)
        if tool is None:
            return self.guard.not_offered(decision)
        checked = args if isinstance(args, dict) else {}

        async def invoke() -> Any:
            return await tool.ainvoke(checked)

        approved = await self.guard.ask(decision, ToolCall(decision.tool, args, decision.call_id))
        return await self.guard.execute(decision, invoke, approved)
