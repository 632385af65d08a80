"""Gateway mode: several servers behind one endpoint, under one Tether session and one provenance index.

Names are namespaced ``<server>__<name>`` (tools, prompts, and the policy's
pseudo-tools such as ``<server>__sampling/createMessage``). Resource URIs stay
the servers' own (they also appear inside tool results); a read, subscribe or
completion goes to the server that listed the URI or whose template matches
it. Lists are gathered from every server and answered in one page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tether import __version__
from tether.adapters.mcp._guarding import UpstreamFailure
from tether.adapters.mcp._jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, Message, obj

if TYPE_CHECKING:
    from tether.adapters.mcp._catalog import ServerConn
    from tether.adapters.mcp._router import Router

_LISTS = {
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resources", "resourceTemplates"),
    "tasks/list": ("tasks", "tasks"),
}


async def handle(router: Router, msg: Message) -> None:
    """Answer or route one client request (other than ``initialize`` and ``tools/*``) in gateway mode."""
    method, params = msg.method, msg.params
    catalog = router.catalog
    if method == "ping":
        await router.reply(msg.id, {"result": {}})
    elif method in _LISTS:
        await _merged_list(router, msg)
    elif method == "prompts/get":
        target = catalog.split(str(params.get("name", "")))
        if target is None:
            await router.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no prompt named {params.get('name')!r}")
            return
        await router.relay(target[0], msg, router.post_for(msg), {**params, "name": target[1]})
    elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        owner = catalog.resource_owner(str(params.get("uri", "")))
        if owner is None:
            await router.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no server behind this gateway lists {params.get('uri')!r}")
            return
        await router.relay(owner, msg, router.post_for(msg))
    elif method == "completion/complete":
        await _complete(router, msg)
    elif method == "logging/setLevel":
        for server in _offering(router.servers, "logging"):
            try:
                await router.call_server(server, router._new_id(), method, params, router.config.call_timeout_s)
            except UpstreamFailure as exc:
                router.admission.say(f"logging/setLevel on {server.label}: {exc}")
        await router.reply(msg.id, {"result": {}})
    elif method in ("tasks/get", "tasks/result", "tasks/cancel"):
        owner = catalog.task_owners.get(str(params.get("taskId")))
        if owner is None:
            await router.reply_error(msg.id, INVALID_PARAMS, f"Invalid params: no task {params.get('taskId')!r} behind this gateway")
            return
        await router.relay(owner, msg, router.post_for(msg))
    else:
        await router.reply_error(msg.id, METHOD_NOT_FOUND, f"Method not found: the gateway cannot route {method!r} to one server")


async def _merged_list(router: Router, msg: Message) -> None:
    capability, key = _LISTS[msg.method]
    if msg.params.get("cursor"):
        await router.reply(msg.id, {"result": {key: []}})  # everything was in the first page
        return
    merged: list[Any] = []
    catalog = router.catalog
    for server in _offering(router.servers, capability):
        try:
            items = await router.fetch_all(server, msg.method, key)
        except UpstreamFailure as exc:
            router.admission.say(f"{msg.method} on {server.label}: {exc}")
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
    await router.reply(msg.id, {"result": {key: merged}})


async def _complete(router: Router, msg: Message) -> None:
    params = msg.params
    ref = obj(params.get("ref"))
    if ref.get("type") == "ref/prompt":
        target = router.catalog.split(str(ref.get("name", "")))
        if target is not None:
            await router.relay(target[0], msg, None, {**params, "ref": {**ref, "name": target[1]}})
            return
    elif ref.get("type") == "ref/resource":
        owner = router.catalog.resource_owner(str(ref.get("uri", "")))
        if owner is not None:
            await router.relay(owner, msg, None)
            return
    await router.reply_error(msg.id, INVALID_PARAMS, "Invalid params: the completion's reference names no server behind this gateway")


def _offering(servers: Iterable[ServerConn], capability: str) -> list[ServerConn]:
    return [s for s in servers if s.alive and s.init is not None and capability in s.capabilities]


def merge_initialize(
    servers: list[ServerConn], instructions: Mapping[str, str | None], params: Mapping[str, Any], info: Mapping[str, Any]
) -> dict[str, Any]:
    """One ``initialize`` result for the gateway: the union of capabilities, every server's instructions."""
    requested = params.get("protocolVersion")
    versions = [str((s.init or {}).get("protocolVersion", "")) for s in servers]
    version = requested if all(v == requested for v in versions) else min(versions)
    caps: dict[str, Any] = {}
    for server in servers:
        _union(caps, server.capabilities)
    texts = [f"[{s.name}] {instructions[s.name]}" for s in servers if instructions.get(s.name)]
    names = ", ".join(s.name for s in servers)
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": {
            "name": str(info.get("name") or "tether-gateway"),
            "title": str(info.get("title") or f"Tether gateway ({names})"),
            "version": __version__,
        },
    }
    if texts:
        result["instructions"] = "\n\n".join(texts)
    return result


def _union(into: dict[str, Any], caps: Mapping[str, Any]) -> None:
    for key, value in caps.items():
        if isinstance(value, dict):
            sub = into.get(key)
            if not isinstance(sub, dict):
                sub = into[key] = {}
            _union(sub, value)
        elif value is True or key not in into:
            into[key] = value
