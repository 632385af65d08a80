"""``tether mcp auth``: authorize Tether towards a remote MCP server that uses OAuth (once; tokens refresh themselves)."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console
from tether.cli._mcp_common import fail
from tether.errors import ConfigError, RuntimeFailure


def _pick(server: str | None, url: str | None, gateway_file: str | None, headers: tuple[str, ...], sse: bool, scopes: str | None) -> Any:
    """The URL server to authorize: from --url, or SERVER of a gateway file (the only OAuth one when SERVER is left out)."""
    import dataclasses

    from tether.adapters.mcp import OAuthSettings, Upstream, load_gateway
    from tether.cli._mcp_common import upstreams_of

    if url is not None:
        if gateway_file or server:
            raise ConfigError("give --url, or SERVER with --config, not both")
        spec = upstreams_of((), url, (), None, headers, sse)[0]
        return dataclasses.replace(spec, oauth=OAuthSettings(scopes=scopes))
    if gateway_file is None:
        raise ConfigError("name the server: --url URL, or SERVER with --config GATEWAY_FILE")
    specs: list[Upstream] = load_gateway(gateway_file)
    oauth = [s for s in specs if s.oauth is not None]
    if server is None:
        if len(oauth) != 1:
            names = ", ".join(s.name for s in oauth) or "none"
            raise ConfigError(f"name the server to authorize (servers with `auth: oauth` in {gateway_file}: {names})")
        spec = oauth[0]
    else:
        found = [s for s in specs if server in (s.name, s.name.replace("-", "_"))]
        if not found:
            raise ConfigError(f"{gateway_file} has no server {server!r} (it has {', '.join(s.name for s in specs)})")
        spec = found[0]
        if spec.url is None:
            raise ConfigError(f"server {server!r} is started by a command; OAuth is for URL servers")
        if spec.oauth is None:
            raise ConfigError(f"server {server!r} has no `auth: oauth` in {gateway_file}; add it so that tether mcp uses the tokens")
    if scopes and spec.oauth is not None:
        spec = dataclasses.replace(spec, oauth=dataclasses.replace(spec.oauth, scopes=scopes))
    return spec


@click.command("auth")
@db_option
@click.option(
    "--config", "gateway_file", type=click.Path(dir_okay=False, exists=True), default=None, help="The gateway file naming SERVER."
)
@click.option("--url", default=None, help="A lone server's URL instead of a gateway's SERVER (what `tether mcp --url ... --oauth` uses).")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE", help="With --url: an HTTP header for the server.")
@click.option("--sse", is_flag=True, help="With --url: the server speaks the legacy HTTP+SSE transport.")
@click.option("--scopes", default=None, help="Scopes to ask for, space-separated (default: the config's, else the server's).")
@click.option("--port", type=int, default=None, help="Loopback port of the redirect (default: the config's redirect_port, else any).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, help="Seconds to wait for the redirect.")
@click.option("--browser", is_flag=True, help="Also open the authorization URL in the default browser.")
@click.option("--forget", is_flag=True, help="Delete the stored tokens and registration instead (tether mcp then reports it unauthorized).")
@click.argument("server", required=False)
def auth_cmd(
    db: str,
    gateway_file: str | None,
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    scopes: str | None,
    port: int | None,
    timeout_s: float,
    browser: bool,
    forget: bool,
    server: str | None,
) -> None:
    """Authorize Tether towards the OAuth-protected MCP server SERVER (of --config) or --url, once.

    Prints the authorization URL: open it, approve, and the server's redirect comes back to a
    loopback port here. The tokens are kept in a 0600 file beside the event store (--db: the one
    `tether mcp` uses), never in the event log and never printed; `tether mcp` refreshes them when
    they expire. Run it again when the server refuses them (`tether mcp status` says so).
    """
    import asyncio

    from tether.adapters.mcp import authorize_oauth, forget_oauth

    try:
        spec = _pick(server, url, gateway_file, headers, sse, scopes)
        if forget:
            path = forget_oauth(spec, db)
            console.print(f"forgot the OAuth tokens of {escape(spec.url)} ({escape(str(path))})" if path else "no OAuth tokens were stored")
            return

        def show(auth_url: str) -> None:
            err_console.print(f"Open this URL in a browser to authorize Tether for {escape(spec.name or spec.url)}:", soft_wrap=True)
            click.echo(auth_url)
            err_console.print(f"Waiting up to {timeout_s:g} s for the redirect ...", soft_wrap=True)

        done = asyncio.run(authorize_oauth(spec, db, port=port, timeout_s=timeout_s, show=show, browser=browser))
    except (ConfigError, RuntimeFailure) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        raise fail("interrupted; nothing was authorized") from None
    console.print(
        f"authorized: {escape(done.server)} lists {done.tools} tool(s); tokens kept in {escape(str(done.path))} (mode 0600), "
        "refreshed by tether mcp when they expire",
        soft_wrap=True,
    )
