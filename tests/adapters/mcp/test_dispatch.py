"""The proxy's dispatch table and routing strategies, in process: what a lone server gets as it came,
what a gateway answers itself, and how the peer maps a server's own requests to proxy ids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp_helpers import MemoryLink

from tether import Guard, SQLiteStore
from tether.adapters.mcp import ProxyConfig
from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._pins import PinFilter
from tether.adapters.mcp._proxy import Proxy
from tether.policy import Policy

POLICY = Policy.from_yaml("tether: 1\nname: dispatch\ntools: {}\n")
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}


class FakeServer:
    """Answers initialize and lists; echoes the method (and id) of any other request; keeps what it received."""

    def __init__(self, name: str) -> None:
        self.link = MemoryLink()
        self.name = name
        self.received: list[dict[str, Any]] = []

    async def serve(self) -> None:
        while True:
            msg = await self.link.outbox.get()
            self.received.append(msg)
            rid, method = msg.get("id"), msg.get("method")
            if rid is None or method is None:
                continue
            if method == "initialize":
                caps = {"tools": {}, "prompts": {}}
                result: Any = {"protocolVersion": "2025-11-25", "capabilities": caps, "serverInfo": {"name": self.name, "version": "1"}}
            elif method == "tools/list":
                result = {"tools": []}
            elif method == "prompts/list":
                result = {"prompts": [{"name": "p"}]}
            else:
                result = {"echoed": method, "id": rid}
            await self.link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())


class Client:
    """The client's end: send a message, read until the answer to an id (or a request) arrives."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link

    async def send(self, msg: dict[str, Any]) -> None:
        await self.link.inbox.put(json.dumps({"jsonrpc": "2.0", **msg}).encode())

    async def answer(self, id_: Any) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                msg = await self.link.outbox.get()
                if "method" not in msg and msg.get("id") == id_:
                    return msg

    async def request(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                msg = await self.link.outbox.get()
                if "method" in msg and "id" in msg:
                    return msg


@asynccontextmanager
async def running(names: list[str], *, gateway: bool, initialize: bool = True) -> AsyncIterator[tuple[Client, list[FakeServer]]]:
    client_link = MemoryLink()
    servers = [FakeServer(n) for n in names]
    conns = [ServerConn(s.name if gateway else "", s.name, s.link, PinFilter(None)) for s in servers]
    session = Guard(POLICY, SQLiteStore(":memory:")).start_session("dispatch")
    proxy = Proxy(client_link, conns, session, POLICY, config=ProxyConfig(call_timeout_s=2), db_path=":memory:", gateway=gateway)
    tasks = [asyncio.create_task(proxy.run()), *(asyncio.create_task(s.serve()) for s in servers)]
    client = Client(client_link)
    try:
        if initialize:
            await client.send({"id": "init", "method": "initialize", "params": INIT})
            assert "result" in await client.answer("init")
            await client.send({"method": "notifications/initialized"})
        yield client, servers
    finally:
        await client_link.inbox.put(None)
        await asyncio.wait_for(tasks[0], 5)
        for task in tasks[1:]:
            task.cancel()


def test_a_lone_server_gets_what_the_table_does_not_handle_as_it_came() -> None:
    async def go() -> None:
        async with running(["s"], gateway=False) as (client, [server]):
            await client.send({"id": 5, "method": "vendor/anything", "params": {"x": 1}})
            assert (await client.answer(5))["result"] == {"echoed": "vendor/anything", "id": 5}
            sent = next(m for m in server.received if m.get("method") == "vendor/anything")
            assert sent == {"jsonrpc": "2.0", "id": 5, "method": "vendor/anything", "params": {"x": 1}}  # the client's id, unchanged
            await client.send({"id": 6, "method": "ping"})
            assert (await client.answer(6))["result"] == {"echoed": "ping", "id": 6}  # after initialize, the server answers ping

    asyncio.run(go())


def test_a_gateway_answers_what_no_single_server_owns_and_merges_lists() -> None:
    async def go() -> None:
        async with running(["a", "b"], gateway=True) as (client, servers):
            await client.send({"id": 1, "method": "vendor/anything"})
            refused = (await client.answer(1))["error"]
            assert refused["code"] == -32601 and "cannot route" in refused["message"]
            await client.send({"id": 2, "method": "ping"})
            assert (await client.answer(2))["result"] == {}
            await client.send({"id": 3, "method": "prompts/list"})
            assert [p["name"] for p in (await client.answer(3))["result"]["prompts"]] == ["a__p", "b__p"]
            await client.send({"id": 4, "method": "prompts/get", "params": {"name": "b__p"}})
            assert (await client.answer(4))["result"]["echoed"] == "prompts/get"
            got = [m for s in servers for m in s.received if m.get("method") in ("vendor/anything", "ping", "prompts/get")]
            assert got == [{"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "p"}}]  # only b, under its own name

    asyncio.run(go())


def test_before_initialize_only_ping_is_answered_and_a_pending_id_cannot_be_reused() -> None:
    async def go() -> None:
        async with running(["s"], gateway=False, initialize=False) as (client, [server]):
            await client.send({"id": 1, "method": "ping"})
            assert (await client.answer(1))["result"] == {}
            await client.send({"id": 2, "method": "tools/list"})
            assert (await client.answer(2))["error"]["code"] == -32600
            await client.send({"id": "i", "method": "initialize", "params": INIT})
            await client.send({"id": "i", "method": "initialize", "params": INIT})
            refused = await client.answer("i")
            assert refused["error"]["code"] == -32600 and "already in use" in refused["error"]["message"]
            assert "result" in await client.answer("i")
            assert [m.get("method") for m in server.received] == ["initialize"]

    asyncio.run(go())


def test_a_servers_request_reaches_the_client_under_a_proxy_id_and_the_answer_goes_back_under_its_own() -> None:
    async def go() -> None:
        async with running(["s"], gateway=False) as (client, [server]):
            await server.link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "roots/list"}).encode())
            asked = await client.request()
            assert asked["method"] == "roots/list" and str(asked["id"]).startswith("tether-")
            await client.send({"id": asked["id"], "result": {"roots": []}})
            async with asyncio.timeout(5):
                while not any(m.get("id") == 7 and "result" in m for m in server.received):
                    await asyncio.sleep(0.01)
            assert next(m for m in server.received if m.get("id") == 7) == {"jsonrpc": "2.0", "id": 7, "result": {"roots": []}}

    asyncio.run(go())
