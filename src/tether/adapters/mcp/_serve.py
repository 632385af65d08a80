"""Run the proxy: start the servers, open one Tether session, serve MCP on stdio or loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._config import ProxyConfig
from tether.adapters.mcp._links import Link, ProcessLink, StdioLink
from tether.adapters.mcp._pins import PinBook, PinDetector, PinFilter
from tether.adapters.mcp._proxy import Proxy
from tether.adapters.mcp._scope import DefinitionScope
from tether.adapters.mcp._supervise import DeadLink, status_folder
from tether.adapters.mcp._tokens import TokenStore, token_file
from tether.adapters.mcp._upstream import Upstream, check_gateway, describe_all, environment
from tether.errors import ConfigError
from tether.policy import Policy
from tether.session import Guard, Session
from tether.store import EventStore


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
    """The user's trusted task text (default: names the upstream servers)."""
    principal: str = "user"
    """Who the agent acts for."""
    session_id: str | None = None
    """A fixed session id (default: a fresh one)."""
    pins: bool = True
    """Pin tool definitions (off: every listed tool passes, policy still applies)."""
    pin_key: str | None = None
    """Name of a lone server's pins (default: derived from the command or URL)."""
    gateway: bool = False
    """Namespace every server's names even when there is only one."""
    session_per_connection: bool = False
    """HTTP only: a Tether session per MCP connection instead of one for the principal across connections."""
    auth: bool = True
    """HTTP only: every request needs ``Authorization: Bearer <token>`` (a token is created at the first start)."""
    allow_remote: bool = False
    """HTTP only: bind a non-loopback address (the token is then required whatever ``auth`` says)."""


def check_loopback(host: str) -> None:
    """Refuse to serve the proxy beyond this machine."""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"the MCP proxy serves HTTP on loopback addresses only, got host {host!r}")


def store_path(store: EventStore) -> str:
    """The store's file as an absolute path (what a printed ``--db`` must say)."""
    path = str(getattr(store, "path", "tether.db"))
    return path if path == ":memory:" else os.path.abspath(path)


async def serve(
    policy: Policy,
    store: EventStore,
    upstreams: Upstream | Sequence[Upstream],
    options: ServeOptions,
    config: ProxyConfig | None = None,
    *,
    log: TextIO = sys.stderr,
) -> None:
    """Run the proxy until the client disconnects (stdio) or the server is stopped (HTTP).

    Raises :class:`~tether.adapters.mcp.UpstreamError` when a server command cannot be started.
    """
    specs = [upstreams] if isinstance(upstreams, Upstream) else list(upstreams)
    gateway = options.gateway or len(specs) > 1
    if gateway:
        check_gateway(specs)
    config = config or ProxyConfig()
    if options.transport == "http":
        if not options.allow_remote:
            check_loopback(options.host)
        elif not options.auth:
            raise ConfigError("serving the MCP proxy beyond loopback needs its token: drop --no-auth")
        from tether.adapters.mcp._http import HttpFront, SdkLink

        tokens = TokenStore(token_file(store_path(store))) if options.auth else None
        if tokens is not None and not tokens.entries():
            token_id, token = tokens.create("created at the first start of tether mcp --http")
            where = f"kept as a hash in {tokens.path}" if tokens.path is not None else "valid while this proxy runs"
            print(
                f"tether-mcp: created token {token_id} for the HTTP endpoint; it is shown once ({where}; "
                f"tether mcp token list/new/revoke manage them). Clients send: Authorization: Bearer {token}",
                file=log,
                flush=True,
            )

        shared = None if options.session_per_connection else Hosted.open(policy, store, specs, options, gateway, log)

        async def one(link: SdkLink) -> None:
            hosted = shared or Hosted.open(policy, store, specs, options, gateway, log)
            try:
                async with connected(specs, store, options, config, log=log) as servers:
                    await hosted.run(link, servers, config, gateway)
            finally:
                if shared is None:
                    hosted.session.end("connection closed")

        try:
            authorized = tokens.check if tokens is not None else None
            await HttpFront(one, host=options.host, log=log, authorized=authorized, check_hosts=not options.allow_remote).serve(
                options.host, options.port
            )
        finally:
            if shared is not None:
                shared.session.end("proxy stopped")
        return
    async with connected(specs, store, options, config, log=log) as servers:
        client = await StdioLink.open(config.max_message_bytes)
        hosted = Hosted.open(policy, store, specs, options, gateway, log)
        try:
            await hosted.run(client, servers, config, gateway)
        finally:
            hosted.session.end("proxy stopped")


@contextlib.asynccontextmanager
async def connected(
    specs: Sequence[Upstream], store: EventStore, options: ServeOptions, config: ProxyConfig, *, log: TextIO = sys.stderr
) -> AsyncIterator[list[ServerConn]]:
    """Start (or connect to) every server; stop them all on exit.

    A lone server that cannot be started is an error (one line). In a gateway it is
    left down, with the reason, and started again with backoff once the client is there.
    """
    gateway = options.gateway or len(specs) > 1
    async with contextlib.AsyncExitStack() as stack:
        servers: list[ServerConn] = []
        for spec in specs:
            key = options.pin_key if options.pin_key and len(specs) == 1 else spec.pin_key()
            pins = PinFilter(PinBook(store, key) if options.pins else None)
            try:
                link = await start_link(spec, config, log=log, state=store_path(store))
            except Exception as exc:
                if not gateway:
                    raise
                reason = f"could not start: {exc}"
                print(f"tether-mcp: the MCP server {spec.name} {reason}; the gateway serves the others", file=log, flush=True)
                dead = ServerConn(spec.name, spec.name, DeadLink(reason), pins, alive=False, spec=spec, state="down", last_error=reason)
                servers.append(dead)
                continue
            stack.push_async_callback(link.close)
            servers.append(ServerConn(spec.name, spec.name or spec.describe(), link, pins, spec=spec))
        yield servers


async def start_link(spec: Upstream, config: ProxyConfig, *, log: TextIO = sys.stderr, state: str | None = None) -> Link:
    """Start the server's process, or connect to its URL; the link's ``close`` stops it.

    ``state`` is the event store's path: an OAuth server's tokens are kept beside it. An OAuth
    server without tokens is not connected (:class:`UpstreamError` naming ``tether mcp auth``).
    """
    if spec.url is None:
        return await ProcessLink.start(spec.command, environment(spec.env), limit=config.max_server_message_bytes, errlog=log)
    from tether.adapters.mcp._http import open_upstream

    return await HeldLink.enter(open_upstream(spec, log=log, state=state))


class HeldLink:
    """A link opened by an async context manager, held open by a task of its own (so any task may close it)."""

    def __init__(self, link: Link, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
        self._link = link
        self._stop = stop
        self._task = task

    @classmethod
    async def enter(cls, manager: contextlib.AbstractAsyncContextManager[Link]) -> HeldLink:
        """Enter ``manager`` in its own task and hold it open until :meth:`close`."""
        ready: asyncio.Future[Link] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                async with manager as link:
                    ready.set_result(link)
                    await stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError | Exception):
                    raise

        task = asyncio.create_task(hold())
        return cls(await ready, stop, task)

    @property
    def reason(self) -> str | None:
        """Why the held link ended, when it says (a transport error)."""
        return getattr(self._link, "reason", None)

    async def recv(self) -> Any:
        """The next message."""
        return await self._link.recv()

    async def send(self, obj: dict[str, Any], *, related: Any = None) -> None:
        """Send one message."""
        await self._link.send(obj, related=related)

    async def close(self) -> None:
        """Leave the context manager (closing the connection) and wait for that."""
        self._stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(self._task), 10.0)


class Hosted:
    """One Tether session and the proxies that serve it: one for stdio; over HTTP, one per connection, all
    under the principal's session unless ``session_per_connection`` (budgets, rates, tags and the
    untrusted context then span connections).

    The session's detectors ask the proxy of the connection the call came on (a context variable
    set for each proxy's tasks): its pins, and which server a call goes to.
    """

    def __init__(self, policy: Policy, store: EventStore, session: Session, scope: DefinitionScope, log: TextIO) -> None:
        self.policy = policy
        self.store = store
        self.session = session
        """The Tether session every connection's calls are decided and logged in."""
        self.scope = scope
        self._log = log

    @classmethod
    def open(
        cls, policy: Policy, store: EventStore, specs: Sequence[Upstream], options: ServeOptions, gateway: bool, log: TextIO
    ) -> Hosted:
        """Start the session (its detectors look up the current connection's proxy)."""
        scope = DefinitionScope(policy, lambda call: _current.get().catalog.server_of(call))
        guard = Guard(policy, store, detectors=[PinDetector(lambda call: _current.get().catalog.finding(call)), scope])
        described = describe_all(specs)
        session = guard.start_session(
            options.task or f"Use the tools of the MCP server{'s' if len(specs) > 1 else ''} {described}",
            principal=options.principal,
            session_id=options.session_id,
            metadata={"adapter": "mcp", "upstream": described, "gateway": gateway},
        )
        print(f"tether-mcp: session {session.id} (policy {policy.name!r}, store {store_path(store)})", file=log, flush=True)
        return cls(policy, store, session, scope, log)

    async def run(self, client: Link, servers: list[ServerConn], config: ProxyConfig, gateway: bool) -> None:
        """Serve one client connection until it goes away."""
        info: dict[str, Any] = {"name": "tether-gateway"}
        proxy = Proxy(
            client,
            servers,
            self.session,
            self.policy,
            config=config,
            db_path=store_path(self.store),
            gateway=gateway,
            gateway_info=info,
            log=self._log,
            start_link=lambda spec: start_link(spec, config, log=self._log, state=store_path(self.store)),
            status_folder=status_folder(store_path(self.store)),
        )
        proxy.catalog.scope = self.scope
        _current.set(proxy)  # this task's context: the tasks the proxy starts inherit it
        try:
            await proxy.run()
        finally:
            await client.close()


_current: contextvars.ContextVar[Proxy] = contextvars.ContextVar("tether_mcp_proxy")
"""The proxy of the connection whose task is running (a lookup outside any proxy fails, so the detector denies)."""
