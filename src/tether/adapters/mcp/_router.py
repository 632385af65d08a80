"""The proxy's message loop: JSON-RPC between one client and its server(s), guarded where it must be.

Messages are parsed once (orjson) and passed on as they were parsed, not
re-typed through an SDK: what the guard checked is exactly what the server
receives. Only what needs a guard is intercepted: ``initialize`` (pins on the
server's instructions), ``tools/list`` (pins), ``tools/call`` (the guard),
the server's sampling and elicitation requests, and the answers the model
reads (recorded). Everything else passes in both directions, ids unchanged
from the client to a server; a server's own requests to the client get
proxy ids, so two servers (or the proxy's own questions) never collide.

Every client request is answered: by the server, or by the proxy with an error
when the server has gone, the line was malformed or too long, or the request
cannot be routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tether._decision import ToolCall
from tether.adapters.mcp import _gateway
from tether.adapters.mcp._catalog import Catalog, ServerConn
from tether.adapters.mcp._guarding import (
    ELICITATION,
    SAMPLING,
    Admission,
    ProxyConfig,
    UpstreamFailure,
    without_task_requests,
)
from tether.adapters.mcp._jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
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
from tether.adapters.mcp._pins import INSTRUCTIONS, ToolDefinition
from tether.flow import TRUSTED, UNTRUSTED
from tether.policy import Policy
from tether.session import Session

Post = Callable[[dict[str, Any]], bool]
"""Runs on a server's answer before the client gets it; False withholds it (the log could not take it)."""


@dataclass(frozen=True, slots=True)
class Relay:
    """A client request forwarded to a server: its answer goes back to the client as it comes."""

    client_id: Id
    post: Post | None = None


class Router:
    """Moves JSON-RPC between one client link and its servers for one Tether session."""

    def __init__(
        self,
        client: Link,
        servers: Sequence[ServerConn],
        session: Session,
        policy: Policy,
        *,
        config: ProxyConfig,
        db_path: str,
        gateway: bool,
        gateway_info: Mapping[str, Any] | None = None,
        log: TextIO = sys.stderr,
    ) -> None:
        self.client = client
        self.servers = list(servers)
        self.config = config
        self.gateway = gateway
        self.gateway_info = dict(gateway_info or {})
        self.admission = Admission(session, self, config=config, db_path=db_path, log=log)
        self.catalog = Catalog(self.servers, self.admission, policy, gateway=gateway, hide_denied=config.hide_denied)
        self._prefix = f"tether-{secrets.token_hex(4)}-"
        self._counter = itertools.count(1)
        self._client_caps: dict[str, Any] = {}
        self._init_started = False
        self._initialized = False
        self._client_waiting: dict[Any, asyncio.Future[dict[str, Any] | None]] = {}
        self._routes: dict[Any, ServerConn] = {}
        self._tasks: dict[Any, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._server_tokens: dict[Any, tuple[ServerConn, Any]] = {}

    # ------------------------------------------------------------ the ClientPort the guard uses

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """What the client declared in ``initialize``."""
        return self._client_caps

    async def request(self, method: str, params: dict[str, Any], *, related: Id | None, timeout: float | None) -> dict[str, Any] | None:
        """Ask the client something (the proxy's own request); its answer, or None."""
        return await self._request_client(self._new_id(), method, params, related=related, timeout=timeout)

    async def notify(self, method: str, params: dict[str, Any], *, related: Id | None) -> None:
        """Tell the client something."""
        await self.client.send({"jsonrpc": "2.0", "method": method, "params": params}, related=related)

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Serve until the client goes away."""
        readers = [asyncio.create_task(self._read_server(s)) for s in self.servers]
        try:
            while True:
                frame = await self.client.recv()
                if frame is None:
                    break
                await self._from_client(frame)
        finally:
            for task in [*self._tasks.values(), *self._background, *readers]:
                task.cancel()
            for task in [*self._tasks.values(), *self._background, *readers]:
                with contextlib.suppress(BaseException):
                    await task
            self.admission.refuse_pending("the proxy stopped before a human answered")
            for fut in self._client_waiting.values():
                if not fut.done():
                    fut.set_result(None)

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._counter)}"

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reply(self, id_: Id | None, answer: Mapping[str, Any]) -> None:
        """Answer a client request with a ``result`` or ``error`` member."""
        await self.client.send({"jsonrpc": "2.0", "id": id_, **answer}, related=id_)

    async def reply_error(self, id_: Id | None, code: int, message: str) -> None:
        """Answer a client request with a JSON-RPC error."""
        await self.client.send(error(id_, code, message), related=id_)

    # ------------------------------------------------------------ from the client

    async def _from_client(self, frame: Frame) -> None:
        if isinstance(frame, Oversized):
            parsed: Message | Malformed | None = oversized(frame, self.config.max_message_bytes)
        elif isinstance(frame, bytes):
            parsed = parse(frame)
        else:
            parsed = classify(frame)
        if parsed is None:
            return
        if isinstance(parsed, Malformed):
            if parsed.answer:
                await self.reply_error(parsed.id, parsed.code, parsed.message)
            return
        if parsed.kind == "request":
            await self._client_request(parsed)
        elif parsed.kind == "notification":
            await self._client_notification(parsed)
        else:
            fut = self._client_waiting.pop(id_key(parsed.id), None)
            if fut is not None and not fut.done():
                fut.set_result(_answer(parsed.data))

    async def _client_request(self, msg: Message) -> None:
        method = msg.method
        key = id_key(msg.id)
        if key in self._tasks or key in self._routes:
            # Two answers with one id could not be told apart: the second request is refused.
            await self.reply_error(msg.id, INVALID_REQUEST, f"Invalid Request: id {msg.id!r} is already in use by a pending request")
            return
        if method == "initialize":
            if self._init_started:
                await self.reply_error(msg.id, INVALID_REQUEST, "Invalid Request: the session is already initialised")
                return
            self._init_started = True
            self._start(msg, self._initialize(msg))
        elif method == "server/discover":
            # This proxy speaks the initialize handshake; clients fall back to it on this answer.
            await self.reply_error(msg.id, METHOD_NOT_FOUND, "Method not found: server/discover (use initialize)")
        elif method == "ping" and (self.gateway or not self._initialized):
            await self.reply(msg.id, {"result": {}})
        elif not self._initialized:
            await self.reply_error(msg.id, INVALID_REQUEST, f"Invalid Request: {method} before initialize completed")
        elif method == "tools/call":
            self._start(msg, self._tools_call(msg))
        elif method == "tools/list":
            self._start(msg, self._tools_list(msg))
        elif self.gateway:
            self._start(msg, _gateway.handle(self, msg))
        else:
            await self.relay(self.servers[0], msg, self.post_for(msg))

    def _start(self, msg: Message, coro: Coroutine[Any, Any, None]) -> None:
        """Handle a request in its own task; whatever happens, the client gets an answer (unless it cancelled)."""
        key = id_key(msg.id)

        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.admission.say(f"internal error on {msg.method}: {type(exc).__name__}: {exc}")
                await self.reply_error(msg.id, INTERNAL_ERROR, f"Internal error in the Tether proxy: {type(exc).__name__}")

        task = asyncio.create_task(run())
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None) if self._tasks.get(key) is _t else None)

    async def _client_notification(self, msg: Message) -> None:
        method, params = msg.method, msg.params
        if method == "notifications/cancelled":
            rid = params.get("requestId")
            key = id_key(rid) if isinstance(rid, str | int | float) and not isinstance(rid, bool) else None
            task = self._tasks.get(key)
            server = self._routes.pop(key, None)
            if server is not None:
                waiter = server.waiting.pop(key, None)
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
            elif not self.gateway:
                await self.servers[0].link.send(msg.data)
            return
        for server in self.servers:
            if server.alive and server.init is not None:
                await server.link.send(msg.data)
        if method == "notifications/initialized":
            self._spawn(self._first_listing())

    async def _first_listing(self) -> None:
        with contextlib.suppress(Exception):
            await self.catalog.refresh(self.fetch_all)

    # ------------------------------------------------------------ forwarding to a server

    def post_for(self, msg: Message) -> Post | None:
        """What must happen to a server's answer before the client reads it."""
        method, params = msg.method, msg.params
        if method == "resources/read":
            return lambda answer: self.admission.record_contents(answer, f"mcp resource {params.get('uri')}")
        if method == "prompts/get":
            return lambda answer: self.admission.record_prompt(answer, f"mcp prompt {params.get('name')}")
        if method == "tasks/result":
            return lambda answer: self.admission.record_task_result(str(params.get("taskId")), answer)
        return None

    async def relay(self, server: ServerConn, msg: Message, post: Post | None, params: dict[str, Any] | None = None) -> None:
        """Forward a client request; its answer goes back under the client's id."""
        if not server.alive:
            await self.reply_error(msg.id, INTERNAL_ERROR, f"the MCP server {server.label} has exited")
            return
        key = id_key(msg.id)
        server.waiting[key] = Relay(msg.id, post)
        self._routes[key] = server
        await server.link.send(msg.data if params is None else {**msg.data, "params": params})

    async def call_server(self, server: ServerConn, id_: Id, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and wait for the answer; :class:`UpstreamFailure` when none comes."""
        if not server.alive:
            raise UpstreamFailure(f"the MCP server {server.label} has exited{_status(server)}")
        key = id_key(id_)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        server.waiting[key] = fut
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
            if server.waiting.get(key) is fut:
                del server.waiting[key]
            if self._routes.get(key) is server:
                del self._routes[key]
        if answer is None:
            raise UpstreamFailure(f"the MCP server {server.label} failed: it exited{_status(server)}")
        return answer

    async def fetch_all(self, server: ServerConn, method: str, key: str) -> list[Any]:
        """Every item of a paginated list (``tools/list`` ...), following cursors."""
        items: list[Any] = []
        cursor: Any = None
        for _ in range(1000):
            answer = await self.call_server(
                server, self._new_id(), method, {"cursor": cursor} if cursor else {}, self.config.call_timeout_s
            )
            result = answer.get("result")
            if not isinstance(result, dict):
                raise UpstreamFailure(f"{method} failed: {answer.get('error')}")
            page = result.get(key)
            items.extend(page if isinstance(page, list) else [])
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    # ------------------------------------------------------------ initialize, tools

    async def _initialize(self, msg: Message) -> None:
        params = msg.params
        caps = params.get("capabilities")
        self._client_caps = caps if isinstance(caps, dict) else {}
        if isinstance(caps, dict):
            params = {**params, "capabilities": without_task_requests(caps)}
        timeout = max(self.config.call_timeout_s, 30.0)
        answers = await asyncio.gather(
            *(self.call_server(s, self._new_id(), "initialize", params, timeout) for s in self.servers), return_exceptions=True
        )
        for server, answer in zip(self.servers, answers, strict=True):
            if isinstance(answer, BaseException) or not isinstance(answer.get("result"), dict):
                why = answer if isinstance(answer, BaseException) else (answer.get("error") or {}).get("message", answer)
                self.admission.say(f"the MCP server {server.label} did not initialise: {why}")
                if not self.gateway:
                    await self.reply(msg.id, answer if isinstance(answer, dict) and "error" in answer else _init_failed(server, why))
                    return
                continue
            server.init = answer["result"]
        ready = [s for s in self.servers if s.init is not None]
        if not ready:
            await self.reply_error(msg.id, INTERNAL_ERROR, "none of the gateway's MCP servers could be initialised")
            return
        shown = {s.name: self._instructions(s) for s in ready}
        if self.gateway:
            result = _gateway.merge_initialize(ready, shown, params, self.gateway_info)
        else:
            result = dict(ready[0].init or {})
            if shown[ready[0].name] is None:
                result.pop("instructions", None)
        self._initialized = True
        await self.reply(msg.id, {"result": result})

    def _instructions(self, server: ServerConn) -> str | None:
        """The server's instructions if the client may see them (pinned like tool definitions), recorded as a source."""
        init = server.init or {}
        text = init.get("instructions") if isinstance(init.get("instructions"), str) else None
        server.instructions = ToolDefinition(INSTRUCTIONS, {"instructions": text})
        pins = server.gate.pins
        if pins is not None and not pins.is_new and pins.sync([server.instructions])[INSTRUCTIONS] != "pinned":
            self.admission.say(f"the instructions of {server.label} changed since they were pinned; withheld (tether mcp pins list)")
            return None
        if text:
            trusted = self.catalog.instructions_label(server)
            what = "approved by a human" if trusted else "not reviewed by a human"
            if not self.admission.add_source(
                text, f"mcp server instructions of {server.label} ({what})", TRUSTED if trusted else UNTRUSTED
            ):
                return None
        return text

    async def _tools_list(self, msg: Message) -> None:
        if msg.params.get("cursor"):
            await self.reply(msg.id, {"result": {"tools": []}})  # the proxy lists everything in one page
            return
        try:
            tools = await self.catalog.refresh(self.fetch_all)
        except UpstreamFailure as exc:
            await self.reply_error(msg.id, INTERNAL_ERROR, f"could not list tools: {exc}")
            return
        await self.reply(msg.id, {"result": {"tools": tools}})

    async def _tools_call(self, msg: Message) -> None:
        params = msg.params
        name, args = params.get("name"), params.get("arguments")
        args = {} if args is None else args
        if not isinstance(name, str) or not isinstance(args, dict):
            await self.reply_error(msg.id, INVALID_PARAMS, "Invalid params: tools/call needs a string name and an object of arguments")
            return
        if not self.catalog.listed.is_set():
            with contextlib.suppress(UpstreamFailure):
                await self.catalog.refresh(self.fetch_all)
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        call = ToolCall(name, args)
        target = self.catalog.split(name)

        async def forward() -> dict[str, Any]:
            if target is None:
                raise UpstreamFailure(f"no MCP server behind this proxy offers a tool named {name!r}")
            server, own = target
            out = params if own == name else {**params, "name": own}
            answer = await self.call_server(server, msg.id, "tools/call", out, self.config.call_timeout_s)
            task = answer.get("result", {}).get("task") if isinstance(answer.get("result"), dict) else None
            if isinstance(task, dict) and isinstance(task.get("taskId"), str):
                self.catalog.task_owners[task["taskId"]] = server
            return answer

        answer = await self.admission.run(call, request_id=msg.id, progress_token=token, forward=forward)
        await self.reply(msg.id, answer)

    # ------------------------------------------------------------ from a server

    async def _read_server(self, server: ServerConn) -> None:
        try:
            while True:
                frame = await server.link.recv()
                if frame is None:
                    break
                await self._from_server(server, frame)
        finally:
            server.alive = False
            if isinstance(server.link, ProcessLink):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(server.link.proc.wait(), 1.0)
            if server.init is not None or server.waiting:
                self.admission.say(f"the MCP server {server.label} has exited{_status(server)}")
            for key, waiter in list(server.waiting.items()):
                server.waiting.pop(key, None)
                if isinstance(waiter, asyncio.Future):
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    self._routes.pop(key, None)
                    await self.reply_error(waiter.client_id, INTERNAL_ERROR, f"the MCP server {server.label} has exited{_status(server)}")

    async def _from_server(self, server: ServerConn, frame: Frame) -> None:
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
            self.admission.say(f"{server.label} sent a malformed message ({parsed.message}); dropped")
            await self._fail_answer(server, parsed.id, f"the server sent a malformed answer ({parsed.message})")
            return
        if parsed.kind == "response":
            await self._server_answer(server, parsed.id, _answer(parsed.data))
        elif parsed.kind == "request":
            self._spawn(self._server_request(server, parsed))
        else:
            await self._server_notification(server, parsed)

    async def _fail_answer(self, server: ServerConn, id_: Id | None, why: str) -> None:
        if id_ is not None and id_key(id_) in server.waiting:
            await self._server_answer(server, id_, {"error": {"code": INTERNAL_ERROR, "message": f"Tether: {why}"}})

    async def _server_answer(self, server: ServerConn, id_: Id, answer: dict[str, Any]) -> None:
        key = id_key(id_)
        waiter = server.waiting.pop(key, None)
        if waiter is None:
            return  # an answer nobody waits for (cancelled, timed out): dropped
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

    async def _server_request(self, server: ServerConn, msg: Message) -> None:
        """A server asks the client (sampling, elicitation, roots, ping ...): forwarded under a proxy id."""
        own = id_key(msg.id)
        pid = self._new_id()
        server.remapped[own] = pid
        params = dict(msg.params)
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            token = self._new_id()
            self._server_tokens[id_key(token)] = (server, meta["progressToken"])
            params["_meta"] = {**meta, "progressToken": token}

        async def to_client() -> dict[str, Any]:
            answer = await self._request_client(pid, msg.method, params, related=None, timeout=None)
            return answer if answer is not None else {"error": {"code": INTERNAL_ERROR, "message": "the client did not answer"}}

        try:
            if msg.method == SAMPLING:
                answer = await self.admission.sampling(self.catalog.pseudo_tool(server, SAMPLING), params, to_client, related=None)
            elif msg.method == ELICITATION:
                answer = await self.admission.elicitation(self.catalog.pseudo_tool(server, ELICITATION), params, to_client, related=None)
            else:
                answer = await to_client()
        except Exception as exc:
            answer = {"error": {"code": INTERNAL_ERROR, "message": f"Tether: {type(exc).__name__}: {exc}"}}
        finally:
            server.remapped.pop(own, None)
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

    async def _server_notification(self, server: ServerConn, msg: Message) -> None:
        method, params = msg.method, msg.params
        if method == "notifications/cancelled":
            rid = params.get("requestId")
            pid = server.remapped.get(id_key(rid)) if isinstance(rid, str | int) and not isinstance(rid, bool) else None
            if pid is not None:
                fut = self._client_waiting.get(id_key(pid))
                if fut is not None and not fut.done():
                    fut.set_result({"error": {"code": INTERNAL_ERROR, "message": "cancelled by the server"}})
                await self.client.send({**msg.data, "params": {**params, "requestId": pid}})
            return
        if method == "notifications/message":
            data = params.get("data")
            text = data if isinstance(data, str) else _json(data)
            if not self.admission.add_source(text, f"mcp log from {server.label} ({params.get('level')}, {params.get('logger') or '-'})"):
                return
        elif method == "notifications/resources/updated":
            what = " ".join(str(params.get(k)) for k in ("uri", "title") if params.get(k) is not None)
            if not self.admission.add_source(what, f"mcp resource update from {server.label}"):
                return
        elif method == "notifications/tools/list_changed":
            self._spawn(self._first_listing())
        await self.client.send(msg.data)


class _Expired(Exception):
    """A request's time ran out."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _answer(data: dict[str, Any]) -> dict[str, Any]:
    return {"result": data["result"]} if "result" in data else {"error": data.get("error")}


def _status(server: ServerConn) -> str:
    link = server.link
    if isinstance(link, ProcessLink) and link.proc.returncode is not None:
        return f" (status {link.proc.returncode})"
    return ""


def _init_failed(server: ServerConn, why: object) -> dict[str, Any]:
    return {"error": {"code": INTERNAL_ERROR, "message": f"Tether: the MCP server {server.label} did not initialise: {why}"}}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
