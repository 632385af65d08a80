"""The proxy's dispatch tables: which MCP method is handled how, and the protocol's lifecycle.

The tables are allow-lists (:mod:`._protocol`): a client request the
protocol does not define is refused (unless the policy names it), a
server's unknown request is refused and its unknown notification dropped,
and a client notification that is not one (a request sent without an id)
is dropped. Requests leave with only the ``params`` members their method
defines. Guarded here: ``initialize`` (pins on the server's instructions),
``tools/list`` (pins), ``tools/call`` (the guard), the server's sampling,
elicitation and roots requests (the guard), and what the model reads
(recorded). The routing strategy (:mod:`._routing`, :mod:`._gateway`) adds
the methods it relays or answers. As in the MCP SDK's ``request_handlers``,
each method is one entry in a table, and :class:`~._peer.Peer` does the
JSON-RPC plumbing around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tether._decision import ToolCall
from tether.adapters.mcp._catalog import Catalog, ServerConn
from tether.adapters.mcp._config import ELICITATION, ROOTS, SAMPLING, UpstreamFailure
from tether.adapters.mcp._content import listing_text
from tether.adapters.mcp._guarding import Guarding, without_task_requests
from tether.adapters.mcp._jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Message
from tether.adapters.mcp._peer import Peer, ToClient, source_of
from tether.adapters.mcp._pins import INSTRUCTIONS, ToolDefinition
from tether.adapters.mcp._protocol import (
    CLIENT_NOTIFICATIONS,
    CLIENT_REQUESTS,
    SERVER_NOTIFICATIONS,
    SERVER_REQUESTS,
    dropped_meta,
    reduce_notification,
    reduce_request,
    unknown_params,
    with_params,
)
from tether.adapters.mcp._routing import Handler, InitFailure, Routing
from tether.flow import TRUSTED, UNTRUSTED

ServerHandler = Callable[[str, dict[str, Any], ToClient], Awaitable[dict[str, Any]]]
"""Answers a server's request, given its policy name (``<server>__sampling/createMessage`` in a gateway)."""

NotificationHandler = Callable[[ServerConn, Mapping[str, Any]], bool]
"""Records a server notification; False withholds it from the client (the log could not take it)."""


class Dispatcher:
    """The handlers of one proxy run, by method; the :class:`~._peer.Handlers` its peer calls."""

    def __init__(self, peer: Peer, guarding: Guarding, catalog: Catalog, routing: Routing) -> None:
        self._peer = peer
        self._guarding = guarding
        self._catalog = catalog
        self._routing = routing
        self._init_started = False
        self._initialized = False
        self._requests: dict[str, Handler] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            **routing.handlers(),
        }
        self._server_requests: dict[str, ServerHandler] = {
            SAMPLING: lambda tool, params, to_client: guarding.sampling(tool, params, to_client, related=None),
            ELICITATION: lambda tool, params, to_client: guarding.elicitation(tool, params, to_client, related=None),
            ROOTS: lambda tool, params, to_client: guarding.roots(tool, params, to_client, related=None),
        }
        self._server_notifications: dict[str, NotificationHandler] = {
            "notifications/tasks/status": self._task_status,
            "notifications/message": self._server_log,
            "notifications/resources/updated": self._resource_updated,
            "notifications/tools/list_changed": self._tools_changed,
        }

    # ------------------------------------------------------------ from the client

    async def client_request(self, msg: Message) -> None:
        """Answer a client request now, or start its handler in its own task; an unknown method is refused."""
        method = msg.method
        members = CLIENT_REQUESTS.get(method)
        if members is not None:
            reduced, dropped = reduce_request(msg.params, members)
            if dropped:
                self._guarding.refused(
                    "client",
                    "dropped-members",
                    method,
                    f"dropped {', '.join(map(repr, dropped))} from the client's {method}: not a member Tether checks and forwards",
                )
            meta = dropped_meta(msg.params)
            if meta:
                self._guarding.refused(
                    "client", "dropped-meta", method, f"dropped _meta member(s) {', '.join(map(repr, meta))} from the client's {method}"
                )
            msg = with_params(msg, reduced)
        if method == "initialize":
            if self._init_started:
                await self._peer.reply_error(msg.id, INVALID_REQUEST, "Invalid Request: the session is already initialised")
                return
            self._init_started = True
            self._peer.start(msg, self._initialize(msg))
        elif method == "server/discover":
            # This proxy speaks the initialize handshake; clients fall back to it on this answer.
            await self._peer.reply_error(msg.id, METHOD_NOT_FOUND, "Method not found: server/discover (use initialize)")
        elif not self._initialized:
            if method == "ping":
                await self._peer.reply(msg.id, {"result": {}})
            else:
                self._guarding.refused(
                    "client", "before-initialize", method, f"refused the client's {method!r}: sent before initialize completed"
                )
                await self._peer.reply_error(msg.id, INVALID_REQUEST, f"Invalid Request: {method} before initialize completed")
        elif method in self._requests:
            self._peer.start(msg, self._requests[method](msg))
        elif members is None and self._catalog.policy_names(method):
            meta = dropped_meta(msg.params)
            if meta:
                self._guarding.refused(
                    "client", "dropped-meta", method, f"dropped _meta member(s) {', '.join(map(repr, meta))} from the client's {method}"
                )
            self._peer.start(msg, self._routing.fallback(with_params(msg, unknown_params(msg.params))))
        else:
            self._guarding.refused(
                "client",
                "unknown-method",
                method,
                f"refused the client's request {method!r}: not a method Tether knows (nor one the policy names)",
            )
            await self._peer.reply_error(msg.id, METHOD_NOT_FOUND, f"Method not found: Tether does not relay {method!r}")

    def pass_notification(self, msg: Message) -> Message | None:
        """The client's notification as it may pass on (reduced to its members), or None: dropped.

        A request method sent as a notification is dropped here: it would reach every server
        with no id to answer and without the check its request gets.
        """
        members = CLIENT_NOTIFICATIONS.get(msg.method)
        if members is None:
            what = "request-as-notification" if msg.method in CLIENT_REQUESTS or msg.method in SERVER_REQUESTS else "unknown-notification"
            self._guarding.refused(
                "client", what, msg.method, f"dropped the client's notification {msg.method!r}: not a notification Tether passes on"
            )
            return None
        return with_params(msg, reduce_notification(msg.params, members))

    async def client_notification(self, msg: Message) -> None:
        """Once the client is initialised, the tools are listed (so pins are known before the first call)."""
        if msg.method == "notifications/initialized":
            self._peer.spawn(self._relist())

    # ------------------------------------------------------------ from a server

    async def server_request(self, server: ServerConn, method: str, params: dict[str, Any], to_client: ToClient) -> dict[str, Any]:
        """Guard a server's sampling, elicitation and roots requests; pass ``ping`` on; refuse any other
        unless the policy names it (then it is checked like a call first)."""
        tool = self._catalog.pseudo_tool(server, method)
        handler = self._server_requests.get(method)
        if handler is not None:
            return await handler(tool, params, to_client)
        if method in SERVER_REQUESTS:
            return await to_client()
        if not self._catalog.policy_names(tool):
            self._guarding.refused(
                source_of(server),
                "unknown-method",
                method,
                f"refused {server.label}'s request {method!r}: not a method Tether knows (nor one the policy names)",
            )
            return {"error": {"code": METHOD_NOT_FOUND, "message": f"Method not found: Tether does not relay {method!r}"}}
        refusal = await self._guarding.request(tool, {k: v for k, v in params.items() if k != "_meta"}, related=None)
        return refusal if refusal is not None else await to_client()

    async def server_notification(self, server: ServerConn, msg: Message) -> bool:
        """Record what the model will read; False withholds the notification from the client."""
        if msg.method not in SERVER_NOTIFICATIONS:
            what = "request-as-notification" if msg.method in SERVER_REQUESTS or msg.method in CLIENT_REQUESTS else "unknown-notification"
            self._guarding.refused(
                source_of(server),
                what,
                msg.method,
                f"dropped {server.label}'s notification {msg.method!r}: not a notification Tether passes on",
            )
            return False
        handler = self._server_notifications.get(msg.method)
        return True if handler is None else handler(server, msg.params)

    def _server_log(self, server: ServerConn, params: Mapping[str, Any]) -> bool:
        data = params.get("data")
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
        return self._guarding.add_source(text, f"mcp log from {server.label} ({params.get('level')}, {params.get('logger') or '-'})")

    def _task_status(self, server: ServerConn, params: Mapping[str, Any]) -> bool:
        text = listing_text(params)
        return self._guarding.add_source(text, f"mcp task status from {server.label}") if text else True

    def _resource_updated(self, server: ServerConn, params: Mapping[str, Any]) -> bool:
        what = " ".join(str(params.get(k)) for k in ("uri", "title") if params.get(k) is not None)
        return self._guarding.add_source(what, f"mcp resource update from {server.label}")

    def _tools_changed(self, server: ServerConn, params: Mapping[str, Any]) -> bool:
        self._peer.spawn(self._relist())
        return True

    async def _relist(self) -> None:
        with contextlib.suppress(Exception):
            await self._catalog.refresh(self._peer.fetch_all)

    # ------------------------------------------------------------ initialize

    async def _initialize(self, msg: Message) -> None:
        params = msg.params
        caps = params.get("capabilities")
        self._peer.client_capabilities = caps if isinstance(caps, dict) else {}
        if isinstance(caps, dict):
            params = {**params, "capabilities": without_task_requests(caps)}
        self._peer.client_init = dict(params)
        timeout = max(self._peer.config.call_timeout_s, 30.0)
        servers = self._peer.servers
        answers = await asyncio.gather(
            *(self._peer.call_server(s, self._peer.new_id(), "initialize", params, timeout) for s in servers), return_exceptions=True
        )
        failed: list[InitFailure] = []
        for server, answer in zip(servers, answers, strict=True):
            if isinstance(answer, BaseException) or not isinstance(answer.get("result"), dict):
                why = answer if isinstance(answer, BaseException) else (answer.get("error") or {}).get("message", answer)
                self._guarding.say(f"the MCP server {server.label} did not initialise: {why}")
                if server.alive:  # it runs but refused: an exit was already noted by the supervisor
                    server.last_error = f"did not initialise: {why}"
                failed.append((server, answer, why))
            else:
                server.init = answer["result"]
                server.state, server.up_since = "up", time.monotonic()
        ready = [s for s in servers if s.init is not None]
        refusal = self._routing.refuse_initialize(failed, ready)
        if refusal is not None:
            await self._peer.reply(msg.id, refusal)
            return
        shown = {s.name: self._instructions(s) for s in ready}
        result = self._routing.initialize_result(ready, shown, params)
        self._initialized = self._peer.client_ready = True
        await self._peer.reply(msg.id, {"result": result})

    def _instructions(self, server: ServerConn) -> str | None:
        """The server's instructions if the client may see them (pinned like tool definitions), recorded as a source."""
        init = server.init or {}
        text = init.get("instructions") if isinstance(init.get("instructions"), str) else None
        server.instructions = ToolDefinition(INSTRUCTIONS, {"instructions": text})
        pins = server.pins.book
        if pins is not None and not pins.is_new and pins.sync([server.instructions])[INSTRUCTIONS] != "pinned":
            self._guarding.say(f"the instructions of {server.label} changed since they were pinned; withheld (tether mcp pins list)")
            if text:  # withheld from the client, still the server's words: untrusted (see Catalog._record_held)
                self._guarding.add_source_event(
                    text, f"mcp server instructions of {server.label} held for review (not shown to the client)"
                )
            return None
        if text:
            trusted = self._catalog.instructions_label(server)
            what = "approved by a human" if trusted else "not reviewed by a human"
            event = self._guarding.add_source_event(
                text, f"mcp server instructions of {server.label} ({what})", TRUSTED if trusted else UNTRUSTED
            )
            if event is None:
                return None
            if trusted and self._catalog.scope is not None:
                self._catalog.scope.note(event, server.name)
        return text

    # ------------------------------------------------------------ tools

    async def _tools_list(self, msg: Message) -> None:
        if msg.params.get("cursor"):
            await self._peer.reply(msg.id, {"result": {"tools": []}})  # the proxy lists everything in one page
            return
        try:
            tools = await self._catalog.refresh(self._peer.fetch_all)
        except UpstreamFailure as exc:
            await self._peer.reply_error(msg.id, INTERNAL_ERROR, f"could not list tools: {exc}")
            return
        await self._peer.reply(msg.id, {"result": {"tools": tools}})

    async def _tools_call(self, msg: Message) -> None:
        params = msg.params
        name, args = params.get("name"), params.get("arguments")
        args = {} if args is None else args
        if not isinstance(name, str) or not isinstance(args, dict):
            await self._peer.reply_error(
                msg.id, INVALID_PARAMS, "Invalid params: tools/call needs a string name and an object of arguments"
            )
            return
        if not self._catalog.listed.is_set():
            with contextlib.suppress(UpstreamFailure):
                await self._catalog.refresh(self._peer.fetch_all)
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        target = self._catalog.split(name)

        async def forward() -> dict[str, Any]:
            if target is None:
                raise UpstreamFailure(f"no MCP server behind this proxy offers a tool named {name!r}")
            server, own = target
            out = {**params, "name": own}  # already reduced to what the guard checked (client_request)
            answer = await self._peer.call_server(server, msg.id, "tools/call", out, self._peer.config.call_timeout_s)
            task = answer.get("result", {}).get("task") if isinstance(answer.get("result"), dict) else None
            if isinstance(task, dict) and isinstance(task.get("taskId"), str):
                self._catalog.task_owners[task["taskId"]] = server
            return answer

        answer = await self._guarding.run(ToolCall(name, args), request_id=msg.id, progress_token=token, forward=forward)
        await self._peer.reply(msg.id, answer)
