"""The tools (and, in a gateway, prompts and resources) the proxy offers, and which server each belongs to.

One listing goes through the servers' pins: a definition that is new or
changed since it was pinned is hidden and its calls are denied. Definitions
the client is shown are text the model reads, so they are recorded as sources
of the session: **trusted** when a human approved exactly that definition
(``tether mcp pins review`` / ``pins approve``), **untrusted** otherwise (a
first-use pin is not a review). In a gateway every name is
``<server>__<name>``; resource URIs are the servers' own, routed by who
listed them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tether._decision import ToolCall
from tether.adapters.mcp._config import ELICITATION, PSEUDO_TOOLS, SAMPLING
from tether.adapters.mcp._guarding import Guarding
from tether.adapters.mcp._links import Link
from tether.adapters.mcp._lint import Neighbours, lint_definition
from tether.adapters.mcp._pins import INSTRUCTIONS, PinFilter, ToolDefinition
from tether.adapters.mcp._scope import DefinitionScope
from tether.adapters.mcp._upstream import Upstream
from tether.flow import TRUSTED, UNTRUSTED
from tether.monitor import Finding
from tether.policy import Policy

SEP = "__"
"""Separates a gateway server's name from the names it lists (``files__read_file``)."""

MAX_TOOL_NAME = 64
"""Longest tool name MCP clients accept (Claude, Cursor and VS Code cap names at 64 characters)."""


def gateway_tool_names(server: str, names: Sequence[str]) -> dict[str, str]:
    """Each of a gateway server's tool names as the client sees it: ``server__name``, shortened when longer than
    :data:`MAX_TOOL_NAME` to its start plus a hash of the whole name (deterministic, distinct within the server;
    names of different servers never meet, since each keeps its ``server__`` prefix)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(set(names), key=lambda n: (len(f"{server}{SEP}{n}") > MAX_TOOL_NAME, n)):
        full = f"{server}{SEP}{name}"
        if len(full) > MAX_TOOL_NAME:
            digest = hashlib.sha256(full.encode("utf-8")).hexdigest()
            for size in range(10, 40):
                full = f"{server}{SEP}{name}"[: MAX_TOOL_NAME - size - 1] + "-" + digest[:size]
                if full not in used:
                    break
        used.add(full)
        out[name] = full
    return out


SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
"""Gateway server names: letters, digits and inner hyphens (so ``__`` splits a name unambiguously)."""


@dataclass(eq=False)
class ServerConn:
    """One upstream server as the proxy holds it: its link, what it answered to initialize, its pins.

    The requests in flight to it are the peer's to correlate (:class:`~._peer.Peer`), not part of it.
    """

    name: str
    """Its gateway name ("" for a lone server: no namespacing)."""
    label: str
    """How messages name it."""
    link: Link
    """The connection."""
    pins: PinFilter
    """Its tool-definition pins."""
    init: dict[str, Any] | None = None
    """Its ``initialize`` result (None until initialised, or when it failed)."""
    alive: bool = True
    """False once it closed its end."""
    instructions: ToolDefinition | None = None
    """Its instructions as a pinnable definition (set at initialize)."""
    spec: Upstream | None = None
    """How to start it again when it exits (None: it is not restarted)."""
    state: ServerState = "up"
    """``up``, ``down`` (exited or never started; restarted with backoff) or ``stopped`` (not restarted)."""
    restarts: int = 0
    """How many times it was started again."""
    failures: int = 0
    """Exits (or failed starts) in a row, for the backoff."""
    last_error: str | None = None
    """Why it last went down."""
    up_since: float | None = None
    """When it last came up (``time.monotonic()``)."""

    @property
    def capabilities(self) -> dict[str, Any]:
        """The capabilities it declared (empty before initialize)."""
        caps = (self.init or {}).get("capabilities")
        return caps if isinstance(caps, dict) else {}


ServerState = Literal["up", "down", "stopped"]
"""A server's health as the proxy sees it."""

FetchAll = Callable[[ServerConn, str, str], Awaitable[list[Any]]]
"""Lists every page of ``method`` from a server and returns the items under ``key``."""


class Catalog:
    """What the client is offered, and where each name goes."""

    def __init__(self, servers: Sequence[ServerConn], guarding: Guarding, policy: Policy, *, gateway: bool, hide_denied: bool) -> None:
        self.servers = list(servers)
        self.gateway = gateway
        self._guarding = guarding
        self._policy = policy
        self._hide_denied = hide_denied
        self.tools: dict[str, tuple[ServerConn, str]] = {}
        """Client-facing tool name -> (server, the server's name for it)."""
        self.prompts: dict[str, tuple[ServerConn, str]] = {}
        """Gateway only: client-facing prompt name -> (server, its name)."""
        self.resources: dict[str, ServerConn] = {}
        """Gateway only: resource URI -> the server that listed it."""
        self.templates: list[tuple[re.Pattern[str], ServerConn]] = []
        """Gateway only: resource templates as patterns -> their server."""
        self.task_owners: dict[str, ServerConn] = {}
        """Which server runs each task a task-augmented tool call started."""
        self.listed = asyncio.Event()
        """Set once the first tool listing is done (calls wait for it, so pins are known)."""
        self.scope: DefinitionScope | None = None
        """Where approved definition text is noted as its server's (so it grounds values for that server only)."""
        self._recorded: set[tuple[str, str]] = set()
        self._lint_cache: dict[tuple[str, frozenset[str], Neighbours], bool] = {}
        self._refreshing: asyncio.Future[list[dict[str, Any]]] | None = None

    # ------------------------------------------------------------ names

    def client_name(self, server: ServerConn, name: str) -> str:
        """The name the client sees for a server's tool or prompt."""
        return f"{server.name}{SEP}{name}" if self.gateway else name

    def pseudo_tool(self, server: ServerConn, tool: str) -> str:
        """The policy name of a server-initiated request (``sampling/createMessage`` ...)."""
        return self.client_name(server, tool)

    def split(self, name: str) -> tuple[ServerConn, str] | None:
        """The server and its own name for a client-facing name (None: no such server)."""
        if not self.gateway:
            return (self.servers[0], name) if self.servers else None
        listed = self.tools.get(name)
        if listed is not None:  # a listed tool (its name may be shortened to 64 characters)
            return listed
        prefix, sep, rest = name.partition(SEP)
        if not sep:
            return None
        for server in self.servers:
            if server.name == prefix:
                return server, rest
        return None

    def finding(self, call: ToolCall) -> Finding | None:
        """The pins' verdict on ``call`` (the guard's :class:`PinDetector` asks this).

        The proxy's own checks of a server's sampling and elicitation requests
        are not tool calls of that server and pass; any other name must be a
        tool the server listed, with its definition pinned.
        """
        tool = str(call.tool)
        target = self.split(tool)
        if call.id in self._guarding.server_calls:
            # Protocol requests are default-deny: only sampling and elicitation fall back to the
            # policy's default (ask); any other must be named by the policy.
            own = target[1] if target is not None else tool
            if own in (SAMPLING, ELICITATION) or self.policy_names(tool):
                return None
            return Finding("deny", f"the policy does not name {tool!r}; requests at the protocol layer pass only when it does")
        if target is None:
            return Finding("deny", f"no MCP server behind this proxy offers a tool named {tool!r}")
        server, name = target
        if not server.alive or server.init is None:
            return Finding("deny", f"the MCP server {server.label} is down ({down_reason(server)})")
        return server.pins.finding(name)

    def policy_names(self, tool: str) -> bool:
        """Whether the policy names ``tool`` itself (not through its ``default``)."""
        return tool in self._policy.tools

    def server_of(self, call: ToolCall) -> str | None:
        """The gateway name of the server a call (or pseudo-call) goes to (None: no server)."""
        target = self.split(str(call.tool))
        return None if target is None else target[0].name

    # ------------------------------------------------------------ tools

    async def refresh(self, fetch: FetchAll) -> list[dict[str, Any]]:
        """List every server's tools now (one listing at a time; callers in between share it)."""
        if self._refreshing is not None:
            return await asyncio.shield(self._refreshing)
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            tools = await self._list(fetch)
            self._refreshing.set_result(tools)
            return tools
        except BaseException as exc:
            self._refreshing.set_exception(exc)
            self._refreshing.exception()  # retrieved: later callers get it from their own await
            raise
        finally:
            self._refreshing = None
            self.listed.set()

    async def _list(self, fetch: FetchAll) -> list[dict[str, Any]]:
        targets = [s for s in self.servers if s.alive and s.init is not None and "tools" in s.capabilities]
        listings = await asyncio.gather(*(fetch(s, "tools/list", "tools") for s in targets), return_exceptions=True)
        mapping: dict[str, tuple[ServerConn, str]] = {}
        shown: list[dict[str, Any]] = []
        for server, listing in zip(targets, listings, strict=True):
            if isinstance(listing, BaseException):
                self._guarding.say(f"could not list the tools of {server.label}: {listing}")
                continue
            definitions = self._definitions(server, listing)
            pinned = definitions + ([server.instructions] if server.instructions is not None else [])
            visible = server.pins.update(pinned)
            held = sorted({d.name for d in definitions} - visible)
            if held:
                self._guarding.say(
                    f"tool definition(s) of {server.label} held until a human approves them (tether mcp pins list): {', '.join(held)}"
                )
                self._record_held(server, [d for d in definitions if d.name in held])
            offered = [d for d in definitions if d.name in visible]
            self._record(server, offered, server.pins.reviewed(offered) - self._flagged(server, offered, targets, listings))
            names = gateway_tool_names(server.name, [d.name for d in offered]) if self.gateway else {}
            for d in offered:
                name = names.get(d.name, d.name)
                mapping[name] = (server, d.name)
                if self._hide_denied and self._never_allowed(name):
                    continue
                shown.append({**d.data, "name": name} if self.gateway else dict(d.data))
        self.tools = mapping
        return shown

    def _definitions(self, server: ServerConn, listing: list[Any]) -> list[ToolDefinition]:
        out: dict[str, ToolDefinition] = {}
        for item in listing:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            name = item["name"]
            if name == INSTRUCTIONS or name in PSEUDO_TOOLS:
                self._guarding.say(f"{server.label} lists a tool named {name!r}, a name Tether reserves; it is not offered")
                continue
            if name in out:
                self._guarding.say(f"{server.label} lists the tool {name!r} twice; only the first is offered")
                continue
            out[name] = ToolDefinition(name, item)
        return list(out.values())

    def _flagged(self, server: ServerConn, offered: list[ToolDefinition], targets: list[ServerConn], listings: list[Any]) -> set[str]:
        """Names of the definitions the lint flags as steering the model: recorded as untrusted text even when a human approved them."""
        others = [(s, li) for s, li in zip(targets, listings, strict=True) if s is not server and isinstance(li, list)]
        tools = {str(t.get("name")) for _, li in others for t in li if isinstance(t, dict)}
        neighbours = Neighbours(
            servers=frozenset(s.name for s in self.servers if s is not server and s.name),
            tools=frozenset(tools | {f"{s.name}{SEP}{t.get('name')}" for s, li in others for t in li if isinstance(t, dict)}),
        )
        own = [d.name for d in offered]
        flagged = set()
        for d in offered:
            key = (d.hash, frozenset(own), neighbours)
            if key not in self._lint_cache:
                self._lint_cache[key] = any(f.steering for f in lint_definition("tool", d.data, own=own, neighbours=neighbours))
            if self._lint_cache[key]:
                flagged.add(d.name)
        if flagged:
            self._guarding.say(
                f"tool definition(s) of {server.label} flagged by the lint, read as untrusted text (tether mcp lint): {', '.join(sorted(flagged))}"
            )
        return flagged

    def _record(self, server: ServerConn, offered: list[ToolDefinition], reviewed: set[str]) -> None:
        """Record the definitions the model will read: trusted where a human approved them."""
        for trusted in (True, False):
            text = "\n".join(d.text for d in offered if (d.name in reviewed) == trusted)
            if not text or (str(trusted), text) in self._recorded:
                continue
            self._recorded.add((str(trusted), text))
            what = "approved by a human" if trusted else "not reviewed by a human"
            event = self._guarding.add_source_event(
                text, f"mcp tool definitions of {server.label} ({what})", TRUSTED if trusted else UNTRUSTED
            )
            if trusted and event is not None and self.scope is not None:
                self.scope.note(event, server.name)

    def _record_held(self, server: ServerConn, held: list[ToolDefinition]) -> None:
        """Record held definitions as untrusted text, though the client is not shown them.

        Hiding a changed definition keeps it from the model, but its words are still the server's: a
        rug pull's instructions (an address to send to, a path to write) must not become values that
        count as made up (and so as trusted as the session's context) if they reach a call some other
        way, through a client that cached or was told the text. Recorded, such values are untrusted.
        """
        text = "\n".join(d.text for d in held)
        if ("held", text) in self._recorded:
            return
        self._recorded.add(("held", text))
        self._guarding.add_source_event(text, f"mcp tool definitions of {server.label} held for review (not shown to the client)")

    def _never_allowed(self, name: str) -> bool:
        """True when the policy denies ``name`` whatever the arguments (for ``--hide-denied``)."""
        spec = self._policy.spec.tools.get(name)
        if spec is None:
            return self._policy.spec.default == "deny"
        if spec.budget is not None and spec.budget.max_calls == 0:
            return True
        return any(rule.when.always for rule in [*spec.deny, *self._policy.spec.deny])

    def instructions_label(self, server: ServerConn) -> bool:
        """Whether the server's instructions, as given now, were approved by a human (and the lint flags nothing in them)."""
        if server.instructions is None or not server.pins.reviewed([server.instructions]):
            return False
        return not any(f.steering for f in lint_definition("instructions", server.instructions.data))

    # ------------------------------------------------------------ gateway prompts and resources

    def learn_prompts(self, server: ServerConn, prompts: list[Any]) -> list[dict[str, Any]]:
        """Namespace a server's prompts and remember where each goes."""
        out: list[dict[str, Any]] = []
        for item in prompts:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                name = self.client_name(server, item["name"])
                self.prompts[name] = (server, item["name"])
                out.append({**item, "name": name})
        return out

    def learn_resources(self, server: ServerConn, items: list[Any], *, templates: bool) -> list[dict[str, Any]]:
        """Remember which server listed each resource URI (or template)."""
        out: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if templates and isinstance(item.get("uriTemplate"), str):
                self.templates.append((_template_pattern(item["uriTemplate"]), server))
            elif not templates and isinstance(item.get("uri"), str):
                self.resources.setdefault(item["uri"], server)
            else:
                continue
            out.append(item)
        return out

    def resource_owner(self, uri: str) -> ServerConn | None:
        """The server a resource URI belongs to: who listed it, or whose template matches it."""
        if not self.gateway:
            return self.servers[0] if self.servers else None
        owner = self.resources.get(uri)
        if owner is not None:
            return owner
        matches = {id(s): s for pattern, s in self.templates if pattern.fullmatch(uri)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        offering = [s for s in self.servers if s.alive and "resources" in s.capabilities]
        return offering[0] if len(offering) == 1 else None


def down_reason(server: ServerConn) -> str:
    """Why a server is not serving, in words (for refusals and the status)."""
    why = server.last_error or "it has not initialised"
    return why + ("; Tether starts it again with backoff" if server.state == "down" else "")


def _template_pattern(template: str) -> re.Pattern[str]:
    """A URI template (RFC 6570, simple expressions) as a pattern: each ``{...}`` matches any text."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".+".join(re.escape(p) for p in parts), re.DOTALL)
