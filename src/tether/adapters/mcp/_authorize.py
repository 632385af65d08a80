"""``tether mcp auth``: the one interactive step of the MCP authorization flow towards a remote server.

The user's browser does the authorization; Tether prints the URL, receives the
redirect on a loopback port, exchanges the code (PKCE) and keeps the tokens in
the server's 0600 file beside the event store, where every ``tether mcp`` on
that store finds them (and refreshes them when they expire).

The SDK is imported when :func:`authorize_oauth` runs, so importing this module (and the
package) loads none.
"""

from __future__ import annotations

import contextlib
import sys
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tether.adapters.mcp._links import UpstreamError
from tether.adapters.mcp._oauth_config import OAuthSettings, oauth_folder, token_path
from tether.adapters.mcp._upstream import Upstream
from tether.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Authorized:
    """What ``tether mcp auth`` did."""

    path: Path
    """The file the tokens are kept in (mode 0600)."""
    tools: int
    """How many tools the server lists to the authorized client."""
    server: str
    """The server's ``serverInfo.name``."""


async def authorize_oauth(
    spec: Upstream,
    state: str,
    *,
    port: int | None = None,
    timeout_s: float = 300.0,
    show: Callable[[str], None] | None = None,
    browser: bool = False,
    log: TextIO = sys.stderr,
) -> Authorized:
    """Authorize Tether towards the URL server ``spec`` afresh and keep its tokens beside the store at ``state``.

    ``show`` is given the authorization URL (the person opens it; ``browser`` also opens it in the
    default browser). Raises :class:`UpstreamError` with one line when nothing was authorized.
    """
    from tether.adapters.mcp._http import open_url
    from tether.adapters.mcp._oauth import FileTokenStorage, LoopbackCallback, auth_problem, provider, quiet_sdk_auth_logs
    from tether.adapters.mcp._tool_client import McpConnection

    if spec.url is None:
        raise ConfigError("OAuth is for URL servers: give --url, or a gateway server with `url` and `auth: oauth`")
    folder = oauth_folder(state)
    if folder is None:
        raise ConfigError("an in-memory store keeps no OAuth tokens: give --db FILE (the one tether mcp uses)")
    settings = spec.oauth or OAuthSettings()
    quiet_sdk_auth_logs()
    say = show or (lambda url: print(url, file=log, flush=True))
    async with LoopbackCallback(settings.redirect_port if port is None else port) as callback:
        uri = callback.uri
        storage = FileTokenStorage(token_path(folder, spec.url), spec.url, settings, uri)
        # A fresh authorization: drop old tokens; a registration made for another redirect port is dropped too.
        storage.forget(client=not settings.client_id and uri not in storage.stored_redirect_uris())

        async def redirect(url: str) -> None:
            say(url)
            if browser:
                with contextlib.suppress(Exception):
                    webbrowser.open(url)

        auth = provider(spec.url, settings, storage, uri, redirect=redirect, callback=lambda: callback.wait(timeout_s))
        try:
            async with open_url(spec.url, log=log, headers=spec.headers, transport=spec.transport, auth=auth) as link:
                conn = McpConnection(spec, link)
                try:
                    await conn.start(timeout_s + 30.0)
                    tools = await conn.list_tools(60.0)
                finally:
                    await conn.stop()
        except Exception as exc:  # the SDK's transport raises what its tasks raised, in exception groups
            why = auth.problem or auth_problem(exc)
            if why is None and not isinstance(exc, UpstreamError):
                raise
            raise UpstreamError(why or str(exc)) from None
    if not storage.has_tokens():
        raise UpstreamError(f"{spec.url} answered without asking for authorization: it needs no OAuth; nothing was stored")
    name = conn.init.get("serverInfo", {}).get("name") if isinstance(conn.init.get("serverInfo"), dict) else None
    return Authorized(storage.path, len(tools), str(name or spec.url))


def forget_oauth(spec: Upstream, state: str) -> Path | None:
    """Delete the tokens and registration kept for ``spec`` (the file; None when there was none)."""
    folder = oauth_folder(state)
    if spec.url is None or folder is None:
        return None
    path = token_path(folder, spec.url)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return path
