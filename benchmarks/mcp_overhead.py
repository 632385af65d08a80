"""Per-call latency added by the Tether MCP proxy and gateway.

The same real MCP client (the ``mcp`` SDK) calls the same stdio echo server
directly, through ``tether mcp`` (policy check, result labelling and
indexing, two SQLite commits per call, pins on) and through ``tether mcp``
as a gateway (``--server echo=...``: namespaced names, the supervisor, the
lint of definitions), in the same run, alternating blocks so drift hits all
three. Reports p50 and p99 of each, what each adds and its ratio to direct,
the time to start and initialise a session (spawn + ``initialize``), and the
CPU time each process spends per call (read from ``/proc`` around the timed
calls: the proxy's own, the server's, the client's). Wall times on a shared
machine measure its load as much as the proxy; CPU per call does not, so the
report says both, with the load average.

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


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) the process ``pid`` itself has used, from ``/proc`` (None where unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


class CpuMeter:
    """CPU used around the timed calls by the spawned process, its own children (the server behind a proxy), and us."""

    def __init__(self) -> None:
        self.spawned: list[float] = []
        """CPU seconds of the process the client spawned (the server directly, or the proxy), per block."""
        self.behind: list[float] = []
        """CPU seconds of that process's children (the server behind a proxy), per block."""
        self.client: list[float] = []
        """CPU seconds of this process (the SDK client), per block."""
        self.calls = 0
        self._start: tuple[dict[int, float], dict[int, float], float] | None = None

    def _read(self) -> tuple[dict[int, float], dict[int, float]]:
        top = {p: c for p in _children(os.getpid()) if (c := _cpu_s(p)) is not None}
        below = {q: c for p in top for q in _children(p) if (c := _cpu_s(q)) is not None}
        return top, below

    def start(self) -> None:
        """Before the timed calls."""
        top, below = self._read()
        self._start = (top, below, time.process_time())

    def stop(self, calls: int) -> None:
        """After ``calls`` timed calls."""
        assert self._start is not None
        top0, below0, own0 = self._start
        top, below = self._read()
        self.spawned.append(sum(c - top0.get(p, c) for p, c in top.items()))
        self.behind.append(sum(c - below0.get(p, c) for p, c in below.items()))
        self.client.append(time.process_time() - own0)
        self.calls += calls

    def per_call_us(self) -> dict[str, float]:
        """Microseconds of CPU per call: spawned process, the processes behind it, the client."""
        n = max(1, self.calls)
        return {
            name: round(sum(v) / n * 1e6, 1) for name, v in (("spawned", self.spawned), ("behind", self.behind), ("client", self.client))
        }


async def _measure(
    command: list[str],
    env: dict[str, str],
    calls: int,
    warmup: int,
    connect_ms: list[float],
    tool: str = "echo",
    cpu: CpuMeter | None = None,
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
                if i == warmup and cpu is not None:
                    cpu.start()
                start = time.perf_counter()
                result = await client.call_tool(tool, {"text": f"hello {i}"})
                took = time.perf_counter() - start
                if result.is_error:
                    raise RuntimeError(f"call failed: {result.content}")
                if i >= warmup:
                    out.append(took * 1000)
            if cpu is not None:
                cpu.stop(calls)
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
        direct_cpu, proxy_cpu, gateway_cpu = CpuMeter(), CpuMeter(), CpuMeter()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        for _ in range(blocks):
            direct_ms += anyio.run(_measure, echo, env, calls // blocks, 30, direct_connect, "echo", direct_cpu)
            proxy_ms += anyio.run(_measure, proxied, env, calls // blocks, 30, proxy_connect, "echo", proxy_cpu)
            gateway_ms += anyio.run(_measure, gateway, env, calls // blocks, 30, gateway_connect, "echo__echo", gateway_cpu)
        wall = time.perf_counter() - started
    direct_us, proxy_us, gateway_us = direct_cpu.per_call_us(), proxy_cpu.per_call_us(), gateway_cpu.per_call_us()
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
        "added_connect_ms": round(statistics.median(proxy_connect) - statistics.median(direct_connect), 1),
        # CPU per call (stable under load): the proxy process's own, the server's (directly and behind it), the client's.
        "proxy_cpu_us_per_call": proxy_us["spawned"],
        # All CPU the proxy adds per call: its own process, plus what the server and the client spend more than directly.
        "added_cpu_us_per_call": round(
            proxy_us["spawned"] + proxy_us["behind"] - direct_us["spawned"] + proxy_us["client"] - direct_us["client"], 1
        ),
        "gateway_cpu_us_per_call": gateway_us["spawned"],
        "server_cpu_us_per_call_direct": direct_us["spawned"],
        "server_cpu_us_per_call_proxied": proxy_us["behind"],
        "client_cpu_us_per_call_direct": direct_us["client"],
        "client_cpu_us_per_call_proxied": proxy_us["client"],
        "load_1min_before": round(load_before, 2),
        "load_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
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
    print(f"CPU per call: added {report['added_cpu_us_per_call']} us in all; proxy {report['proxy_cpu_us_per_call']} us, gateway {report['gateway_cpu_us_per_call']} us, "
          f"server {report['server_cpu_us_per_call_direct']} us direct / {report['server_cpu_us_per_call_proxied']} us behind the proxy, "
          f"client {report['client_cpu_us_per_call_direct']} / {report['client_cpu_us_per_call_proxied']} us")  # fmt: skip
    print(f"spawn + initialize (median): direct {report['direct_connect_ms']} ms, proxy {report['proxy_connect_ms']} ms, "
          f"gateway {report['gateway_connect_ms']} ms (wall {report['wall_s']} s, load {report['load_1min']})")  # fmt: skip


if __name__ == "__main__":
    main()
