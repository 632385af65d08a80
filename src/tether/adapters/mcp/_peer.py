"""The proxy's JSON-RPC plumbing: one client link, its server links, ids and correlation; no MCP methods.

Messages are parsed once (orjson) and passed on as they were parsed, not
re-typed through an SDK: what the guard checked is exactly what the server
receives. A client request keeps its id on the way to a server; a server's
own requests to the client get proxy ids (and progress tokens), so two servers
(or the proxy's own questions) never collide. Cancellations and progress
follow those ids both ways.

The :class:`Peer` answers what it can answer without knowing MCP (a malformed
or over-long line, an id already in use, an internal error, a server that
exited) and hands every well-formed message to its :class:`Handlers`, the
dispatch table (:mod:`._dispatch`). Every client request is answered: by a
server, by a handler, or here with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._config import ProxyConfig, UpstreamFailure, announce
from tether.adapters.mcp._guarding import Post
from tether.adapters.mcp._jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    Id,
    Malformed,
    Message,
    Oversized,
    classify,
    error,
    id_key,
    oversized,
    parse,
    recover_id,
)
from tether.adapters.mcp._links import Frame, Link, ProcessLink

ToClient = Callable[[], Awaitable[dict[str, Any]]]
"""Forwards a server's request to the client; returns the response member (``result`` or ``error``)."""


class Handlers(Protocol):
    """What the peer hands well-formed messages to (the dispatch table)."""

    async def client_request(self, msg: Message) -> None:
        """Answer or route a client request (its id is free); long work goes through :meth:`Peer.start`."""
        ...

    def pass_notification(self, msg: Message) -> Message | None:
        """A client notification as it may pass on to the servers, or None: dropped."""
        ...

    async def client_notification(self, msg: Message) -> None:
        """React to a client notification (already passed on to the servers)."""
        ...

    async def server_request(self, server: ServerConn, method: str, params: dict[str, Any], to_client: ToClient) -> dict[str, Any]:
        """The answer member for a server's request (``params`` carry the proxy's progress token)."""
        ...

    async def server_notification(self, server: ServerConn, msg: Message) -> bool:
        """React to a server notification; False withholds it from the client."""
        ...


@dataclass(frozen=True, slots=True)
class Relay:
    """A client request forwarded to a server: its answer goes back to the client as it comes."""

    client_id: Id
    """The client's id for it."""
    post: Post | None = None
    """What must happen to the answer before the client reads it."""


class Peer:
    """JSON-RPC between one client link and its servers: ids, correlation, relaying.

    ``default_server`` receives what names no server (a lone server's progress
    notifications); a gateway has none.
    """

    def __init__(
        self,
        client: Link,
        servers: Sequence[ServerConn],
        *,
        config: ProxyConfig,
        default_server: ServerConn | None,
        log: TextIO = sys.stderr,
    ) -> None:
        self.client = client
        """The client's link."""
        self.servers = list(servers)
        """Every upstream server."""
        self.config = config
        self.client_capabilities: Mapping[str, Any] = {}
        """What the client declared in ``initialize`` (set by the initialize handler)."""
        self.client_init: dict[str, Any] | None = None
        """The client's ``initialize`` params as sent to the servers (a restarted server gets them too)."""
        self.client_ready = False
        """Whether the client's ``initialize`` was answered (the servers that came up are initialised)."""
        self.on_down: Callable[[ServerConn], None] | None = None
        """Told when a server's link ends (it exited, or never started), unless the peer is stopping."""
        self.on_refused: Callable[[str, str, str, str], None] | None = None
        """Told of every message refused or dropped here (source, class, method, what happened); None: said on the log only."""
        self._handlers: Handlers | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._default = default_server
        self._log = log
        self._prefix = f"tether-{secrets.token_hex(4)}-"
        self._counter = itertools.count(1)
        self._client_waiting: dict[Any, asyncio.Future[dict[str, Any] | None]] = {}
        self._routes: dict[Any, ServerConn] = {}
        self._tasks: dict[Any, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._server_tokens: dict[Any, tuple[ServerConn, Any]] = {}
        # What waits for each request sent to a server, by id key: a client request relayed, or the proxy's own.
        self._waiting: dict[ServerConn, dict[Any, Relay | asyncio.Future[dict[str, Any] | None]]] = {s: {} for s in self.servers}
        # Each server's own request ids -> the ids the proxy used towards the client.
        self._remapped: dict[ServerConn, dict[Any, str]] = {s: {} for s in self.servers}

    # ------------------------------------------------------------ the client, as the guard sees it (ClientPort)

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """What the client declared in ``initialize``."""
        return self.client_capabilities

    async def request(self, method: str, params: dict[str, Any], *, related: Id | None, timeout: float | None) -> dict[str, Any] | None:
        """Ask the client something (the proxy's own request); its answer, or None."""
        return await self._request_client(self.new_id(), method, params, related=related, timeout=timeout)

    async def notify(self, method: str, params: dict[str, Any], *, related: Id | None) -> None:
        """Tell the client something."""
        await self.client.send({"jsonrpc": "2.0", "method": method, "params": params}, related=related)

    async def reply(self, id_: Id | None, answer: Mapping[str, Any]) -> None:
        """Answer a client request with a ``result`` or ``error`` member."""
        await self.client.send({"jsonrpc": "2.0", "id": id_, **answer}, related=id_)

    async def reply_error(self, id_: Id | None, code: int, message: str) -> None:
        """Answer a client request with a JSON-RPC error."""
        await self.client.send(error(id_, code, message), related=id_)

    # ------------------------------------------------------------ the loop

    async def run(self, handlers: Handlers) -> None:
        """Serve until the client goes away; then stop every task and release every waiter."""
        self._handlers = handlers
        for server in self.servers:
            self._start_reader(server)
        try:
            while True:
                frame = await self.client.recv()
                if frame is None:
                    break
                await self._from_client(frame, handlers)
        finally:
            self._stopping = True
            readers = list(self._readers)
            for task in [*self._tasks.values(), *self._background, *readers]:
                task.cancel()
            for task in [*self._tasks.values(), *self._background, *readers]:
                with contextlib.suppress(BaseException):
                    await task
            for fut in self._client_waiting.values():
                if not fut.done():
                    fut.set_result(None)

    def _start_reader(self, server: ServerConn) -> None:
        assert self._handlers is not None
        task = asyncio.create_task(self._read_server(server, self._handlers))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    def attach(self, server: ServerConn, link: Link) -> None:
        """Serve ``server`` over a new link (it was started again); it must be initialised before use."""
        server.link = link
        server.alive = True
        server.init = None
        self._waiting[server] = {}
        self._remapped[server] = {}
        self._start_reader(server)

    @property
    def stopping(self) -> bool:
        """True once the client went away and the peer shuts down."""
        return self._stopping

    def new_id(self) -> str:
        """A fresh proxy id (for the proxy's own requests and remapped server requests)."""
        return f"{self._prefix}{next(self._counter)}"

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background until it ends or the peer stops."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def start(self, msg: Message, coro: Coroutine[Any, Any, None]) -> None:
        """Handle a client request in its own task; whatever happens, the client gets an answer (unless it cancelled)."""
        key = id_key(msg.id)

        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._say(f"internal error on {msg.method}: {type(exc).__name__}: {exc}")
                await self.reply_error(msg.id, INTERNAL_ERROR, f"Internal error in the Tether proxy: {type(exc).__name__}")

        task = asyncio.create_task(run())
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None) if self._tasks.get(key) is _t else None)

    def _say(self, text: str) -> None:
        announce(self._log, text)

    def _refused(self, source: str, what: str, method: str, detail: str) -> None:
        if self.on_refused is not None:
            self.on_refused(source, what, method, detail)
        else:
            self._say(detail)

    # ------------------------------------------------------------ from the client

    async def _from_client(self, frame: Frame, handlers: Handlers) -> None:
        if isinstance(frame, Oversized):
            parsed: Message | Malformed | None = oversized(frame, self.config.max_message_bytes)
        elif isinstance(frame, bytes):
            parsed = parse(frame)
        else:
            parsed = classify(frame)
        if parsed is None:
            return
        if isinstance(parsed, Malformed):
            self._refused(
                "client",
                "malformed",
                "",
                f"the client sent a malformed message ({parsed.message}); answered {parsed.code}"
                if parsed.answer
                else f"the client sent a malformed message ({parsed.message}); dropped",
            )
            if parsed.answer:
                await self.reply_error(parsed.id, parsed.code, parsed.message)
            return
        if parsed.kind == "request":
            key = id_key(parsed.id)
            if key in self._tasks or key in self._routes:
                # Two answers with one id could not be told apart: the second request is refused.
                self._refused(
                    "client", "duplicate-id", parsed.method, f"refused the client's {parsed.method}: id {parsed.id!r} is already in use"
                )
                await self.reply_error(
                    parsed.id, INVALID_REQUEST, f"Invalid Request: id {parsed.id!r} is already in use by a pending request"
                )
                return
            await handlers.client_request(parsed)
        elif parsed.kind == "notification":
            await self._client_notification(parsed, handlers)
        else:
            fut = self._client_waiting.pop(id_key(parsed.id), None)
            if fut is None:
                self._refused(
                    "client", "orphan-answer", "", f"dropped the client's answer to id {parsed.id!r}: the proxy is not waiting for it"
                )
            elif not fut.done():
                fut.set_result(_answer(parsed.data))

    async def _client_notification(self, msg: Message, handlers: Handlers) -> None:
        passed = handlers.pass_notification(msg)
        if passed is None:
            return
        msg = passed
        method, params = msg.method, msg.params
        if method == "notifications/cancelled":
            rid = params.get("requestId")
            key = id_key(rid) if isinstance(rid, str | int | float) and not isinstance(rid, bool) else None
            task = self._tasks.get(key)
            server = self._routes.pop(key, None)
            if server is not None:
                waiter = self._waiting[server].pop(key, None)
                if isinstance(waiter, asyncio.Future) and not waiter.done():
                    waiter.cancel()
                await server.link.send(msg.data)
            if task is not None:
                task.cancel()
            return
        if method == "notifications/progress":
            token = params.get("progressToken")
            target = self._server_tokens.get(id_key(token)) if isinstance(token, str | int) and not isinstance(token, bool) else None
            if target is not None:
                await target[0].link.send({**msg.data, "params": {**params, "progressToken": target[1]}})
            elif self._default is not None:
                await self._default.link.send(msg.data)
            return
        for server in self.servers:
            if server.alive and server.init is not None:
                await server.link.send(msg.data)
        await handlers.client_notification(msg)

    # ------------------------------------------------------------ to a server

    async def relay(self, server: ServerConn, msg: Message, post: Post | None, params: dict[str, Any] | None = None) -> None:
        """Forward a client request; its answer goes back under the client's id."""
        if not server.alive:
            await self.reply_error(msg.id, INTERNAL_ERROR, f"the MCP server {server.label} has exited")
            return
        key = id_key(msg.id)
        self._waiting[server][key] = Relay(msg.id, post)
        self._routes[key] = server
        await server.link.send(msg.data if params is None else {**msg.data, "params": params})

    async def call_server(self, server: ServerConn, id_: Id, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and wait for the answer; :class:`UpstreamFailure` when none comes."""
        if not server.alive:
            raise UpstreamFailure(f"the MCP server {server.label} has exited{server_status(server)}")
        key = id_key(id_)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        self._waiting[server][key] = fut
        self._routes[key] = server
        timer = loop.call_later(timeout, _expire, fut)  # cheaper than asyncio.wait_for on the hot path
        try:
            await server.link.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
            answer = await fut
        except _Expired:
            cancel = {"requestId": id_, "reason": f"no answer within {timeout:g} s"}
            await server.link.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
            raise UpstreamFailure(f"the MCP server did not answer within {timeout:g} s") from None
        finally:
            timer.cancel()
            if self._waiting[server].get(key) is fut:
                del self._waiting[server][key]
            if self._routes.get(key) is server:
                del self._routes[key]
        if answer is None:
            raise UpstreamFailure(f"the MCP server {server.label} failed: it exited{server_status(server)}")
        return answer

    async def fetch_all(self, server: ServerConn, method: str, key: str) -> list[Any]:
        """Every item of a paginated list (``tools/list`` ...), following cursors."""
        items: list[Any] = []
        cursor: Any = None
        for _ in range(1000):
            answer = await self.call_server(server, self.new_id(), method, {"cursor": cursor} if cursor else {}, self.config.call_timeout_s)
            result = answer.get("result")
            if not isinstance(result, dict):
                raise UpstreamFailure(f"{method} failed: {answer.get('error')}")
            page = result.get(key)
            items.extend(page if isinstance(page, list) else [])
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    # ------------------------------------------------------------ from a server

    async def _read_server(self, server: ServerConn, handlers: Handlers) -> None:
        try:
            while True:
                frame = await server.link.recv()
                if frame is None:
                    break
                await self._from_server(server, frame, handlers)
        finally:
            server.alive = False
            if isinstance(server.link, ProcessLink):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(server.link.proc.wait(), 1.0)
            if server.init is not None or self._waiting[server]:
                self._say(f"the MCP server {server.label} has exited{server_status(server)}")
            for key, waiter in list(self._waiting[server].items()):
                self._waiting[server].pop(key, None)
                if isinstance(waiter, asyncio.Future):
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    self._routes.pop(key, None)
                    await self.reply_error(
                        waiter.client_id, INTERNAL_ERROR, f"the MCP server {server.label} has exited{server_status(server)}"
                    )
            if self.on_down is not None and not self._stopping:
                self.on_down(server)

    async def _from_server(self, server: ServerConn, frame: Frame, handlers: Handlers) -> None:
        if isinstance(frame, Oversized):
            limit = self.config.max_server_message_bytes
            await self._fail_answer(
                server, recover_id(frame.head, frame.tail), f"the server's message of {frame.size} bytes exceeds {limit} bytes"
            )
            return
        parsed = parse(frame) if isinstance(frame, bytes) else classify(frame)
        if parsed is None:
            return
        if isinstance(parsed, Malformed):
            self._refused(source_of(server), "malformed", "", f"{server.label} sent a malformed message ({parsed.message}); dropped")
            await self._fail_answer(server, parsed.id, f"the server sent a malformed answer ({parsed.message})")
            return
        if parsed.kind == "response":
            await self._server_answer(server, parsed.id, _answer(parsed.data))
        elif parsed.kind == "request":
            self.spawn(self._server_request(server, parsed, handlers))
        else:
            await self._server_notification(server, parsed, handlers)

    async def _fail_answer(self, server: ServerConn, id_: Id | None, why: str) -> None:
        if id_ is not None and id_key(id_) in self._waiting[server]:
            await self._server_answer(server, id_, {"error": {"code": INTERNAL_ERROR, "message": f"Tether: {why}"}})

    async def _server_answer(self, server: ServerConn, id_: Id, answer: dict[str, Any]) -> None:
        key = id_key(id_)
        waiter = self._waiting[server].pop(key, None)
        if waiter is None:
            # An answer nobody waits for (cancelled, timed out, or an id the proxy never sent): dropped.
            self._refused(
                source_of(server), "orphan-answer", "", f"dropped {server.label}'s answer to id {id_!r}: nothing is waiting for it"
            )
            return
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():
                waiter.set_result(answer)
            return
        if self._routes.get(key) is server:
            del self._routes[key]
        if waiter.post is not None and not waiter.post(answer):
            await self.reply_error(waiter.client_id, INTERNAL_ERROR, "Tether: the answer could not be logged; it is withheld")
            return
        await self.reply(waiter.client_id, answer)

    async def _server_request(self, server: ServerConn, msg: Message, handlers: Handlers) -> None:
        """A server asks the client (sampling, elicitation, roots, ping ...): handled under a proxy id."""
        own = id_key(msg.id)
        pid = self.new_id()
        self._remapped[server][own] = pid
        params = dict(msg.params)
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            token = self.new_id()
            self._server_tokens[id_key(token)] = (server, meta["progressToken"])
            params["_meta"] = {**meta, "progressToken": token}

        async def to_client() -> dict[str, Any]:
            answer = await self._request_client(pid, msg.method, params, related=None, timeout=None)
            return answer if answer is not None else {"error": {"code": INTERNAL_ERROR, "message": "the client did not answer"}}

        try:
            answer = await handlers.server_request(server, msg.method, params, to_client)
        except Exception as exc:
            answer = {"error": {"code": INTERNAL_ERROR, "message": f"Tether: {type(exc).__name__}: {exc}"}}
        finally:
            self._remapped[server].pop(own, None)
            if isinstance(meta, dict) and "progressToken" in meta:
                self._server_tokens.pop(id_key(params["_meta"]["progressToken"]), None)
        await server.link.send({"jsonrpc": "2.0", "id": msg.id, **answer})

    async def _request_client(
        self, pid: str, method: str, params: dict[str, Any], *, related: Id | None, timeout: float | None
    ) -> dict[str, Any] | None:
        key = id_key(pid)
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._client_waiting[key] = fut
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": pid}}
        try:
            await self.client.send({"jsonrpc": "2.0", "id": pid, "method": method, "params": params}, related=related)
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            await self.client.send(cancel, related=related)
            return None
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.client.send(cancel, related=related)
            raise
        finally:
            self._client_waiting.pop(key, None)

    async def _server_notification(self, server: ServerConn, msg: Message, handlers: Handlers) -> None:
        params = msg.params
        if msg.method == "notifications/cancelled":
            rid = params.get("requestId")
            pid = self._remapped[server].get(id_key(rid)) if isinstance(rid, str | int) and not isinstance(rid, bool) else None
            if pid is not None:
                fut = self._client_waiting.get(id_key(pid))
                if fut is not None and not fut.done():
                    fut.set_result({"error": {"code": INTERNAL_ERROR, "message": "cancelled by the server"}})
                await self.client.send({**msg.data, "params": {**params, "requestId": pid}})
            return
        if await handlers.server_notification(server, msg):
            await self.client.send(msg.data)


class _Expired(Exception):
    """A request's time ran out."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _answer(data: dict[str, Any]) -> dict[str, Any]:
    return {"result": data["result"]} if "result" in data else {"error": data.get("error")}


def server_status(server: ServerConn) -> str:
    """`` (status N)`` once the server's process has exited with N, `` (why)`` once a connection ended saying why
    (an OAuth server that refused the tokens), else empty (for messages)."""
    link = server.link
    if isinstance(link, ProcessLink) and link.proc.returncode is not None:
        return f" (status {link.proc.returncode})"
    reason = getattr(link, "reason", None)
    return f" ({reason})" if isinstance(reason, str) and reason else ""


def source_of(server: ServerConn) -> str:
    """How a refusal names the server that sent the message (its gateway name, never its command line)."""
    return f"server {server.name}" if server.name else "server"
