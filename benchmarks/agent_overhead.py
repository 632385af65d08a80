"""``tether run``'s own overhead per tool call: the loop, the guard and the durable log, without the
model and without the tool.

The agent loop runs against the scripted model server (a real HTTP server on loopback standing
in for a hosted model, which cannot be reached here): each model turn asks for ``--per-turn``
parallel calls of a tool that does nothing, until ``--calls`` calls were made. The time spent
waiting for the model (HTTP round trips included) and inside the tool is measured and taken out;
what is left, divided by the number of calls, is the loop's overhead per call: parsing the turn,
logging the assistant message, ``check`` (decision + append), running through ``Gate``,
``record_result`` (label, index, append), reading the recorded output back, and logging the tool
message. The store is SQLite on disk, as ``tether run`` uses it.

Usage: python benchmarks/agent_overhead.py [--calls N] [--per-turn K] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether import Guard, Policy, SQLiteStore
from tether.agent import Agent, ChatClient, ModelConfig, ModelReply, ScriptedCall, ScriptedModelServer, ToolSpec, Turn

POLICY = """
tether: 1
name: agent-overhead
tools:
  lookup:
    effect: read
    output: untrusted
    args:
      key: {type: string, maxLength: 64}
"""


class TimedClient(ChatClient):
    """The chat client, with the time spent waiting for the model added up."""

    waited = 0.0

    async def complete(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> ModelReply:
        start = time.perf_counter()
        try:
            return await super().complete(messages, tools)
        finally:
            self.waited += time.perf_counter() - start


class NoopTools:
    """One tool that does nothing, with the time spent in it added up."""

    waited = 0.0

    def specs(self) -> Sequence[ToolSpec]:
        return [ToolSpec("lookup", "Look a key up.", {"type": "object", "properties": {"key": {"type": "string"}}})]

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        start = time.perf_counter()
        out = f"value of {args.get('key')}"
        self.waited += time.perf_counter() - start
        return out


def measure(calls: int, per_turn: int, workdir: Path) -> dict[str, float]:
    turns = -(-calls // per_turn)
    script = [Turn(tool_calls=tuple(ScriptedCall("lookup", {"key": f"k{t}-{i}"}) for i in range(per_turn))) for t in range(turns)]
    script.append(Turn(content="done"))
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(str(workdir / "overhead.db"))).start_session("look the keys up")
    tools = NoopTools()
    with ScriptedModelServer(script) as server:
        client = TimedClient(ModelConfig(base_url=server.base_url, model="scripted"))
        agent = Agent(client, tools, max_steps=turns + 1)
        start = time.perf_counter()
        result = asyncio.run(agent.run(session))
        total = time.perf_counter() - start
    made = len(result.calls)
    assert result.stop == "completed" and made == turns * per_turn, (result.stop, result.detail, made)
    own = total - client.waited - tools.waited
    return {
        "calls": made,
        "turns": turns,
        "total_s": total,
        "model_s": client.waited,
        "tool_s": tools.waited,
        "overhead_per_call_ms": own / made * 1000,
        "model_per_turn_ms": client.waited / (turns + 1) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="tool calls in the run (default 1000)")
    parser.add_argument("--per-turn", type=int, default=5, help="parallel tool calls per model turn (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="200 calls, one run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    calls, repeat = (200, 1) if args.quick else (args.calls, args.repeat)
    runs = []
    for i in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(calls, args.per_turn, Path(tmp)))
        if not args.json:
            print(f"run {i + 1}: {runs[-1]['overhead_per_call_ms']:.3f} ms per call ({runs[-1]['calls']} calls)")
    figures = {
        "agent_overhead_per_call_ms": statistics.median(r["overhead_per_call_ms"] for r in runs),
        "model_per_turn_ms": statistics.median(r["model_per_turn_ms"] for r in runs),
        "calls": calls,
        "per_turn": args.per_turn,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"tether run overhead: {figures['agent_overhead_per_call_ms']:.3f} ms per tool call (median of {repeat}; "
            f"loop + guard + durable log, model and tool excluded); scripted model turn: {figures['model_per_turn_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
