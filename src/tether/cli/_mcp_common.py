"""Helpers the ``tether mcp`` commands share: where the servers are, listing them, the lint's findings by client name."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from tether.cli._common import err_console
from tether.errors import ConfigError, RuntimeFailure


def fail(text: str, code: int = 2) -> SystemExit:
    err_console.print(f"[red]error:[/] {escape(text)}", soft_wrap=True)
    return SystemExit(code)


def servers_options(fn: Any) -> Any:
    """``--url``, ``--server NAME=COMMAND`` (repeatable) and ``--config FILE``: where the upstream server(s) are."""
    fn = click.option(
        "--config",
        "gateway_file",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="Gateway file (YAML/JSON): `servers:` (or `mcpServers:`) naming several upstream servers.",
    )(fn)
    fn = click.option(
        "--server",
        "server_specs",
        multiple=True,
        metavar="NAME=COMMAND",
        help="An upstream server of a gateway (repeat it); its tools become NAME__TOOL.",
    )(fn)
    fn = click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="NAME=VALUE",
        help="With --url: an HTTP header for the server (repeatable; ${env:NAME} is expanded; never logged).",
    )(fn)
    fn = click.option("--sse", is_flag=True, help="With --url: the server speaks the legacy HTTP+SSE transport.")(fn)
    fn = click.option(
        "--oauth", is_flag=True, help="With --url: the server uses the MCP authorization flow (tokens from `tether mcp auth --url`)."
    )(fn)
    return click.option("--url", default=None, help="Upstream server over streamable HTTP (or --sse) instead of a command.")(fn)


def _url_headers(headers: tuple[str, ...]) -> dict[str, str]:
    from tether.adapters.mcp import expand_variables

    out: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--header {name!r}: write NAME=VALUE (for example Authorization='Bearer ${{env:TOKEN}}')")
        out[name.strip()] = expand_variables(value.strip(), "--url", "--header")
    return out


def upstreams_of(
    command: tuple[str, ...],
    url: str | None,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    headers: tuple[str, ...] = (),
    sse: bool = False,
    oauth: bool = False,
) -> list[Any]:
    from tether.adapters.mcp import OAuthSettings, Upstream, check_gateway, load_gateway, server_option

    try:
        if (headers or sse or oauth) and url is None:
            raise ConfigError(
                "--header, --sse and --oauth go with --url (a gateway file gives each server its own `headers`, `type` and `auth`)"
            )
        if server_specs or gateway_file:
            if command or url:
                raise ConfigError("give a server command (or --url), or a gateway (--server/--config), not both")
            servers = [server_option(s) for s in server_specs]
            if gateway_file:
                servers += load_gateway(gateway_file)
            check_gateway(servers)
            return servers
        if url is not None:
            settings = OAuthSettings() if oauth else None
            return [Upstream(url=url, headers=_url_headers(headers), transport="sse" if sse else "http", oauth=settings)]
        return [Upstream(command=command, url=url)]
    except ConfigError as exc:
        raise fail(str(exc)) from None


def listings_of(upstreams: list[Any], *, state: str | None = None) -> list[Any]:
    """Each server's listing (``state``: the store whose OAuth tokens reach OAuth servers)."""
    import asyncio

    from tether.adapters.mcp import list_server

    async def fetch() -> list[Any]:
        return [await list_server(u, state=state) for u in upstreams]

    try:
        return asyncio.run(fetch())
    except (ConfigError, RuntimeFailure) as exc:
        raise fail(str(exc)) from None


def client_names(upstream: Any, listing: Any) -> dict[str, str]:
    """A gateway server's tool names as clients see them (``server__tool``, shortened past 64 characters)."""
    from tether.adapters.mcp import gateway_tool_names

    return gateway_tool_names(upstream.name, [str(t["name"]) for t in listing.tools])


def findings_of(upstreams: list[Any], listings: list[Any], gateway: bool) -> list[list[Any]]:
    """The lint's findings per server; in a gateway, tool and prompt names as the client sees them (``server__name``)."""
    import dataclasses

    from tether.adapters.mcp import gateway_findings

    per_server = gateway_findings([u.name for u in upstreams], listings)
    if not gateway:
        return per_server
    out: list[list[Any]] = []
    for u, li, found in zip(upstreams, listings, per_server, strict=True):
        names = client_names(u, li)
        out.append(
            [
                dataclasses.replace(f, definition=names.get(f.definition, f"{u.name}__{f.definition}"))
                if f.kind in ("tool", "prompt")
                else f
                for f in found
            ]
        )
    return out
