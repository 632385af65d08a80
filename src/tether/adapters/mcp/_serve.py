"""Run the guarding proxy: connect upstream, start a session, serve MCP on stdio or loopback HTTP."""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

from tether.adapters.mcp._pins import PinBook, PinGate
from tether.adapters.mcp._proxy import GuardedProxy, ProxyConfig
from tether.adapters.mcp._stdio import pipe_stdio
from tether.adapters.mcp._upstream import Upstream, connect
from tether.errors import ConfigError
from tether.flow._labels import UNTRUSTED
from tether.policy._compiled import Policy
from tether.session import Guard
from tether.store._chain import EventStore


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeOptions:
    """How the proxy is served and what its session is."""

    transport: Literal["stdio", "http"] = "stdio"
    """Serve MCP on stdin/stdout, or over streamable HTTP on a loopback address."""
    host: str = "127.0.0.1"
    """HTTP only: the loopback address to bind."""
    port: int = 8765
    """HTTP only: the port."""
    task: str | None = None
    """The user's trusted task text (default: names the upstream server)."""
    principal: str = "user"
    """Who the agent acts for."""
    session_id: str | None = None
    """A fixed session id (default: a fresh one)."""
    pins: bool = True
    """Pin tool definitions (off: every listed tool passes, policy still applies)."""
    pin_key: str | None = None
    """Name of the server's pins (default: derived from the command or URL)."""


def check_loopback(host: str) -> None:
    """Refuse to serve the proxy beyond this machine."""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"the MCP proxy serves HTTP on loopback addresses only, got host {host!r}")


async def serve(
    policy: Policy,
    store: EventStore,
    upstream: Upstream,
    options: ServeOptions,
    config: ProxyConfig | None = None,
    *,
    log: TextIO = sys.stderr,
) -> None:
    """Run the proxy until the client disconnects (stdio) or the server is stopped (HTTP)."""
    if options.transport == "http":
        check_loopback(options.host)
    gate = PinGate(PinBook(store, options.pin_key or upstream.pin_key()) if options.pins else None)
    guard = Guard(policy, store, detectors=[gate.detector])
    async with connect(upstream, errlog=log) as client:
        session = guard.start_session(
            options.task or f"Use the tools of the MCP server {upstream.describe()}",
            principal=options.principal,
            session_id=options.session_id,
            metadata={"adapter": "mcp", "upstream": upstream.describe()},
        )
        print(f"tether-mcp: session {session.id} (policy {policy.name!r}, store {getattr(store, 'path', '?')})", file=log, flush=True)
        init = client.initialize_result
        if init is not None and init.instructions:
            session.add_source(init.instructions, label=UNTRUSTED, origin="mcp server instructions")
        proxy = GuardedProxy(client, session, gate=gate, config=config, log=log)
        await proxy.refresh_tools()
        server = proxy.server()
        try:
            if options.transport == "stdio":
                async with pipe_stdio() as (read, write):
                    await server.run(read, write, server.create_initialization_options())
            else:
                import uvicorn

                app = server.streamable_http_app(host=options.host)
                config_ = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", lifespan="on")
                await uvicorn.Server(config_).serve()
        finally:
            session.end("proxy stopped")
