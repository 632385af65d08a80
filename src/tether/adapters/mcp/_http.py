"""Streamable HTTP on either side of the proxy, through the ``mcp`` SDK's transports.

The SDK handles the HTTP protocol (sessions, SSE streams, headers); the
proxy still sees plain JSON-RPC objects. Each HTTP session a client opens on
the proxy gets its own proxy run (its own server connections and Tether
session). Imported only when HTTP is used, so stdio proxies never load the SDK.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TextIO

import anyio
import mcp_types as types
from anyio.abc import TaskGroup, TaskStatus
from mcp.client.streamable_http import streamable_http_client
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ClientMessageMetadata, ServerMessageMetadata, SessionMessage

from tether.adapters.mcp._jsonrpc import Id
from tether.adapters.mcp._links import Frame, UpstreamError
from tether.adapters.mcp._oauth import ChallengeWatch, NeedsAuthorization, TetherOAuth, quiet_sdk_auth_logs, unattended
from tether.adapters.mcp._oauth_config import oauth_folder
from tether.adapters.mcp._tokens import bearer
from tether.adapters.mcp._upstream import Upstream

Side = Literal["client", "server"]


class SdkLink:
    """A link over SDK message streams: an upstream server at a URL, or an HTTP client of the proxy."""

    def __init__(
        self, read: Any, write: Any, *, side: Side, log: TextIO = sys.stderr, explain: Callable[[], str | None] | None = None
    ) -> None:
        self._read = read
        self._write = write
        self._side = side
        self._log = log
        self._explain = explain
        self._version: str | None = None
        self.reason: str | None = None
        """The last transport error (why the link ended, when it did)."""

    async def recv(self) -> Frame:
        """The next message, as a plain object."""
        while True:
            try:
                item = await self._read.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                if self._explain is not None and (why := self._explain()):
                    self.reason = why  # the SDK ended the stream after a failed authorization
                return None
            if isinstance(item, Exception):
                print(f"tether-mcp: transport error: {type(item).__name__}: {item}", file=self._log, flush=True)
                self.reason = f"transport error: {type(item).__name__}: {item}"[:300]
                if self._side == "client":
                    # The server cannot be reached: the link ends, so what waits on it is answered now
                    # (not at its timeout), and the supervisor connects again with backoff.
                    return None
                continue
            data: dict[str, Any] = item.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
            err = data.get("error")
            if self._side == "client" and isinstance(err, dict) and self._explain is not None and (why := self._explain()):
                data["error"] = {**err, "message": f"{err.get('message', '')} ({why})"}  # the HTTP status the SDK hid
            result = data.get("result")
            if self._side == "client" and isinstance(result, dict) and "protocolVersion" in result and "capabilities" in result:
                self._version = str(result["protocolVersion"])
            return data

    async def send(self, obj: dict[str, Any], *, related: Id | None = None) -> None:
        """Send one message (dropped, with a log line, if the SDK cannot carry it)."""
        try:
            message = types.jsonrpc_message_adapter.validate_python(obj)
        except Exception as exc:
            print(f"tether-mcp: cannot send over HTTP ({type(exc).__name__}); dropped", file=self._log, flush=True)
            return
        metadata: ClientMessageMetadata | ServerMessageMetadata | None = None
        if self._side == "server" and related is not None and isinstance(related, str | int) and not isinstance(related, bool):
            metadata = ServerMessageMetadata(related_request_id=related)
        elif self._side == "client" and self._version is not None:
            metadata = ClientMessageMetadata(headers={MCP_PROTOCOL_VERSION_HEADER: self._version})
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._write.send(SessionMessage(message, metadata))

    async def close(self) -> None:
        """Close the sending side."""
        with contextlib.suppress(Exception):
            await self._write.aclose()


@contextlib.asynccontextmanager
async def open_url(
    url: str,
    *,
    log: TextIO = sys.stderr,
    headers: Mapping[str, str] | None = None,
    transport: Literal["http", "sse"] = "http",
    auth: TetherOAuth | None = None,
    name: str = "",
) -> AsyncIterator[SdkLink]:
    """A link to a streamable HTTP server (or a legacy HTTP+SSE one), closed (the session deleted) on exit.

    ``headers`` (credentials such as ``Authorization: Bearer ...``) go with every request and are
    never logged. ``auth`` runs the MCP authorization flow (OAuth) on every request; a link it
    ends says why (its ``reason``). Without it, a server that asks for OAuth gets a hint naming
    ``tether mcp auth`` (``name``: its gateway name) in the errors the link passes on.
    """
    watch: TetherOAuth | ChallengeWatch = auth if auth is not None else ChallengeWatch(name, url)
    explain = lambda: watch.problem  # noqa: E731
    if transport == "sse":
        from mcp.client.sse import sse_client

        async with sse_client(url, headers=dict(headers) if headers else None, auth=watch) as (read, write):
            yield SdkLink(read, write, side="client", log=log, explain=explain)
        return
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=dict(headers) if headers else None, auth=watch) as client,
        streamable_http_client(url, http_client=client) as (read, write),
    ):
        yield SdkLink(read, write, side="client", log=log, explain=explain)


def open_upstream(spec: Upstream, *, log: TextIO = sys.stderr, state: str | None = None) -> contextlib.AbstractAsyncContextManager[SdkLink]:
    """A link to a URL server as its config says: headers, transport, and OAuth with the tokens kept beside the
    store at ``state`` (an OAuth server without tokens raises :class:`UpstreamError` naming ``tether mcp auth``)."""
    assert spec.url is not None
    auth = None
    if spec.oauth is not None:
        quiet_sdk_auth_logs()
        try:
            auth, _ = unattended(spec.url, spec.oauth, oauth_folder(state) if state else None, spec.name)
        except NeedsAuthorization as exc:
            raise UpstreamError(str(exc)) from None
    return open_url(spec.url, log=log, headers=spec.headers, transport=spec.transport, auth=auth, name=spec.name)


class HttpFront:
    """The proxy's HTTP endpoint: streamable HTTP at ``/mcp``, the legacy HTTP+SSE transport at ``/sse`` (messages to
    ``/messages/``); one proxy run per MCP session. Every request needs the bearer token when ``authorized`` is set."""

    def __init__(
        self,
        run_session: Callable[[SdkLink], Awaitable[None]],
        *,
        host: str,
        log: TextIO = sys.stderr,
        authorized: Callable[[str | None], bool] | None = None,
        check_hosts: bool = True,
    ) -> None:
        self._run_session = run_session
        self._authorized = authorized
        self._log = log
        self._sessions: dict[str, StreamableHTTPServerTransport] = {}
        self._tg: TaskGroup | None = None
        self._security = TransportSecuritySettings(
            enable_dns_rebinding_protection=check_hosts,  # off only beyond loopback, where the token is required
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", f"{host}:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", f"http://{host}:*"],
        )
        self._sse = SseServerTransport("/messages/", security_settings=self._security)

    async def serve(self, host: str, port: int) -> None:
        """Serve until stopped."""
        import uvicorn

        async with anyio.create_task_group() as tg:
            self._tg = tg
            config = uvicorn.Config(self, host=host, port=port, log_level="warning", lifespan="off")
            await uvicorn.Server(config).serve()
            tg.cancel_scope.cancel()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/") if scope["type"] == "http" else ""
        if path not in ("/mcp", "/sse", "/messages"):
            await _plain(send, 404, b"not found")
            return
        if self._authorized is not None and not self._authorized(bearer(scope["headers"])):
            # Refused before any MCP session exists: nothing reaches the proxy without the token.
            body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Unauthorized: this Tether endpoint needs Authorization: Bearer <token> (tether mcp token new)"}}'
            await _plain(send, 401, body, [(b"www-authenticate", b'Bearer realm="tether-mcp"')])
            return
        if path == "/sse":  # the legacy HTTP+SSE transport: a stream per client, its messages POSTed to /messages/
            await self._serve_sse(scope, receive, send)
            return
        if path == "/messages":
            await self._sse.handle_post_message(scope, receive, send)
            return
        sid = next((v.decode("latin-1") for k, v in scope["headers"] if k.decode("latin-1").lower() == MCP_SESSION_ID_HEADER), None)
        if sid is not None:
            transport = self._sessions.get(sid)
            if transport is None:
                await _plain(send, 404, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}')
                return
            await transport.handle_request(scope, receive, send)
            if transport.is_terminated:
                self._sessions.pop(sid, None)
            return
        transport = StreamableHTTPServerTransport(mcp_session_id=uuid.uuid4().hex, security_settings=self._security)
        assert transport.mcp_session_id is not None and self._tg is not None
        self._sessions[transport.mcp_session_id] = transport
        await self._tg.start(self._serve_transport, transport)
        await transport.handle_request(scope, receive, send)

    async def _serve_sse(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            async with self._sse.connect_sse(scope, receive, send) as (read, write):
                await self._run_session(SdkLink(read, write, side="server", log=self._log))
        except Exception as exc:
            print(f"tether-mcp: SSE session ended: {type(exc).__name__}: {exc}", file=self._log, flush=True)

    async def _serve_transport(self, transport: StreamableHTTPServerTransport, *, task_status: TaskStatus[None]) -> None:
        try:
            async with transport.connect() as (read, write):
                task_status.started()
                await self._run_session(SdkLink(read, write, side="server", log=self._log))
        except Exception as exc:
            print(f"tether-mcp: HTTP session ended: {type(exc).__name__}: {exc}", file=self._log, flush=True)
        finally:
            assert transport.mcp_session_id is not None
            self._sessions.pop(transport.mcp_session_id, None)
            with anyio.CancelScope(shield=True):
                await transport.terminate()


async def _plain(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", b"application/json"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
