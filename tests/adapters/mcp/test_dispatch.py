"""The proxy's dispatch table and routing strategies, in process: what a lone server gets as it came,
what a gateway answers itself, and how the peer maps a server's own requests to proxy ids."""

from __future__ import annotations

import asyncio
import json

from mcp_helpers import INIT, running


def test_a_lone_server_gets_the_methods_the_protocol_defines_and_nothing_else() -> None:
    async def go() -> None:
        async with running(["s"], gateway=False) as (client, [server]):
            await client.send({"id": 5, "method": "vendor/anything", "params": {"x": 1}})
            refused = (await client.answer(5))["error"]
            assert refused["code"] == -32601 and "vendor/anything" in refused["message"]
            await client.send({"id": 6, "method": "ping"})
            assert (await client.answer(6))["result"] == {"echoed": "ping", "id": 6}  # after initialize, the server answers ping
            await client.send({"id": 7, "method": "logging/setLevel", "params": {"level": "info"}})
            assert (await client.answer(7))["result"]["echoed"] == "logging/setLevel"
            sent = next(m for m in server.received if m.get("method") == "logging/setLevel")
            assert sent == {"jsonrpc": "2.0", "id": 7, "method": "logging/setLevel", "params": {"level": "info"}}  # the client's id
            assert not any(m.get("method") == "vendor/anything" for m in server.received)

    asyncio.run(go())


def test_a_gateway_answers_what_no_single_server_owns_and_merges_lists() -> None:
    async def go() -> None:
        policy = "tether: 1\nname: gw\ntools:\n  b__prompts/get: {effect: read, args: {name: {type: string}}}\n"
        async with running(["a", "b"], gateway=True, policy=policy) as (client, servers):
            await client.send({"id": 1, "method": "vendor/anything"})
            refused = (await client.answer(1))["error"]
            assert refused["code"] == -32601 and "vendor/anything" in refused["message"]
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
        policy = "tether: 1\nname: roots\ntools:\n  roots/list: {effect: read, additional_args: allow}\n"
        async with running(["s"], gateway=False, policy=policy) as (client, [server]):
            await server.link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "roots/list"}).encode())
            asked = await client.request()
            assert asked["method"] == "roots/list" and str(asked["id"]).startswith("tether-")
            await client.send({"id": asked["id"], "result": {"roots": []}})
            async with asyncio.timeout(5):
                while not any(m.get("id") == 7 and "result" in m for m in server.received):
                    await asyncio.sleep(0.01)
            assert next(m for m in server.received if m.get("id") == 7) == {"jsonrpc": "2.0", "id": 7, "result": {"roots": []}}

    asyncio.run(go())
