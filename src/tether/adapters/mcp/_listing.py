"""List what a server offers without a client: for ``policy-init``, ``pins review`` and ``lint``.

The proxy connects as a client that declares every client capability (roots,
sampling, elicitation), since servers list some tools only to clients that
can use them; it answers the server's own requests with empty roots or an
error, and never calls a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tether import __version__
from tether.adapters.mcp._jsonrpc import METHOD_NOT_FOUND, Message, classify, error, obj, parse
from tether.adapters.mcp._links import Link, ProcessLink, UpstreamError
from tether.adapters.mcp._lint import NO_NEIGHBOURS, LintFinding, Neighbours, lint_server
from tether.adapters.mcp._pins import INSTRUCTIONS, ToolDefinition
from tether.adapters.mcp._upstream import Upstream, environment

PROTOCOL_VERSION = "2025-11-25"
CLIENT_CAPABILITIES: dict[str, Any] = {"roots": {"listChanged": True}, "sampling": {}, "elicitation": {"form": {}, "url": {}}}


@dataclass(frozen=True, slots=True)
class Listing:
    """What one server offers."""

    server_info: dict[str, Any]
    """Its ``serverInfo``."""
    instructions: str | None
    """Its instructions."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Its tool definitions as listed."""
    prompts: list[dict[str, Any]] = field(default_factory=list)
    """Its prompts as listed (the model reads their names and descriptions too)."""
    resources: list[dict[str, Any]] = field(default_factory=list)
    """Its resources as listed."""
    templates: list[dict[str, Any]] = field(default_factory=list)
    """Its resource templates as listed."""

    def findings(self, neighbours: Neighbours = NO_NEIGHBOURS) -> list[LintFinding]:
        """The lint's findings on everything the server gives the model (``neighbours``: the rest of a gateway)."""
        return lint_server(
            self.tools,
            instructions=self.instructions,
            prompts=self.prompts,
            resources=self.resources,
            templates=self.templates,
            neighbours=neighbours,
        )

    def definitions(self) -> list[ToolDefinition]:
        """The pinnable definitions: the instructions and every tool (as the proxy pins them)."""
        out = [ToolDefinition(INSTRUCTIONS, {"instructions": self.instructions})]
        return out + [ToolDefinition(t["name"], t) for t in self.tools if isinstance(t.get("name"), str)]


@contextlib.asynccontextmanager
async def _link(spec: Upstream, log: TextIO, state: str | None) -> AsyncIterator[Link]:
    if spec.url is not None:
        from tether.adapters.mcp._http import open_upstream

        async with open_upstream(spec, log=log, state=state) as link:
            yield link
        return
    process = await ProcessLink.start(spec.command, environment(spec.env), limit=64 << 20, errlog=log)
    try:
        yield process
    finally:
        await process.close()


async def list_server(spec: Upstream, *, timeout: float = 60.0, log: TextIO = sys.stderr, state: str | None = None) -> Listing:
    """Initialise a session with the server, list every tool, and close (``state``: the store whose OAuth tokens to use)."""
    async with _link(spec, log, state) as link:
        waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        counter = iter(range(1, 1 << 30))

        async def reader() -> None:
            while True:
                frame = await link.recv()
                if frame is None:
                    break
                msg = parse(frame) if isinstance(frame, bytes) else classify(frame) if isinstance(frame, dict) else None
                if not isinstance(msg, Message):
                    continue
                if msg.kind == "response":
                    fut = waiting.pop(str(msg.id), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg.data)
                elif msg.kind == "request":
                    answer: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.id, "result": {}}
                    if msg.method == "roots/list":
                        answer["result"] = {"roots": []}
                    elif msg.method != "ping":
                        answer = error(msg.id, METHOD_NOT_FOUND, f"{msg.method} is not answered while listing tools")
                    await link.send(answer)
            for fut in waiting.values():
                if not fut.done():
                    fut.set_exception(UpstreamError(f"the MCP server `{spec.describe()}` exited before answering"))

        async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
            rid = f"list-{next(counter)}"
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            waiting[rid] = fut
            await link.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            answer = await asyncio.wait_for(fut, timeout)
            if not isinstance(answer.get("result"), dict):
                raise UpstreamError(f"{method} on `{spec.describe()}` failed: {answer.get('error')}")
            result: dict[str, Any] = answer["result"]
            return result

        task = asyncio.create_task(reader())
        try:
            init = await call(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": CLIENT_CAPABILITIES,
                    "clientInfo": {"name": "tether-mcp", "version": __version__},
                },
            )
            await link.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            caps = obj(init.get("capabilities"))

            async def every(method: str, key: str, capability: str, *, optional: bool = True) -> list[dict[str, Any]]:
                items: list[dict[str, Any]] = []
                cursor: Any = None
                for _ in range(1000 if capability in caps else 0):
                    try:
                        page = await call(method, {"cursor": cursor} if cursor else {})
                    except UpstreamError:
                        if optional:  # a server may offer resources without templates: nothing to lint there
                            break
                        raise
                    items.extend(t for t in page.get(key) or () if isinstance(t, dict))
                    cursor = page.get("nextCursor")
                    if not cursor:
                        break
                return items

            tools = await every("tools/list", "tools", "tools", optional=False)
            prompts = await every("prompts/list", "prompts", "prompts")
            resources = await every("resources/list", "resources", "resources")
            templates = await every("resources/templates/list", "resourceTemplates", "resources")
        except TimeoutError:
            raise UpstreamError(f"the MCP server `{spec.describe()}` did not answer within {timeout:g} s") from None
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        info = obj(init.get("serverInfo"))
        instructions = init.get("instructions") if isinstance(init.get("instructions"), str) else None
        return Listing(info, instructions, tools, prompts, resources, templates)


async def list_servers(specs: Sequence[Upstream], *, log: TextIO = sys.stderr, state: str | None = None) -> list[Listing]:
    """:func:`list_server` for each, one after the other."""
    return [await list_server(spec, log=log, state=state) for spec in specs]


def gateway_findings(names: Sequence[str], listings: Sequence[Listing]) -> list[list[LintFinding]]:
    """The lint's findings on each server's listing, each linted knowing the other servers' names and tools.

    ``names`` are the servers' gateway names ("" for a lone server). Findings
    name definitions as the server lists them (not namespaced).
    """
    out: list[list[LintFinding]] = []
    for i, listing in enumerate(listings):
        others = [(names[j], li) for j, li in enumerate(listings) if j != i]
        tools = {str(t.get("name")) for _, li in others for t in li.tools}
        neighbours = Neighbours(
            servers=frozenset(n for n, _ in others if n),
            tools=frozenset(tools | {f"{n}__{t.get('name')}" for n, li in others if n for t in li.tools}),
        )
        out.append(listing.findings(neighbours))
    return out
