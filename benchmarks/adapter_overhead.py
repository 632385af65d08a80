"""The framework adapters' overhead per tool call, against the bare framework, in the same run.

Each framework runs the same script twice, with its own offline test model (LangChain's
``GenericFakeChatModel`` for LangGraph, PydanticAI's ``FunctionModel``, the Agents SDK's
``ScriptedModel``): ``--calls`` calls of a tool that does nothing, ``--per-turn`` parallel calls per
model turn. Once with the bare tools (LangGraph's prebuilt ``ToolNode``, a plain ``FunctionToolset``,
plain function tools), once with Tether's adapter (``GuardedToolNode``, ``TetherToolset``,
``AgentsGuard``) and a session logged in SQLite on disk. The Agents SDK is measured twice: asks as the
SDK's interruptions (a ``needs_approval`` callable on every tool, which puts each call through the
SDK's own approval machinery), and with an inline approver (``needs_approval=False``). The difference of the two wall times,
divided by the number of calls, is what the adapter adds per call (check and its append, recording
and labelling the output, reading it back); the ratio compares whole runs.

Usage: python benchmarks/adapter_overhead.py [--calls N] [--per-turn K] [--repeat R] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.prebuilt import ToolNode

from tether import Guard, Policy, SQLiteStore, StaticApprover
from tether.adapters.langgraph import GuardedToolNode
from tether.examples.langgraph_agent import build_graph
from tether.session import Session

POLICY = """
tether: 1
name: adapter-overhead
tools:
  lookup:
    effect: read
    output: untrusted
    args:
      key: {type: string, maxLength: 64}
"""


def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def _session(workdir: Path) -> Session:
    return Guard(Policy.from_yaml(POLICY), SQLiteStore(str(workdir / "bench.db"))).start_session("look the keys up")


def _keys(turns: int, per_turn: int) -> list[list[str]]:
    return [[f"k{t}-{i}" for i in range(per_turn)] for t in range(turns)]


# ---------------------------------------------------------------- LangGraph


def run_langgraph(keys: list[list[str]], session: Session | None) -> float:
    turns = [
        AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"key": k}, "id": k, "type": "tool_call"} for k in batch])
        for batch in keys
    ]
    model = GenericFakeChatModel(messages=iter([*turns, AIMessage(content="done")]))
    tools = [tool(lookup)]
    node: Any = ToolNode(tools) if session is None else GuardedToolNode(tools, session)
    app = build_graph(node, model, checkpoint=False)
    start = time.perf_counter()
    out = app.invoke({"messages": [HumanMessage("look the keys up")]}, {"recursion_limit": 10 * len(keys) + 10})
    elapsed = time.perf_counter() - start
    assert out["messages"][-1].content == "done"
    return elapsed


# ---------------------------------------------------------------- PydanticAI


def run_pydantic_ai(keys: list[list[str]], session: Session | None) -> float:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import FunctionToolset
    from pydantic_ai.usage import UsageLimits

    from tether.adapters.pydantic_ai import TetherToolset

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        if turn >= len(keys):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("lookup", {"key": k}, tool_call_id=k) for k in keys[turn]])

    bare: FunctionToolset[Any] = FunctionToolset([lookup])
    toolset: Any = bare if session is None else TetherToolset(bare, session=session)
    agent: Agent[None, str] = Agent(FunctionModel(respond), toolsets=[toolset])
    start = time.perf_counter()
    out = asyncio.run(agent.run("look the keys up", usage_limits=UsageLimits(request_limit=None)))
    elapsed = time.perf_counter() - start
    assert out.output == "done"
    return elapsed


# ---------------------------------------------------------------- OpenAI Agents SDK


def run_openai_agents(keys: list[list[str]], session: Session | None, *, inline: bool = False) -> float:
    """``inline``: an inline approver, so the SDK's own approval machinery (``needs_approval``) stays off."""
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.testing import ScriptedModel, assistant_message, function_call

    from tether.adapters.openai_agents import AgentsGuard

    set_tracing_disabled(True)
    steps: list[Any] = [[function_call("lookup", {"key": k}, call_id=k) for k in batch] for batch in keys]
    model = ScriptedModel([*steps, [assistant_message("done")]])
    tools: list[Any] = [function_tool(lookup)]
    if session is not None:
        tools = AgentsGuard(session, approver=StaticApprover(False) if inline else None).tools(tools)
    agent = Agent(name="bench", model=model, tools=tools)
    start = time.perf_counter()
    out = asyncio.run(Runner.run(agent, "look the keys up", max_turns=len(keys) + 5))
    elapsed = time.perf_counter() - start
    assert out.final_output == "done"
    return elapsed


FRAMEWORKS: dict[str, Callable[[list[list[str]], Session | None], float]] = {
    "langgraph": run_langgraph,
    "pydantic_ai": run_pydantic_ai,
    "openai_agents": run_openai_agents,
    "openai_agents_inline": lambda keys, session: run_openai_agents(keys, session, inline=True),
}


def measure(name: str, calls: int, per_turn: int, repeat: int) -> dict[str, Any]:
    """Bare and guarded runs alternated ``repeat`` times; medians."""
    keys = _keys(-(-calls // per_turn), per_turn)
    made = sum(len(b) for b in keys)
    run = FRAMEWORKS[name]
    run(keys[:1], None)  # warm imports and caches once
    bare, guarded = [], []
    for _ in range(repeat):
        bare.append(run(keys, None))
        with tempfile.TemporaryDirectory() as tmp:
            session = _session(Path(tmp))
            guarded.append(run(keys, session))
            assert sum(1 for c in session.state.calls.values() if c.result_event is not None) == made
    b, g = statistics.median(bare), statistics.median(guarded)
    return {
        "calls": made,
        "bare_per_call_ms": b / made * 1000,
        "guarded_per_call_ms": g / made * 1000,
        "overhead_per_call_ms": (g - b) / made * 1000,
        "ratio": g / b,
        "bare_runs_s": bare,
        "guarded_runs_s": guarded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="tool calls per run (default 500)")
    parser.add_argument("--per-turn", type=int, default=5, help="parallel tool calls per model turn (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="bare/guarded pairs; medians reported (default 3)")
    parser.add_argument("--only", choices=sorted(FRAMEWORKS), help="one framework")
    parser.add_argument("--quick", action="store_true", help="100 calls, one pair")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    calls, repeat = (100, 1) if args.quick else (args.calls, args.repeat)
    figures: dict[str, Any] = {"calls": calls, "per_turn": args.per_turn, "repeat": repeat, "frameworks": {}}
    for name in [args.only] if args.only else list(FRAMEWORKS):
        result = measure(name, calls, args.per_turn, repeat)
        figures["frameworks"][name] = result
        if not args.json:
            print(
                f"{name:14} bare {result['bare_per_call_ms']:.3f} ms/call, with Tether {result['guarded_per_call_ms']:.3f} ms/call: "
                f"+{result['overhead_per_call_ms']:.3f} ms per call (x{result['ratio']:.2f})"
            )
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
