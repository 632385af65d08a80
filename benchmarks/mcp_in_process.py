"""What the MCP proxy's own code costs per ``tools/call``, in process (no pipes, no second process).

The proxy (peer, dispatch table, catalog, guard) runs between two in-memory
links with a server that answers at once; the same calls also go straight
through the session's guard (``Session.check`` and ``record_result`` on the
same kind of store), in alternating blocks so drift hits both. The difference
is the proxy's plumbing: parsing, dispatch, correlation, result text.

    python benchmarks/mcp_in_process.py [--calls N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tether import Guard, SQLiteStore
from tether.adapters.mcp import ProxyConfig
from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._pins import PinFilter
from tether.adapters.mcp._proxy import Proxy
from tether.policy import Policy

POLICY = Policy.from_yaml(
    """
tether: 1
name: bench-echo
tools:
  echo:
    effect: read
    args:
      text: {type: string, required: true, maxLength: 1000}
"""
)
WARMUP = 200


class _Link:
    """One end of an in-memory link (what the proxy sends lands in ``outbox``)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def recv(self) -> Any:
        return await self.inbox.get()

    async def send(self, obj: dict[str, Any], *, related: Any = None) -> None:
        await self.outbox.put(obj)

    async def close(self) -> None:
        return None


async def _server(link: _Link) -> None:
    while True:
        msg = await link.outbox.get()
        rid, method = msg.get("id"), msg.get("method")
        if rid is None or method is None:
            continue
        if method == "initialize":
            result: Any = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}
        else:
            result = {"content": [{"type": "text", "text": str(msg["params"]["arguments"]["text"])}]}
        await link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())


async def _through_proxy(db: Path, calls: int) -> list[float]:
    client, upstream = _Link(), _Link()
    session = Guard(POLICY, SQLiteStore(db)).start_session("Echo what I say.")
    proxy = Proxy(
        client, [ServerConn("", "echo", upstream, PinFilter(None))], session, POLICY, config=ProxyConfig(), db_path=str(db), gateway=False
    )
    tasks = [asyncio.create_task(proxy.run()), asyncio.create_task(_server(upstream))]
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}
    await client.inbox.put(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": init}).encode())
    await client.outbox.get()
    await client.inbox.put(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    out: list[float] = []
    for i in range(WARMUP + calls):
        request = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": f"hello {i}"}}}
        start = time.perf_counter()
        await client.inbox.put(json.dumps(request).encode())
        while (await client.outbox.get()).get("id") != i:
            pass
        if i >= WARMUP:
            out.append((time.perf_counter() - start) * 1e6)
    await client.inbox.put(None)
    await tasks[0]
    tasks[1].cancel()
    return out


def _through_guard(db: Path, calls: int) -> list[float]:
    session = Guard(POLICY, SQLiteStore(db)).start_session("Echo what I say.")
    out: list[float] = []
    for i in range(WARMUP + calls):
        start = time.perf_counter()
        decision = session.check("echo", {"text": f"hello {i}"})
        session.record_result(decision.call_id, f"hello {i}")
        if i >= WARMUP:
            out.append((time.perf_counter() - start) * 1e6)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run both paths in alternating blocks; print a table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=3000, help="calls per path (over 3 blocks)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    opts = ap.parse_args()
    proxy_us: list[float] = []
    guard_us: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for block in range(3):
            guard_us += _through_guard(Path(tmp) / f"guard-{block}.db", opts.calls // 3)
            proxy_us += asyncio.run(_through_proxy(Path(tmp) / f"proxy-{block}.db", opts.calls // 3))
    report = {
        "calls_per_path": len(proxy_us),
        "proxy_p50_us": round(_pct(proxy_us, 0.5), 1),
        "proxy_p99_us": round(_pct(proxy_us, 0.99), 1),
        "guard_p50_us": round(_pct(guard_us, 0.5), 1),
        "guard_p99_us": round(_pct(guard_us, 0.99), 1),
        "plumbing_p50_us": round(_pct(proxy_us, 0.5) - _pct(guard_us, 0.5), 1),
        "proxy_mean_us": round(statistics.fmean(proxy_us), 1),
        "guard_mean_us": round(statistics.fmean(guard_us), 1),
        "python": sys.version.split()[0],
    }
    if opts.json:
        print(json.dumps(report))
        return
    print(f"{'path':<28} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}   ({report['calls_per_path']} calls each)")
    print(f"{'proxy (in process)':<28} {report['proxy_p50_us']:>9.1f} {report['proxy_p99_us']:>9.1f} {report['proxy_mean_us']:>9.1f}")
    print(f"{'guard (check + record)':<28} {report['guard_p50_us']:>9.1f} {report['guard_p99_us']:>9.1f} {report['guard_mean_us']:>9.1f}")
    print(f"the proxy's own plumbing at p50: {report['plumbing_p50_us']:.1f} us")


if __name__ == "__main__":
    main()
