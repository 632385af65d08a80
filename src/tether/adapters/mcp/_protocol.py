"""The protocol layer's allow-lists: which methods pass in which direction, and which members of their params.

The policy is default-deny; so is the proxy's protocol layer. A method is
handled only when it is named here (or, for a method MCP does not define,
when the policy names it as a pseudo-tool, see :func:`relayed_method`), and a
request leaves for a server only with the members of ``params`` this table
names for it: what the guard checked, plus what the protocol needs to work
(ids the server issued, cursors, a progress token in ``_meta``). Any other
member is dropped (and logged) rather than refused: real clients add members
of their own (the TypeScript SDK sends ``task`` with ``tasks/get``), and
dropping them is enough to keep unchecked data from leaving. A notification
is reduced the same way, or dropped whole when its method is not a
notification of that direction (a request sent without an id included).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tether.adapters.mcp._config import ELICITATION, ROOTS, SAMPLING
from tether.adapters.mcp._jsonrpc import Message

META_KEYS = ("progressToken",)
"""The ``_meta`` members a forwarded request keeps: a progress token (the protocol's own, answered in kind)."""

CLIENT_REQUESTS: Mapping[str, tuple[str, ...]] = {
    "initialize": ("protocolVersion", "capabilities", "clientInfo"),
    "ping": (),
    "tools/list": ("cursor",),
    "tools/call": ("name", "arguments", "task"),
    "prompts/list": ("cursor",),
    "prompts/get": ("name", "arguments"),
    "resources/list": ("cursor",),
    "resources/templates/list": ("cursor",),
    "resources/read": ("uri",),
    "resources/subscribe": ("uri",),
    "resources/unsubscribe": ("uri",),
    "completion/complete": ("ref", "argument", "context"),
    "logging/setLevel": ("level",),
    "tasks/list": ("cursor",),
    "tasks/get": ("taskId",),
    "tasks/result": ("taskId",),
    "tasks/cancel": ("taskId",),
}
"""The client's requests the proxy knows, with the ``params`` members each may carry."""

CLIENT_NOTIFICATIONS: Mapping[str, tuple[str, ...]] = {
    "notifications/initialized": (),
    "notifications/cancelled": ("requestId", "reason"),
    "notifications/progress": ("progressToken", "progress", "total", "message"),
    "notifications/roots/list_changed": (),
}
"""The client's notifications the proxy passes on, with their members (the rest is dropped)."""

SERVER_REQUESTS = frozenset({SAMPLING, ELICITATION, ROOTS, "ping"})
"""A server's requests to the client the proxy knows (the first three are checked by the guard)."""

SERVER_NOTIFICATIONS = frozenset(
    {
        "notifications/message",
        "notifications/progress",
        "notifications/cancelled",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/tasks/status",
        "notifications/elicitation/complete",
    }
)
"""A server's notifications the proxy passes on (what the model reads in them is recorded first)."""

GUARDED_REQUESTS: Mapping[str, tuple[str, ...]] = {
    "resources/read": ("uri",),
    "resources/subscribe": ("uri",),
    "resources/unsubscribe": ("uri",),
    "prompts/get": ("name", "arguments"),
    "completion/complete": ("ref", "argument", "context"),
}
"""Client requests that carry data to a server: each is checked as a call of a pseudo-tool of its
name (``<server>__resources/read`` in a gateway) whose arguments are these members."""

UNRECORDED = frozenset({"completion/complete", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
"""Relayed requests whose answers the model does not read (completion values are shown to the human)."""


def reduce_request(params: Mapping[str, Any], members: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """``params`` with only ``members`` and the protocol's ``_meta``, and the names of the members dropped."""
    dropped = sorted(k for k in params if k not in members and k != "_meta")
    out = {k: params[k] for k in members if k in params}
    meta = reduce_meta(params.get("_meta"))
    if meta:
        out["_meta"] = meta
    return out, dropped


def reduce_meta(meta: Any) -> dict[str, Any]:
    """The members of ``_meta`` the protocol needs (a progress token); other members are dropped, unchecked data."""
    if not isinstance(meta, dict):
        return {}
    return {k: meta[k] for k in META_KEYS if k in meta and isinstance(meta[k], str | int) and not isinstance(meta[k], bool)}


def dropped_meta(params: Mapping[str, Any]) -> list[str]:
    """The names of the ``_meta`` members of ``params`` that :func:`reduce_meta` drops (all of them when ``_meta`` is not an object)."""
    meta = params.get("_meta")
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["(not an object)"]
    kept = reduce_meta(meta)
    return sorted(str(k) for k in meta if k not in kept)


def reduce_notification(params: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """A notification's params with only its members (a notification cannot be refused: the rest is dropped)."""
    return {k: params[k] for k in members if k in params}


def guarded_args(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a guarded request is checked with (the members it sends, ``_meta`` aside)."""
    return {k: params[k] for k in GUARDED_REQUESTS[method] if k in params}


def unknown_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params of a method MCP does not define, relayed because the policy names it: all of them
    are checked as the pseudo-tool's arguments, and ``_meta`` is reduced like any request's."""
    out = {k: v for k, v in params.items() if k != "_meta"}
    meta = reduce_meta(params.get("_meta"))
    if meta:
        out["_meta"] = meta
    return out


def with_params(msg: Message, params: dict[str, Any]) -> Message:
    """``msg`` carrying ``params`` instead of its own (what is forwarded is what was checked)."""
    data = {k: v for k, v in msg.data.items() if k != "params"}
    if params or "params" in msg.data:
        data["params"] = params
    return Message(msg.kind, data)
