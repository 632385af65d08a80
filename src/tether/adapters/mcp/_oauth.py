"""The MCP authorization flow (OAuth 2.1) towards remote servers, through the ``mcp`` SDK's client provider.

A URL server configured with ``auth: oauth`` is reached with the SDK's
:class:`~mcp.client.auth.OAuthClientProvider` (discovery of the protected
resource and authorization server metadata, dynamic client registration or a
pre-registered client, PKCE, refresh). Tether adds what a gateway needs around
it:

- **Tokens in a file, not in the log.** Each server's tokens and registered
  client live in one JSON file, mode 0600, in a folder beside the event store
  (``<db>-mcp-oauth/``, mode 0700), never in the event log and never printed.
  The expiry is kept as an absolute time, so a token that expired while no
  proxy ran is refreshed before it is sent.
- **One interactive step.** ``tether mcp auth SERVER`` prints the authorization
  URL and receives the redirect on a loopback port (:class:`LoopbackCallback`);
  the proxy itself never opens a browser or waits for a person.
- **Fail closed, one line.** A server without tokens is not even connected; one
  whose tokens the server refuses (and whose refresh fails) ends its link with
  the reason (:class:`NeedsAuthorization`): the supervisor reports it down,
  its tools are denied, and it is tried again with backoff, so the gateway
  serves the others meanwhile and picks the tokens up once someone authorizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthTokenError
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tether.adapters.mcp._oauth_config import OAuthSettings, token_path
from tether.errors import ConfigError

CALLBACK_PATH = "/callback"


class NeedsAuthorization(OAuthFlowError):
    """The server wants a person to authorize Tether (no tokens, or tokens refused and not refreshable)."""


class FileTokenStorage:
    """The SDK's ``TokenStorage`` for one server: its tokens and registered client in one 0600 JSON file.

    ``settings.client_id`` (a pre-registered client) stands in for a registration when the file has none.
    """

    def __init__(self, path: Path, url: str, settings: OAuthSettings, redirect_uri: str, *, registers: bool = True) -> None:
        self.path = path
        """The file."""
        self._url = url
        self._settings = settings
        self._redirect_uri = redirect_uri
        self._registers = registers

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("url") == self._url else {}

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**data, "url": self._url}, fh, indent=1)
        os.replace(tmp, self.path)

    def has_tokens(self) -> bool:
        """Whether an access or refresh token is stored."""
        tokens = self._load().get("tokens")
        return isinstance(tokens, dict) and bool(tokens.get("access_token") or tokens.get("refresh_token"))

    @property
    def expires_at(self) -> float | None:
        """When the stored access token expires (epoch seconds; None: not said)."""
        value = self._load().get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def get_tokens(self) -> OAuthToken | None:
        """The stored tokens."""
        tokens = self._load().get("tokens")
        try:
            return OAuthToken.model_validate(tokens) if isinstance(tokens, dict) else None
        except ValueError:
            return None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        """Keep new tokens (after authorization or a refresh) with their absolute expiry."""
        data = self._load()
        data["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        data["expires_at"] = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        data["saved"] = time.time()
        self._save(data)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """The registered client (or the pre-registered one of the settings)."""
        info = self._load().get("client")
        if isinstance(info, dict):
            with contextlib.suppress(ValueError):
                return OAuthClientInformationFull.model_validate(info)
        if self._settings.client_id:
            secret = self._settings.client_secret
            return OAuthClientInformationFull(
                client_id=self._settings.client_id,
                client_secret=secret,
                redirect_uris=[AnyUrl(self._redirect_uri)],
                token_endpoint_auth_method="client_secret_post" if secret else "none",
            )
        return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Keep the client the authorization server registered (not for a running proxy's storage: only
        ``tether mcp auth`` registers, so a server cannot make a proxy replace the registration it uses)."""
        if not self._registers:
            return
        data = self._load()
        data["client"] = client_info.model_dump(mode="json", exclude_none=True)
        self._save(data)

    def stored_redirect_uris(self) -> list[str]:
        """The redirect URIs of the stored registration (empty: none stored)."""
        info = self._load().get("client")
        uris = info.get("redirect_uris") if isinstance(info, dict) else None
        return [str(u) for u in uris] if isinstance(uris, list) else []

    def forget(self, *, client: bool) -> None:
        """Drop the tokens (and the registered client too when ``client``)."""
        data = self._load()
        if not data:
            return
        for key in ("tokens", "expires_at", "saved", *(("client",) if client else ())):
            data.pop(key, None)
        self._save(data)


class TetherOAuth(OAuthClientProvider):
    """The SDK's provider, with the stored expiry restored when the tokens are loaded (the SDK keeps it only in
    memory, so a token that expired between two runs would be sent and refused instead of refreshed)."""

    def __init__(
        self,
        server_url: str,
        client_metadata: OAuthClientMetadata,
        storage: FileTokenStorage,
        redirect_handler: Callable[[str], Awaitable[None]],
        callback_handler: Callable[[], Awaitable[AuthorizationCodeResult]],
    ) -> None:
        super().__init__(server_url, client_metadata, storage, redirect_handler=redirect_handler, callback_handler=callback_handler)
        self._file = storage
        self.problem: str | None = None
        """Why the last authorization failed (one line; None: it did not)."""

    async def _initialize(self) -> None:
        await super()._initialize()
        if self.context.current_tokens is not None:
            self.context.token_expiry_time = self._file.expires_at

    async def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow, noting why it failed (the transport ends the link without saying), and refreshing once
        when the server refuses an access token the client still thought valid (the SDK would go straight to a
        new authorization, which needs a person: a token the server expired or revoked early, clocks apart)."""
        flow = super()._auth_flow(request)
        retried = False
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                if outgoing is request and response.status_code == 401 and not retried and self.context.can_refresh_token():
                    retried = True
                    refreshed = yield await self._refresh_token()
                    if await self._handle_refresh_response(refreshed):
                        self._add_auth_header(request)
                        response = yield request
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            self.problem = None
        except (OAuthFlowError, OAuthTokenError) as exc:
            self.problem = str(exc) if isinstance(exc, NeedsAuthorization) else f"not authorized: OAuth failed: {exc}"
            raise
        finally:
            await flow.aclose()


class ChallengeWatch(httpx2.Auth):
    """For a URL server without ``auth: oauth``: notices when it asks for OAuth (``401`` with a ``Bearer``
    challenge), so the proxy can say what to configure instead of "the server returned an error"."""

    def __init__(self, name: str, url: str) -> None:
        self.problem: str | None = None
        """The hint, once the server asked for authorization."""
        self._todo = f"give the server `auth: oauth` in the gateway file (or --oauth) and run `tether mcp auth {name or '--url ' + url}`"

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        response = yield request
        if response.status_code == 401 and "bearer" in response.headers.get("www-authenticate", "").lower():
            self.problem = f"the server requires authorization (HTTP 401, OAuth): {self._todo}"
        elif response.status_code < 400:
            self.problem = None


def redirect_uri(port: int) -> str:
    """The loopback redirect URI for ``port``."""
    return f"http://127.0.0.1:{port}{CALLBACK_PATH}"


def provider(
    url: str,
    settings: OAuthSettings,
    storage: FileTokenStorage,
    uri: str,
    *,
    redirect: Callable[[str], Awaitable[None]],
    callback: Callable[[], Awaitable[AuthorizationCodeResult]],
) -> TetherOAuth:
    """The provider for one server."""
    metadata = OAuthClientMetadata(
        redirect_uris=[AnyUrl(uri)],
        client_name=settings.client_name,
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=settings.scopes,
        token_endpoint_auth_method="client_secret_post" if settings.client_secret else "none",
    )
    return TetherOAuth(url, metadata, storage, redirect, callback)


def unattended(url: str, settings: OAuthSettings, folder: Path | None, name: str) -> tuple[TetherOAuth, FileTokenStorage]:
    """The provider a running proxy uses: stored tokens, refreshed when they expire; a person is never asked
    (the flow ends with :class:`NeedsAuthorization` naming ``tether mcp auth``)."""
    if folder is None:
        raise NeedsAuthorization("not authorized: an in-memory store keeps no OAuth tokens (use --db FILE)")
    path = token_path(folder, url)
    fallback = redirect_uri(settings.redirect_port or 33418)
    storage = FileTokenStorage(path, url, settings, fallback, registers=False)
    stored = storage.stored_redirect_uris()
    todo = f"run `tether mcp auth {name or '--url ' + url}` with the same --db"

    async def refuse(_url: str) -> None:
        raise NeedsAuthorization(f"not authorized: the server refused the stored OAuth tokens and they could not be refreshed; {todo}")

    async def never() -> AuthorizationCodeResult:  # pragma: no cover - refuse() raises first
        raise NeedsAuthorization(f"not authorized; {todo}")

    if not storage.has_tokens():
        raise NeedsAuthorization(f"not authorized: no OAuth tokens for {url}; {todo}")
    return provider(url, settings, storage, stored[0] if stored else fallback, redirect=refuse, callback=never), storage


def quiet_sdk_auth_logs() -> None:
    """The SDK logs a failed OAuth flow with a traceback (and a failed refresh on a line of its own); the proxy
    says why in one line instead (the link's reason), so those records are dropped."""

    class _NoAuthTracebacks(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.name == "mcp.client.auth.oauth2":
                return False
            exc = record.exc_info[1] if record.exc_info else None
            return not isinstance(exc, OAuthFlowError | OAuthTokenError | BaseExceptionGroup)

    for name in ("mcp.client.auth.oauth2", "mcp.client.streamable_http", "mcp.client.sse"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAuthTracebacks) for f in logger.filters):
            logger.addFilter(_NoAuthTracebacks())


def auth_problem(exc: BaseException) -> str | None:
    """The one-line reason in an OAuth failure (None: not one), looking inside exception groups."""
    if isinstance(exc, OAuthFlowError | OAuthTokenError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := auth_problem(inner)) is not None:
                return found
    return None


class LoopbackCallback:
    """Receives the authorization server's redirect on a loopback port, once (``GET /callback?code=...&state=...``)."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[AuthorizationCodeResult] | None = None

    async def __aenter__(self) -> LoopbackCallback:
        self._result = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
        except OSError as exc:
            raise ConfigError(f"cannot listen for the OAuth redirect on 127.0.0.1:{self._port}: {exc.strerror or exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    @property
    def uri(self) -> str:
        """The redirect URI (with the port actually bound)."""
        assert self._server is not None
        return redirect_uri(int(self._server.sockets[0].getsockname()[1]))

    async def wait(self, timeout_s: float) -> AuthorizationCodeResult:
        """The code and state of the redirect; :class:`NeedsAuthorization` on a refusal or after ``timeout_s``."""
        assert self._result is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout_s)
        except TimeoutError:
            raise NeedsAuthorization(f"no redirect came back within {timeout_s:g} s; nothing was authorized") from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            target = rest.rsplit(" ", 1)[0]
            parts = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if method != "GET" or parts.path != CALLBACK_PATH or self._result is None or self._result.done():
                await _respond(writer, 404, "Not the Tether authorization callback.")
                return
            if "error" in query:
                reason = query["error"] + (f" ({query['error_description']})" if query.get("error_description") else "")
                self._result.set_exception(NeedsAuthorization(f"the authorization server refused: {reason}"))
                await _respond(writer, 200, "Tether: the authorization was refused. You can close this tab.")
                return
            if not query.get("code"):
                await _respond(writer, 400, "The redirect carries no authorization code.")
                return
            self._result.set_result(AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss")))
            await _respond(writer, 200, "Tether is authorized. You can close this tab.")
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        finally:
            writer.close()


async def _respond(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    body = f"<!doctype html><title>Tether</title><p>{text}</p>".encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    with contextlib.suppress(OSError):
        await writer.drain()
