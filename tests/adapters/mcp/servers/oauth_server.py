"""An OAuth-protected MCP server for the proxy tests, built with the ``mcp`` SDK's server-side auth.

The server is its own authorization server (as the SDK's examples are): dynamic
client registration, an ``/authorize`` that approves at once (the user's consent
is the test following the redirect, as a browser would), PKCE-checked codes,
access tokens that expire after ``OAUTH_TOKEN_TTL`` seconds (default 3600) and
rotating refresh tokens. Everything is in memory, so a restarted server no
longer knows the tokens it issued (the proxy must then report it unauthorized).

    python oauth_server.py PORT [--sse]

``--sse`` serves the legacy HTTP+SSE transport at ``/sse`` (messages to ``/messages/``)
instead of streamable HTTP at ``/mcp``.

Environment: ``OAUTH_ANNOUNCED_TTL`` (the lifetime told to clients, default the real one: a longer
one makes the server refuse tokens the client still thinks valid, as after a revocation),
``OAUTH_LOG`` (a file that gets one line per event: ``register``,
``authorize``, ``token``, ``refresh``, ``call <tool> <client_id>``; never a token).
Tools: ``echo(text)`` and ``whoami()`` (the caller's client id and scopes).
"""

from __future__ import annotations

import os
import secrets
import sys
import time

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

TTL = int(os.environ.get("OAUTH_TOKEN_TTL", "3600"))
ANNOUNCED_TTL = int(os.environ.get("OAUTH_ANNOUNCED_TTL", str(TTL)))
LOG = os.environ.get("OAUTH_LOG")


def _log(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class MemoryProvider:
    """An in-memory OAuth authorization server provider (``OAuthAuthorizationServerProvider``)."""

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info
        _log("register")

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        code = secrets.token_urlsafe(32)
        assert client.client_id is not None
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or ["mcp"],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject="ana",
        )
        _log("authorize")
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str) -> AuthorizationCode | None:
        code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes, expires_at=int(time.time()) + TTL, resource=resource, subject="ana"
        )
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource, subject="ana")
        return OAuthToken(access_token=access, token_type="Bearer", expires_in=ANNOUNCED_TTL, refresh_token=refresh, scope=" ".join(scopes))

    async def exchange_authorization_code(self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        _log("token")
        assert client.client_id is not None
        return self._issue(client.client_id, authorization_code.scopes, authorization_code.resource)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        token = self.refresh.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        self.refresh.pop(refresh_token.token, None)  # rotated
        _log("refresh")
        assert client.client_id is not None
        return self._issue(client.client_id, scopes or refresh_token.scopes, refresh_token.resource)

    async def load_access_token(self, token: str) -> AccessToken | None:
        access = self.access.get(token)
        if access is None or (access.expires_at is not None and access.expires_at < time.time()):
            return None
        return access

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)


def main() -> None:
    port = int(sys.argv[1])
    sse = "--sse" in sys.argv[2:]
    base = f"http://127.0.0.1:{port}"
    auth = AuthSettings(
        issuer_url=base,  # type: ignore[arg-type]
        resource_server_url=f"{base}/sse" if sse else f"{base}/mcp",  # type: ignore[arg-type]
        client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=["mcp"], default_scopes=["mcp"]),
        required_scopes=["mcp"],
        validate_token_resource=False,
    )
    server = MCPServer("oauth-toy", auth_server_provider=MemoryProvider(), auth=auth)

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        token = get_access_token()
        _log(f"call echo {token.client_id if token else '-'}")
        return text

    @server.tool()
    def whoami() -> str:
        """The caller's OAuth client id and scopes."""
        token = get_access_token()
        _log(f"call whoami {token.client_id if token else '-'}")
        return f"{token.client_id} {' '.join(token.scopes)}" if token else "anonymous"

    if sse:
        anyio.run(lambda: server.run_sse_async(host="127.0.0.1", port=port))
    else:
        anyio.run(lambda: server.run_streamable_http_async(host="127.0.0.1", port=port))


if __name__ == "__main__":
    main()
