"""Per-call latency added by the Tether MCP proxy and gateway.

The same real MCP client (the ``mcp`` SDK) calls the same stdio echo server
directly, through ``tether mcp`` (policy check, result labelling and
indexing, two SQLite commits per call, pins on) and through ``tether mcp``
as a gateway (``--server echo=...``: namespaced names, the supervisor, the
lint of definitions), in the same run, alternating blocks so drift hits all
three. Reports p50 and p99 of each, what each adds and its ratio to direct,
and the time to start and initialise a session (spawn + ``initialize``).

    python benchmarks/mcp_overhead.py [--quick] [--calls N] [--durability normal|full] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

POLICY = """
tether: 1
name: bench-echo
tools:
  echo:
    effect: read
    args:
      text: {type: string, required: true, maxLength: 1000}
  echo__echo:
    effect: read
    args:
      text: {type: string, required: true, maxLength: 1000}
"""


def serve_echo() -> None:
    """The upstream server: one ``echo`` tool, as cheap as an MCP server gets."""
    import mcp_types as types
    from mcp.server.lowlevel.server import Server
    from mcp.server.stdio import stdio_server

    tool = types.Tool(name="echo", description="Echo text.", input_schema={"type": "object", "properties": {"text": {"type": "string"}}})

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=str((params.arguments or {}).get("text", "")))])

    server = Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)

    async def run() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(run)


async def _measure(
    command: list[str], env: dict[str, str], calls: int, warmup: int, connect_ms: list[float], tool: str = "echo"
) -> list[float]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    with open(os.devnull, "w") as devnull:
        started = time.perf_counter()
        async with stdio_client(params, errlog=devnull) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            connect_ms.append((time.perf_counter() - started) * 1000)
            await client.list_tools()
            out: list[float] = []
            for i in range(warmup + calls):
                start = time.perf_counter()
                result = await client.call_tool(tool, {"text": f"hello {i}"})
                took = time.perf_counter() - start
                if result.is_error:
                    raise RuntimeError(f"call failed: {result.content}")
                if i >= warmup:
                    out.append(took * 1000)
            return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run the comparison and print a table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer calls (finishes in well under 30 s)")
    ap.add_argument("--calls", type=int, default=None, help="calls per block and path")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--durability", choices=["normal", "full"], default="normal", help="the proxy's store durability")
    ap.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.serve_echo:
        serve_echo()
        return
    blocks = 2 if opts.quick else 4
    calls = opts.calls or (400 if opts.quick else 1500)
    src = Path(__file__).resolve().parents[1] / "src"
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)}
    echo = [sys.executable, str(Path(__file__).resolve()), "--serve-echo"]
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        proxied = [sys.executable, "-c", "from tether.cli import main; main()", "mcp", "--policy", str(policy)]
        proxied += ["--db", str(Path(tmp) / "bench.db"), "--durability", opts.durability]
        gateway = [*proxied, "--server", "echo=" + " ".join(echo)]
        proxied = [*proxied, "--", *echo]
        direct_ms: list[float] = []
        proxy_ms: list[float] = []
        gateway_ms: list[float] = []
        direct_connect: list[float] = []
        proxy_connect: list[float] = []
        gateway_connect: list[float] = []
        started = time.perf_counter()
        for _ in range(blocks):
            direct_ms += anyio.run(_measure, echo, env, calls // blocks, 30, direct_connect)
            proxy_ms += anyio.run(_measure, proxied, env, calls // blocks, 30, proxy_connect)
            gateway_ms += anyio.run(_measure, gateway, env, calls // blocks, 30, gateway_connect, "echo__echo")
        wall = time.perf_counter() - started
    report = {
        "calls_per_path": len(direct_ms),
        "direct_p50_ms": round(_pct(direct_ms, 0.5), 4),
        "direct_p99_ms": round(_pct(direct_ms, 0.99), 4),
        "proxy_p50_ms": round(_pct(proxy_ms, 0.5), 4),
        "proxy_p99_ms": round(_pct(proxy_ms, 0.99), 4),
        "added_p50_ms": round(_pct(proxy_ms, 0.5) - _pct(direct_ms, 0.5), 4),
        "added_p99_ms": round(_pct(proxy_ms, 0.99) - _pct(direct_ms, 0.99), 4),
        "direct_mean_ms": round(statistics.fmean(direct_ms), 4),
        "proxy_mean_ms": round(statistics.fmean(proxy_ms), 4),
        "gateway_p50_ms": round(_pct(gateway_ms, 0.5), 4),
        "gateway_p99_ms": round(_pct(gateway_ms, 0.99), 4),
        "gateway_added_p50_ms": round(_pct(gateway_ms, 0.5) - _pct(direct_ms, 0.5), 4),
        "gateway_added_p99_ms": round(_pct(gateway_ms, 0.99) - _pct(direct_ms, 0.99), 4),
        "proxy_ratio_p50": round(_pct(proxy_ms, 0.5) / _pct(direct_ms, 0.5), 2),
        "gateway_ratio_p50": round(_pct(gateway_ms, 0.5) / _pct(direct_ms, 0.5), 2),
        "direct_connect_ms": round(statistics.median(direct_connect), 1),
        "proxy_connect_ms": round(statistics.median(proxy_connect), 1),
        "gateway_connect_ms": round(statistics.median(gateway_connect), 1),
        "load_1min": round(os.getloadavg()[0], 2),
        "durability": opts.durability,
        "wall_s": round(wall, 2),
        "python": sys.version.split()[0],
    }
    if opts.json:
        print(json.dumps(report))
        return
    print(f"{'path':<8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}   ({report['calls_per_path']} calls each)")
    print(f"{'direct':<8} {report['direct_p50_ms']:>9.3f} {report['direct_p99_ms']:>9.3f} {report['direct_mean_ms']:>9.3f}")
    print(f"{'proxy':<8} {report['proxy_p50_ms']:>9.3f} {report['proxy_p99_ms']:>9.3f} {report['proxy_mean_ms']:>9.3f}")
    print(f"{'gateway':<8} {report['gateway_p50_ms']:>9.3f} {report['gateway_p99_ms']:>9.3f}")
    print(f"proxy adds: p50 {report['added_p50_ms']:.3f} ms, p99 {report['added_p99_ms']:.3f} ms (x{report['proxy_ratio_p50']} at p50)")
    print(f"gateway adds: p50 {report['gateway_added_p50_ms']:.3f} ms, p99 {report['gateway_added_p99_ms']:.3f} ms "
          f"(x{report['gateway_ratio_p50']} at p50)")  # fmt: skip
    print(f"spawn + initialize (median): direct {report['direct_connect_ms']} ms, proxy {report['proxy_connect_ms']} ms, "
          f"gateway {report['gateway_connect_ms']} ms (wall {report['wall_s']} s, load {report['load_1min']})")  # fmt: skip


if __name__ == "__main__":
    main()
