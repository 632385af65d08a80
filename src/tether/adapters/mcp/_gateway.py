"""Gateway mode: several servers behind one endpoint, under one Tether session and one provenance index.

A routing strategy (:class:`~._routing.Routing`). Names are namespaced
``<server>__<name>`` (tools, prompts, and the policy's pseudo-tools such as
``<server>__sampling/createMessage``). Resource URIs stay the servers' own
(they also appear inside tool results); a read, subscribe or completion goes
to the server that listed the URI or whose template matches it. Lists are
gathered from every server and answered in one page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tether import __version__
from tether.adapters.mcp._catalog import Catalog, ServerConn
from tether.adapters.mcp._config import UpstreamFailure
from tether.adapters.mcp._guarding import Guarding
from tether.adapters.mcp._jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Message, obj
from tether.adapters.mcp._peer import Peer
from tether.adapters.mcp._protocol import GUARDED_REQUESTS, guarded_args
from tether.adapters.mcp._routing import Handler, InitFailure

_LISTS = {
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resources", "resourceTemplates"),
    "tasks/list": ("tasks", "tasks"),
}


class GatewayRouting:
    """Routes a gateway's requests (other than ``initialize`` and ``tools/*``) to the server each names."""

    def __init__(self, peer: Peer, guarding: Guarding, catalog: Catalog, info: Mapping[str, Any]) -> None:
        self._peer = peer
        self._guarding = guarding
        self._catalog = catalog
        self._info = dict(info)

    def handlers(self) -> Mapping[str, Handler]:
        """Every method a gateway answers or routes."""
        return {
            "ping": self._ping,
            **dict.fromkeys(_LISTS, self._merged_list),
            "prompts/get": self._prompt,
            **dict.fromkeys(("resources/read", "resources/subscribe", "resources/unsubscribe"), self._resource),
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
            **dict.fromkeys(("tasks/get", "tasks/result", "tasks/cancel"), self._task),
        }

    async def fallback(self, msg: Message) -> None:
        """A method MCP does not define is refused even when the policy names it: no single server owns it."""
        self._guarding.refused(
            "client",
            "unknown-method",
            msg.method,
            f"refused the client's request {msg.method!r}: the gateway cannot route it to one server",
        )
        await self._peer.reply_error(msg.id, METHOD_NOT_FOUND, f"Method not found: the gateway cannot route {msg.method!r} to one server")

    # ------------------------------------------------------------ handlers

    async def _ping(self, msg: Message) -> None:
        await self._peer.reply(msg.id, {"result": {}})

    async def _prompt(self, msg: Message) -> None:
        params = msg.params
        target = self._catalog.split(str(params.get("name", "")))
        if target is None:
            await self._peer.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no prompt named {params.get('name')!r}")
            return
        await self._checked_relay(target[0], msg, {**params, "name": target[1]})

    async def _checked_relay(self, server: ServerConn, msg: Message, params: dict[str, Any] | None = None) -> None:
        """Relay to ``server``; a request that carries data is checked first as ``<server>__<method>``."""
        sent = msg.params if params is None else params
        if msg.method in GUARDED_REQUESTS:
            tool = self._catalog.pseudo_tool(server, msg.method)
            refusal = await self._guarding.request(tool, guarded_args(msg.method, sent), related=msg.id)
            if refusal is not None:
                await self._peer.reply(msg.id, refusal)
                return
        await self._peer.relay(server, msg, self._guarding.post_for(msg, server.label), params)

    async def _resource(self, msg: Message) -> None:
        uri = msg.params.get("uri")
        owner = self._catalog.resource_owner(str(uri or ""))
        if owner is None:
            await self._peer.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no server behind this gateway lists {uri!r}")
            return
        await self._checked_relay(owner, msg)

    async def _task(self, msg: Message) -> None:
        task_id = msg.params.get("taskId")
        owner = self._catalog.task_owners.get(str(task_id))
        if owner is None:
            await self._peer.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no task {task_id!r} behind this gateway")
            return
        await self._peer.relay(owner, msg, self._guarding.post_for(msg, owner.label))

    async def _set_level(self, msg: Message) -> None:
        for server in _offering(self._peer.servers, "logging"):
            try:
                await self._peer.call_server(server, self._peer.new_id(), msg.method, msg.params, self._peer.config.call_timeout_s)
            except UpstreamFailure as exc:
                self._guarding.say(f"logging/setLevel on {server.label}: {exc}")
        await self._peer.reply(msg.id, {"result": {}})

    async def _merged_list(self, msg: Message) -> None:
        capability, key = _LISTS[msg.method]
        if msg.params.get("cursor"):
            await self._peer.reply(msg.id, {"result": {key: []}})  # everything was in the first page
            return
        merged: list[Any] = []
        catalog = self._catalog
        for server in _offering(self._peer.servers, capability):
            try:
                items = await self._peer.fetch_all(server, msg.method, key)
            except UpstreamFailure as exc:
                self._guarding.say(f"{msg.method} on {server.label}: {exc}")
                continue
            if msg.method == "prompts/list":
                merged.extend(catalog.learn_prompts(server, items))
            elif msg.method.startswith("resources/"):
                merged.extend(catalog.learn_resources(server, items, templates=msg.method == "resources/templates/list"))
            else:
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("taskId"), str):
                        catalog.task_owners.setdefault(item["taskId"], server)
                merged.extend(items)
        # The merged list is text the model reads (names, titles, descriptions): recorded before it is shown.
        if not self._guarding.record_listing({"result": {key: merged}}, f"mcp gateway {msg.method}"):
            await self._peer.reply_error(msg.id, INTERNAL_ERROR, "Tether: the list could not be logged; it is withheld")
            return
        await self._peer.reply(msg.id, {"result": {key: merged}})

    async def _complete(self, msg: Message) -> None:
        params = msg.params
        ref = obj(params.get("ref"))
        if ref.get("type") == "ref/prompt":
            target = self._catalog.split(str(ref.get("name", "")))
            if target is not None:
                await self._checked_relay(target[0], msg, {**params, "ref": {**ref, "name": target[1]}})
                return
        elif ref.get("type") == "ref/resource":
            owner = self._catalog.resource_owner(str(ref.get("uri", "")))
            if owner is not None:
                await self._checked_relay(owner, msg)
                return
        await self._peer.reply_error(
            msg.id, INVALID_PARAMS, "Invalid params: the completion's reference names no server behind this gateway"
        )

    # ------------------------------------------------------------ initialize

    def refuse_initialize(self, failed: Sequence[InitFailure], ready: Sequence[ServerConn]) -> dict[str, Any] | None:
        """A gateway serves whichever servers initialised; with none, the client is refused."""
        if ready:
            return None
        return {"error": {"code": INTERNAL_ERROR, "message": "none of the gateway's MCP servers could be initialised"}}

    def initialize_result(self, ready: Sequence[ServerConn], shown: Mapping[str, str | None], params: Mapping[str, Any]) -> dict[str, Any]:
        """One ``initialize`` result for the gateway: the union of capabilities, every server's instructions."""
        requested = params.get("protocolVersion")
        versions = [str((s.init or {}).get("protocolVersion", "")) for s in ready]
        version = requested if all(v == requested for v in versions) else min(versions)
        caps: dict[str, Any] = {}
        for server in ready:
            _union(caps, server.capabilities)
        # Servers come and go (a crashed one is restarted): the client is told when the tool list changes.
        tools = caps.get("tools")
        caps["tools"] = {**(tools if isinstance(tools, dict) else {}), "listChanged": True}
        texts = [f"[{s.name}] {shown[s.name]}" for s in ready if shown.get(s.name)]
        names = ", ".join(s.name for s in ready)
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": {
                "name": str(self._info.get("name") or "tether-gateway"),
                "title": str(self._info.get("title") or f"Tether gateway ({names})"),
                "version": __version__,
            },
        }
        if texts:
            result["instructions"] = "\n\n".join(texts)
        return result


def _offering(servers: Iterable[ServerConn], capability: str) -> list[ServerConn]:
    return [s for s in servers if s.alive and s.init is not None and capability in s.capabilities]


def _union(into: dict[str, Any], caps: Mapping[str, Any]) -> None:
    for key, value in caps.items():
        if isinstance(value, dict):
            sub = into.get(key)
            if not isinstance(sub, dict):
                sub = into[key] = {}
            _union(sub, value)
        elif value is True or key not in into:
            into[key] = value
