"""MCP servers as a toolset of the agent loop (``tether run --mcp``), with the proxy's protections.

:class:`McpToolset` connects to one server or a gateway file's servers and offers their tools to
the model, as the proxy offers them to a client:

- **pins**: each server's listing goes through its :class:`~._pins.PinBook` (the same pin
  sessions as the proxy's, so ``tether mcp pins review|approve`` applies to both); a definition
  new or changed since it was pinned is not offered, and a call to it is denied by the
  :class:`~._pins.PinDetector` the toolset hands the guard;
- **definitions as sources**: the definitions the model is shown are recorded in the session
  before the model reads them: trusted where a human approved exactly that definition, untrusted
  otherwise; the trusted ones ground values for their own server only (:class:`~._scope.DefinitionScope`);
- **the admission path**: the toolset never runs a call itself; the agent loop puts every call
  through the session's :class:`~tether.session.Gate` and calls :meth:`McpToolset.call` only for
  an admitted one. Its output is recorded, labelled by the policy, before the model sees it; an
  MCP error result raises, so it is recorded as (untrusted) error output.

In a gateway (a config file, or several servers) every tool is named ``<server>__<tool>``, as
the policy names it for the proxy. A server's ``notifications/tools/list_changed`` re-lists it
at once: a changed definition is then denied until reviewed (the model keeps the specs of the
run's start, so a rug pull mid-run meets the pins, not the model).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tether._decision import ToolCall
from tether.adapters.mcp._config import PSEUDO_TOOLS, announce
from tether.adapters.mcp._content import is_task, result_text
from tether.adapters.mcp._jsonrpc import Message
from tether.adapters.mcp._links import UpstreamError
from tether.adapters.mcp._pins import INSTRUCTIONS, PinBook, PinDetector, PinFilter, ToolDefinition
from tether.adapters.mcp._scope import DefinitionScope
from tether.adapters.mcp._tool_client import McpConnection, open_link
from tether.adapters.mcp._upstream import Upstream, check_gateway, describe_all, load_gateway
from tether.flow import TRUSTED, UNTRUSTED
from tether.monitor import Detector, Finding
from tether.policy import Policy
from tether.session import Session
from tether.store import EventStore

if TYPE_CHECKING:
    from tether.agent import ToolSpec

SEP = "__"
"""Separates a gateway server's name from its tools' names (``time__get_current_time``)."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Tool names the chat-completions API accepts."""

NOT_MCP = "<not mcp>"
"""The scope's name for a tool no MCP server offers (a Python tool): no server's definitions ground its values."""


class McpToolError(Exception):
    """An MCP tool answered with an error result (``isError``); its text is the call's recorded error output."""


@dataclass(eq=False)
class _Server:
    spec: Upstream
    pins: PinFilter
    conn: McpConnection | None = None
    offered: dict[str, ToolDefinition] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)


class McpToolset:
    """The tools of one or more MCP servers, for :class:`~tether.agent.Agent`.

    Build the session's :class:`~tether.session.Guard` with :attr:`detectors`, then run the agent
    inside :meth:`connected`::

        tools = McpToolset.from_config("servers.yaml", store, policy)
        session = Guard(policy, store, detectors=tools.detectors).start_session(task)
        async with tools.connected(session):
            result = await Agent(client, tools).run(session)
    """

    def __init__(
        self,
        servers: Upstream | Sequence[Upstream],
        store: EventStore,
        policy: Policy,
        *,
        pins: bool = True,
        gateway: bool | None = None,
        call_timeout_s: float = 120.0,
        list_timeout_s: float = 60.0,
        max_message_bytes: int = 64 << 20,
        log: TextIO = sys.stderr,
    ) -> None:
        specs = [servers] if isinstance(servers, Upstream) else list(servers)
        self.gateway = gateway if gateway is not None else (len(specs) > 1 or any(s.name for s in specs))
        """Whether tool names are namespaced ``<server>__<tool>``."""
        if self.gateway:
            check_gateway(specs)
        self.call_timeout_s = call_timeout_s
        """An MCP tool call that takes longer fails (recorded as its error output)."""
        self.list_timeout_s = list_timeout_s
        """Longest wait for ``initialize`` and each ``tools/list`` page."""
        self._servers = [_Server(s, PinFilter(PinBook(store, s.pin_key()) if pins else None)) for s in specs]
        self._max_bytes = max_message_bytes
        self._log = log
        path = str(getattr(store, "path", ":memory:"))
        self._state = path if path == ":memory:" else os.path.abspath(path)  # OAuth tokens are kept beside the store
        self._session: Session | None = None
        self._tools: dict[str, tuple[_Server, str]] = {}
        self._specs: list[ToolSpec] = []
        self._relisting: set[asyncio.Task[None]] = set()
        self.scope = DefinitionScope(policy, self._server_of)
        """Keeps approved definition text grounding values for its own server only."""
        self.detectors: tuple[Detector, ...] = (PinDetector(self._finding), self.scope)
        """Give these to the :class:`~tether.session.Guard` that opens the session: they deny calls
        to tools not listed or not pinned, and keep definitions in their server's scope."""

    @classmethod
    def from_config(cls, path: str | Path, store: EventStore, policy: Policy, **options: Any) -> McpToolset:
        """The servers of a gateway file (the proxy's ``--config`` format: ``servers:`` or ``mcpServers:``)."""
        return cls(load_gateway(path), store, policy, gateway=True, **options)

    def describe(self) -> str:
        """The servers, in one line (for the session's metadata)."""
        return describe_all([s.spec for s in self._servers])

    # ------------------------------------------------------------ connecting

    @contextlib.asynccontextmanager
    async def connected(self, session: Session) -> AsyncIterator[McpToolset]:
        """Start (or connect to) every server, list and pin their tools, record what the model will read
        in ``session``; stop the servers on exit. A server that cannot be started raises :class:`UpstreamError`."""
        self._session = session
        async with contextlib.AsyncExitStack() as stack:
            for server in self._servers:
                link = await stack.enter_async_context(open_link(server.spec, limit=self._max_bytes, log=self._log, state=self._state))
                conn = McpConnection(server.spec, link, limit=self._max_bytes, on_notification=self._notified(server))
                stack.push_async_callback(conn.stop)
                await conn.start(self.list_timeout_s)
                server.conn = conn
            try:
                for server in self._servers:
                    await self._list(server)
                yield self
            finally:
                for task in list(self._relisting):
                    task.cancel()
                for server in self._servers:
                    server.conn = None
                self._session = None

    def _notified(self, server: _Server) -> Any:
        def on_notification(msg: Message) -> None:
            if msg.method == "notifications/tools/list_changed" and self._session is not None:
                task = asyncio.get_running_loop().create_task(self._relist(server))
                self._relisting.add(task)
                task.add_done_callback(self._relisting.discard)

        return on_notification

    async def _relist(self, server: _Server) -> None:
        try:
            await self._list(server)
        except UpstreamError as exc:
            self._say(f"could not re-list the tools of {self._label(server)}: {exc}")

    async def _list(self, server: _Server) -> None:
        """List a server's tools, sync its pins, record the definitions offered, rebuild the specs."""
        from tether.agent import ToolSpec

        assert server.conn is not None and self._session is not None
        listing = await server.conn.list_tools(self.list_timeout_s)
        definitions = self._definitions(server, listing)
        instructions = server.conn.instructions
        pinned = definitions + ([ToolDefinition(INSTRUCTIONS, {"instructions": instructions})] if instructions is not None else [])
        visible = server.pins.update(pinned)
        held = sorted({d.name for d in definitions} - visible)
        if held:
            self._say(
                f"tool definition(s) of {self._label(server)} held until a human approves them (tether mcp pins list): {', '.join(held)}"
            )
        offered = [d for d in definitions if d.name in visible]
        self._record(server, offered)
        server.offered = {d.name: d for d in offered}
        server.listed = {d.name for d in definitions}
        tools: dict[str, tuple[_Server, str]] = {}
        specs: list[ToolSpec] = []
        for srv in self._servers:
            for name, d in srv.offered.items():
                public = self._public(srv, name)
                tools[public] = (srv, name)
                description = d.data.get("description")
                schema = d.data.get("inputSchema")
                schema = schema if isinstance(schema, dict) and schema.get("type") == "object" else {"type": "object", "properties": {}}
                specs.append(ToolSpec(public, description if isinstance(description, str) else "", schema))
        self._tools, self._specs = tools, specs

    def _definitions(self, server: _Server, listing: list[dict[str, Any]]) -> list[ToolDefinition]:
        out: dict[str, ToolDefinition] = {}
        for item in listing:
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name == INSTRUCTIONS or name in PSEUDO_TOOLS or not _NAME.match(self._public(server, name)):
                self._say(f"{self._label(server)} lists a tool named {name!r}, which cannot be offered (reserved or not a valid name)")
                continue
            if name in out:
                self._say(f"{self._label(server)} lists the tool {name!r} twice; only the first is offered")
                continue
            out[name] = ToolDefinition(name, item)
        return list(out.values())

    def _record(self, server: _Server, offered: list[ToolDefinition]) -> None:
        """Record the definitions the model will read: trusted where a human approved them, else untrusted.
        A store error propagates: nothing unrecorded reaches the model."""
        assert self._session is not None
        reviewed = server.pins.reviewed(offered)
        for trusted in (True, False):
            text = "\n".join(d.text for d in offered if (d.name in reviewed) == trusted)
            if not text:
                continue
            what = "approved by a human" if trusted else "not reviewed by a human"
            origin = f"mcp tool definitions of {self._label(server)} ({what})"
            event = self._session.add_source(text, label=TRUSTED if trusted else UNTRUSTED, origin=origin)
            if trusted:
                self.scope.note(event, server.spec.name)

    # ------------------------------------------------------------ the Toolset protocol

    def specs(self) -> Sequence[ToolSpec]:
        """Every tool offered now (none until :meth:`connected`)."""
        return list(self._specs)

    def offers(self, name: str) -> bool:
        """Whether ``name`` is one of this toolset's tools."""
        return name in self._tools

    async def call(self, name: str, args: dict[str, Any]) -> str:
        """Call an admitted tool on its server; the result as the text the model reads.

        Raises :class:`McpToolError` for an MCP error result, :class:`UpstreamError` when the server
        does not answer in time or has gone (both recorded as the call's error output)."""
        target = self._tools.get(name)
        if target is None:
            raise LookupError(f"no MCP tool named {name!r}")
        server, own = target
        if server.conn is None:
            raise UpstreamError(f"the MCP server {self._label(server)} is not connected")
        result = await server.conn.call_tool(own, args, self.call_timeout_s)
        if is_task(result):
            raise McpToolError("the server answered with a task; tether run does not follow MCP tasks")
        text = result_text(result)
        if result.get("isError"):
            raise McpToolError(text)
        return text

    # ------------------------------------------------------------ what the detectors ask

    def _finding(self, call: ToolCall) -> Finding | None:
        """The pins' verdict: a name routed to a server must be listed there and pinned."""
        tool = str(call.tool)
        target = self._tools.get(tool)
        if target is not None:
            return target[0].pins.finding(target[1])
        if self.gateway:
            prefix, sep, rest = tool.partition(SEP)
            for server in self._servers:
                if sep and server.spec.name == prefix:
                    return server.pins.finding(rest)
        for server in self._servers:
            if tool in server.listed:  # a lone server's tool that is listed but held
                return server.pins.finding(tool)
        return None  # not an MCP tool: another toolset's (the policy still decides)

    def _server_of(self, call: ToolCall) -> str | None:
        target = self._tools.get(str(call.tool))
        return target[0].spec.name if target is not None else NOT_MCP

    # ------------------------------------------------------------ names and messages

    def _public(self, server: _Server, name: str) -> str:
        return f"{server.spec.name}{SEP}{name}" if self.gateway else name

    def _label(self, server: _Server) -> str:
        return server.spec.name or server.spec.describe()

    def _say(self, text: str) -> None:
        announce(self._log, text)
