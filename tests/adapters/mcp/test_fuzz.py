"""Hypothesis fuzz of the proxy's input handling: whatever a client (or a server) writes, every request
is answered, notifications and responses are answered with nothing, and the proxy keeps serving.

The oracle is independent of the proxy's own parser: Python's ``json`` module
decides what a well-formed request is, and a sentinel ``ping`` after each
fuzzed line proves the proxy is still alive and reading.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_helpers import HERE, POLICIES, MemoryLink, RawClient

from tether import Guard, SQLiteStore
from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._config import ProxyConfig
from tether.adapters.mcp._pins import PinFilter
from tether.adapters.mcp._proxy import Proxy
from tether.policy import Policy

RAW = HERE / "servers" / "raw_server.py"
POLICY = Policy.from_file(POLICIES / "raw.yaml")
METHODS = [
    "tools/call",
    "tools/list",
    "ping",
    "initialize",
    "resources/read",
    "prompts/get",
    "notifications/cancelled",
    "tasks/result",
    "x/y",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.one_of(
    st.integers(-5, 5), st.text(max_size=6), st.none(), st.booleans(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
        "id": ids,
        "method": st.sampled_from(METHODS) | st.text(max_size=10) | st.integers(),
        "params": st.dictionaries(st.sampled_from(["name", "arguments", "uri", "requestId", "_meta", "taskId"]), json_values, max_size=3)
        | json_values,
        "result": json_values,
        "error": json_values,
    },
)
lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
    json_values.map(lambda v: json.dumps(v).encode()),
    messages.map(lambda m: json.dumps(m).encode()),
    messages.map(lambda m: json.dumps(m).encode()[: max(1, len(json.dumps(m)) // 2)]),
)


def expects_answer(line: bytes) -> Any:
    """The id a well-formed request carries, or None when no answer is owed. Strict JSON (RFC 8259):
    Python's json module also reads NaN and Infinity, which are not JSON, so a line holding them is
    a parse error and its answer carries a null id."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        data = json.loads(line, parse_constant=refuse)
    except ValueError:
        return None
    if not isinstance(data, dict) or "method" not in data or not isinstance(data.get("method"), str) or not data["method"]:
        return None
    rid = data.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return None
    return rid


async def fake_server(link: MemoryLink, reply: list[bytes]) -> None:
    """Answers like raw_server.py; a tools/call of ``fuzz`` is answered with the next fuzzed line instead."""
    while True:
        msg = await link.outbox.get()
        rid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if rid is None or method is None:
            continue
        if method == "initialize":
            result: Any = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}, {"name": "fuzz", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call" and params.get("name") == "fuzz" and reply:
            await link.inbox.put(reply.pop(0))
            continue
        else:
            result = {"content": [{"type": "text", "text": "ok"}]}
        await link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())


class Harness:
    """A proxy between two memory links, with a fake server, in one event loop."""

    def __init__(self, reply: list[bytes]) -> None:
        self.client = MemoryLink()
        self.server = MemoryLink()
        policy = Policy.from_yaml((POLICIES / "raw.yaml").read_text().replace("  big:", "  fuzz: {effect: read}\n  big:"))
        session = Guard(policy, SQLiteStore(":memory:")).start_session("fuzz")
        config = ProxyConfig(call_timeout_s=0.5)
        conn = ServerConn("", "fake", self.server, PinFilter(None))
        self.proxy = Proxy(self.client, [conn], session, policy, config=config, db_path=":memory:", gateway=False)
        self.reply = reply
        self.sentinel = 0

    async def until(self, want: set[Any], timeout: float = 5.0) -> list[dict[str, Any]]:
        """Read the proxy's output until answers with every id in ``want`` arrived (fails on a hang)."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while want:
                msg = await self.client.outbox.get()
                assert msg.get("jsonrpc") == "2.0", msg
                seen.append(msg)
                if "method" not in msg:
                    assert ("result" in msg) != ("error" in msg), msg
                    want.discard(json.dumps(msg.get("id")))
        return seen

    async def feed(self, line: bytes) -> None:
        self.sentinel += 1
        sentinel = f"sentinel-{self.sentinel}"
        want = {json.dumps(sentinel)}
        owed = expects_answer(line)
        if owed is not None:
            want.add(json.dumps(owed))
        await self.client.inbox.put(line)
        await self.client.inbox.put(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "tools/list"}).encode())
        await self.until(want)


async def _run(lines_in: list[bytes], server_lines: list[bytes]) -> None:
    harness = Harness(list(server_lines))
    tasks = [asyncio.create_task(harness.proxy.run()), asyncio.create_task(fake_server(harness.server, harness.reply))]
    try:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
        await harness.client.inbox.put(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": init}).encode())
        await harness.until({json.dumps("init")})
        await harness.client.inbox.put(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        for line in lines_in:
            await harness.feed(line)
        for i in range(len(server_lines)):
            call = {"jsonrpc": "2.0", "id": f"fuzz-{i}", "method": "tools/call", "params": {"name": "fuzz", "arguments": {}}}
            await harness.client.inbox.put(json.dumps(call).encode())
            await harness.until({json.dumps(f"fuzz-{i}")})  # whatever the server wrote, the client is answered
        await harness.feed(b'{"jsonrpc":"2.0","id":"last","method":"tools/call","params":{"name":"echo","arguments":{}}}')
    finally:
        await harness.client.inbox.put(None)
        await asyncio.wait_for(tasks[0], 5)
        tasks[1].cancel()
    assert not tasks[0].exception()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=6))
def test_any_client_input_is_answered_or_ignored(lines_in: list[bytes]) -> None:
    asyncio.run(_run(lines_in, []))


server_lines = st.one_of(
    lines,
    st.builds(lambda r: json.dumps({"jsonrpc": "2.0", "id": "fuzz-0", "result": r}).encode(), json_values),
    st.builds(lambda e: json.dumps({"jsonrpc": "2.0", "id": "fuzz-0", "error": e}).encode(), json_values),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(server_lines)
def test_any_server_answer_still_answers_the_client(line: bytes) -> None:
    asyncio.run(_run([], [line]))


def test_the_stdio_proxy_survives_random_lines(tmp_path: Path) -> None:
    client = RawClient(["--policy", str(POLICIES / "raw.yaml"), "--db", str(tmp_path / "t.db"), "--", sys.executable, str(RAW)])
    client.initialize()
    count = iter(range(1 << 30))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(lines)
    def one(line: bytes) -> None:
        sentinel = f"s-{next(count)}"
        owed = expects_answer(line)
        client.send(line)
        client.send({"jsonrpc": "2.0", "id": sentinel, "method": "ping"})
        want = {json.dumps(sentinel)} | ({json.dumps(owed)} if owed is not None else set())
        while want:
            msg = client.read(timeout=20)
            if "method" not in msg:
                want.discard(json.dumps(msg.get("id")))

    try:
        one()
    finally:
        assert client.close() == 0
