"""``tether mcp ...``: the guarding MCP proxy, its tool-definition pins, and a starting policy.

``tether mcp --policy FILE -- <server command>`` is short for
``tether mcp run --policy FILE -- <server command>``. The ``mcp`` package is
imported only when a command runs, so the rest of the CLI works without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import answer_options, console, db_option, err_console, open_store
from tether.errors import ConfigError, PolicyError, SessionError
from tether.policy._compiled import Policy


class _McpGroup(click.Group):
    """A group whose default command is ``run``: ``tether mcp --policy P -- cmd`` works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_McpGroup)
def mcp() -> None:
    """Guard any MCP server: check every tool call, label every result, log every step."""


def _upstream(command: tuple[str, ...], url: str | None) -> Any:
    from tether.adapters.mcp import Upstream

    try:
        # A stdio server gets the proxy's whole environment, as it would if the client started it.
        return Upstream(command=command, url=url, env=dict(os.environ) if command else {})
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None


@mcp.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False, exists=True), help="The policy to enforce.")
@db_option
@click.option("--url", default=None, help="Upstream server over streamable HTTP instead of a command.")
@click.option("--http", "http_port", type=int, default=None, help="Serve the proxy over streamable HTTP on this port (default: stdio).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address for --http.")
@click.option("--task", default=None, help="The user's trusted task text for the session.")
@click.option("--principal", default="user", show_default=True, help="Who the agent acts for.")
@click.option("--session-id", default=None, help="A fixed session id (default: a fresh one).")
@click.option("--no-pins", is_flag=True, help="Do not pin tool definitions.")
@click.option("--pin-key", default=None, help="Name of this server's pins (default: from the command or URL).")
@click.option("--call-timeout", type=float, default=120.0, show_default=True, help="Seconds before an upstream call fails.")
@click.option("--no-elicit", is_flag=True, help="Never ask through MCP elicitation; wait for `tether approvals` only.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_cmd(
    policy_path: str,
    db: str,
    url: str | None,
    http_port: int | None,
    host: str,
    task: str | None,
    principal: str,
    session_id: str | None,
    no_pins: bool,
    pin_key: str | None,
    call_timeout: float,
    no_elicit: bool,
    command: tuple[str, ...],
) -> None:
    """Serve MCP, forwarding to the server started by COMMAND (after --), checking every call."""
    from tether.adapters.mcp import ProxyConfig, ServeOptions, serve

    upstream = _upstream(command, url)
    try:
        policy = Policy.from_file(policy_path)
    except PolicyError as exc:
        err_console.print(f"[red]invalid policy[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    store = open_store(db, must_exist=False)
    options = ServeOptions(
        transport="http" if http_port is not None else "stdio",
        host=host,
        port=http_port or 0,
        task=task,
        principal=principal,
        session_id=session_id,
        pins=not no_pins,
        pin_key=pin_key,
    )
    config = ProxyConfig(call_timeout_s=call_timeout, elicit=not no_elicit)
    try:
        import anyio

        anyio.run(serve, policy, store, upstream, options, config)
    except (ConfigError, SessionError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass


@mcp.command("policy-init", context_settings={"ignore_unknown_options": True})
@click.option("--url", default=None, help="Upstream server over streamable HTTP instead of a command.")
@click.option("--name", default=None, help="The policy's name (default: the server's).")
@click.option(
    "--default", "default", type=click.Choice(["ask", "deny"]), default="ask", show_default=True, help="What every tool starts with."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here (default: stdout).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def policy_init_cmd(url: str | None, name: str | None, default: str, output: str | None, command: tuple[str, ...]) -> None:
    """List the tools of the server started by COMMAND and write a starting policy for them."""
    from tether.adapters.mcp import connect, list_all_tools, starting_policy

    upstream = _upstream(command, url)

    async def fetch() -> tuple[str, list[Any]]:
        async with connect(upstream) as client:
            init = client.initialize_result
            return (init.server_info.name if init is not None else "mcp-server"), await list_all_tools(client)

    import anyio

    server_name, tools = anyio.run(fetch)
    text = starting_policy(name or server_name, tools, default="deny" if default == "deny" else "ask", source=upstream.describe())
    Policy.from_yaml(text, source="<generated>")  # what we write must load
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        err_console.print(f"wrote a starting policy for {len(tools)} tool(s) to {output}")


@mcp.group("pins")
def pins() -> None:
    """Tool-definition pins: list them, approve or refuse a new or changed definition."""


@pins.command("list")
@db_option
@click.option("--all", "show_all", is_flag=True, help="Show every definition, not only pending ones and current pins.")
def pins_list_cmd(db: str, show_all: bool) -> None:
    """Show each server's pinned, pending and refused tool definitions."""
    from tether.adapters.mcp import PinBook, pin_keys

    store = open_store(db)
    for key in pin_keys(store):
        console.print(f"[bold]{escape(key)}[/]")
        records = PinBook(store, key).records()
        latest = {(r.tool): r for r in records}
        for rec in records:
            if not show_all and latest[rec.tool] is not rec and rec.status != "pending":
                continue
            desc = str(rec.definition.get("description", ""))
            console.print(f"  {rec.status:<8} {rec.call_id}  {escape(rec.tool)}  {rec.hash[:19]}  {escape(desc[:80])!r}", soft_wrap=True)


def _pin_answer(db: str, call: str, approved: bool, by: str, note: str) -> None:
    from tether.adapters.mcp import PinBook, pin_keys

    store = open_store(db)
    found = [
        (key, rec)
        for key in pin_keys(store)
        for rec in PinBook(store, key).records()
        if rec.call_id.startswith(call) and rec.status == "pending"
    ]
    if len(found) != 1:
        err_console.print(f"[red]error:[/] {'no' if not found else 'more than one'} pending pin matches {call!r}")
        raise SystemExit(2)
    key, rec = found[0]
    result = PinBook(store, key).answer(rec.call_id, approved, by=by, note=note)
    console.print(f"{escape(rec.tool)} ({rec.hash[:19]}) on {escape(key)}: {result.status}")


@pins.command("approve")
@db_option
@answer_options
@click.argument("call")
def pins_approve_cmd(db: str, by: str, note: str, call: str) -> None:
    """Approve the pending definition CALL (an id from `pins list`, or a unique prefix)."""
    _pin_answer(db, call, True, by, note)


@pins.command("deny")
@db_option
@answer_options
@click.argument("call")
def pins_deny_cmd(db: str, by: str, note: str, call: str) -> None:
    """Refuse the pending definition CALL; the tool stays hidden and its calls denied."""
    _pin_answer(db, call, False, by, note)
