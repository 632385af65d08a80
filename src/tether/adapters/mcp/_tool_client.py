"""A small MCP client for the agent loop: one connection to one server, requests and their answers.

The proxy relays another client's messages; the agent loop *is* the client, so it needs its own
side of the protocol: ``initialize``, ``tools/list`` (every page), ``tools/call``, and answers to
the server's own requests. It reuses the proxy's links (a stdio subprocess, or a streamable HTTP
URL through the SDK) and its JSON-RPC parsing. The server's requests are answered conservatively:
``ping`` and an empty ``roots/list``; sampling and elicitation are refused (the agent loop has no
second model to lend and no form to show), so a server cannot reach the model or the human past
the guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from tether import __version__
from tether.adapters.mcp._jsonrpc import METHOD_NOT_FOUND, Malformed, Message, Oversized, classify, error, obj, oversized, parse
from tether.adapters.mcp._links import Link, ProcessLink, UpstreamError
from tether.adapters.mcp._upstream import Upstream, environment

PROTOCOL_VERSION = "2025-11-25"
"""The MCP revision the client asks for (the server may answer with an older one)."""

CLIENT_CAPABILITIES: dict[str, Any] = {"roots": {"listChanged": False}}
"""What the agent loop's client declares: roots only (always empty); no sampling, no elicitation."""


class McpConnection:
    """One initialised MCP session with one server, over a link the caller owns."""

    def __init__(
        self, spec: Upstream, link: Link, *, limit: int = 64 << 20, on_notification: Callable[[Message], None] | None = None
    ) -> None:
        self.spec = spec
        """The server."""
        self.init: dict[str, Any] = {}
        """Its ``initialize`` result."""
        self.alive = True
        """False once the server closed its end."""
        self._link = link
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = iter(range(1, 1 << 62))
        self._reader: asyncio.Task[None] | None = None
        self._on_notification = on_notification
        self._limit = limit

    @property
    def capabilities(self) -> dict[str, Any]:
        """The capabilities the server declared."""
        return obj(self.init.get("capabilities"))

    @property
    def instructions(self) -> str | None:
        """The server's instructions, if it gave any."""
        text = self.init.get("instructions")
        return text if isinstance(text, str) else None

    async def start(self, timeout: float) -> None:
        """Read the server's messages from now on, and initialise the session."""
        self._reader = asyncio.create_task(self._read())
        self.init = await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": CLIENT_CAPABILITIES,
                "clientInfo": {"name": "tether-run", "version": __version__},
            },
            timeout=timeout,
        )
        await self._link.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def stop(self) -> None:
        """Stop reading (the link is closed by its owner)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def list_tools(self, timeout: float) -> list[dict[str, Any]]:
        """Every tool the server lists (all pages; none when it declared no tools)."""
        if "tools" not in self.capabilities:
            return []
        tools: list[dict[str, Any]] = []
        cursor: Any = None
        for _ in range(1000):
            page = await self.request("tools/list", {"cursor": cursor} if cursor else {}, timeout=timeout)
            tools.extend(t for t in page.get("tools") or () if isinstance(t, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return tools

    async def call_tool(self, name: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The ``tools/call`` result (``isError`` results included); raises :class:`UpstreamError` on no answer or a JSON-RPC error."""
        return await self.request("tools/call", {"name": name, "arguments": args}, timeout=timeout)

    async def request(self, method: str, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send a request and wait for its result."""
        if not self.alive:
            raise UpstreamError(f"the MCP server `{self.spec.describe()}` has exited")
        rid = f"tether-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            await self._link.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            answer = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self._link.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}})
            raise UpstreamError(f"{method} on `{self.spec.describe()}`: no answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(rid, None)
        result = answer.get("result")
        if not isinstance(result, dict):
            err = obj(answer.get("error"))
            raise UpstreamError(f"{method} on `{self.spec.describe()}` failed: {err.get('message', 'no result')}")
        return result

    async def _read(self) -> None:
        try:
            while True:
                frame = await self._link.recv()
                if frame is None:
                    break
                msg: Message | Malformed | None
                if isinstance(frame, Oversized):
                    msg = oversized(frame, self._limit)
                else:
                    msg = parse(frame) if isinstance(frame, bytes) else classify(frame)
                if isinstance(msg, Message):
                    await self._dispatch(msg)
                elif isinstance(msg, Malformed) and msg.id is not None:
                    self._settle(str(msg.id), {"error": {"message": f"malformed answer from the server: {msg.message}"}})
        finally:
            self.alive = False
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(UpstreamError(f"the MCP server `{self.spec.describe()}` exited before answering"))

    async def _dispatch(self, msg: Message) -> None:
        if msg.kind == "response":
            self._settle(str(msg.id), msg.data)
        elif msg.kind == "request":
            if msg.method == "ping":
                answer: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.id, "result": {}}
            elif msg.method == "roots/list":
                answer = {"jsonrpc": "2.0", "id": msg.id, "result": {"roots": []}}
            else:
                answer = error(
                    msg.id,
                    METHOD_NOT_FOUND,
                    f"tether run does not answer {msg.method!r} (no sampling, elicitation or other client requests)",
                )
            await self._link.send(answer)
        elif msg.kind == "notification" and self._on_notification is not None:
            self._on_notification(msg)

    def _settle(self, rid: str, data: dict[str, Any]) -> None:
        fut = self._waiting.get(rid)
        if fut is not None and not fut.done():
            fut.set_result(data)


@contextlib.asynccontextmanager
async def open_link(spec: Upstream, *, limit: int, log: TextIO = sys.stderr, state: str | None = None) -> AsyncIterator[Link]:
    """Start (or connect to) the server; stop it on exit. A URL server gets its headers, transport and
    OAuth tokens (kept beside the store at ``state``)."""
    if spec.url is not None:
        from tether.adapters.mcp._http import open_upstream

        async with open_upstream(spec, log=log, state=state) as link:
            yield link
        return
    process = await ProcessLink.start(spec.command, environment(spec.env), limit=limit, errlog=log)
    try:
        yield process
    finally:
        await process.close()
