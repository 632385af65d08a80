"""``tether mcp ...``: the guarding MCP proxy (or gateway), its tool-definition pins, and a starting policy.

``tether mcp --policy FILE -- <server command>`` is short for
``tether mcp run --policy FILE -- <server command>``. The adapter is imported
only when a command runs, so the rest of the CLI starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import answer_options, console, db_option, err_console, open_store
from tether.cli._mcp_auth import auth_cmd
from tether.cli._mcp_common import client_names as _client_names
from tether.cli._mcp_common import fail as _fail
from tether.cli._mcp_common import findings_of as _findings
from tether.cli._mcp_common import listings_of as _listings
from tether.cli._mcp_common import servers_options as _servers_options
from tether.cli._mcp_common import upstreams_of as _upstreams
from tether.cli._mcp_deploy import install_cmd, status_cmd, token, uninstall_cmd
from tether.errors import ConfigError, PolicyError, RuntimeFailure, SessionError, StoreError
from tether.policy import Policy
from tether.store import open_store as open_event_store


class _McpGroup(click.Group):
    """A group whose default command is ``run``: ``tether mcp --policy P -- cmd`` works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_McpGroup)
def mcp() -> None:
    """Guard any MCP server: check every tool call, label every result, log every step.

    \b
    tether mcp --policy FILE [--db FILE] -- CMD [ARGS...]   guard the stdio server CMD
    tether mcp --policy FILE --config GATEWAY.yaml          several servers, one session
    tether mcp --policy FILE --url URL                      an upstream over streamable HTTP

    'tether mcp ...' without a command name is 'tether mcp run ...'. Needs the mcp extra
    (pip install 'tether-guard[mcp]').
    """


def _task(task: str | None, task_file: str | None) -> str | None:
    parts = [task] if task else []
    if task_file:
        try:
            parts.append(Path(task_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read --task-file {task_file!r}: {exc}") from None
    return "\n\n".join(parts) or None


@mcp.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False, exists=True), help="The policy to enforce.")
@db_option
@_servers_options
@click.option("--http", "http_port", type=int, default=None, help="Serve the proxy over streamable HTTP on this port (default: stdio).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --http (loopback unless --allow-remote).")
@click.option("--no-auth", is_flag=True, help="With --http on loopback: accept requests without the bearer token.")
@click.option("--allow-remote", is_flag=True, help="With --http: bind a non-loopback --host (the bearer token is then required).")
@click.option(
    "--session-per-connection",
    is_flag=True,
    help="With --http: a Tether session per MCP connection (default: one for the principal, so budgets span connections).",
)
@click.option("--task", default=None, help="The user's trusted task text for the session (values in it are trusted).")
@click.option("--task-file", type=click.Path(dir_okay=False), default=None, help="Read more trusted task text from this file.")
@click.option("--principal", default="user", show_default=True, help="Who the agent acts for.")
@click.option("--session-id", default=None, help="A fixed session id (default: a fresh one).")
@click.option("--no-pins", is_flag=True, help="Do not pin tool definitions.")
@click.option("--pin-key", default=None, help="Name of this server's pins (default: from the command or URL).")
@click.option("--call-timeout", type=float, default=120.0, show_default=True, help="Seconds before an upstream tool call fails.")
@click.option("--ask-timeout", type=float, default=50.0, show_default=True, help="Longest wait for a human's approval (seconds).")
@click.option("--no-elicit", is_flag=True, help="Never ask through MCP elicitation; wait for `tether approvals` only.")
@click.option("--hide-denied", is_flag=True, help="Leave out of tools/list the tools the policy never allows.")
@click.option(
    "--restart-backoff",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds before a server that exited is started again (doubling per failure, up to 60; 0: never restart).",
)
@click.option(
    "--durability",
    type=click.Choice(["normal", "full"]),
    default="normal",
    show_default=True,
    help="normal: a logged event survives a crash of any process; full: also a power loss (an fsync per commit).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_cmd(
    policy_path: str,
    db: str,
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    oauth: bool,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    http_port: int | None,
    host: str,
    no_auth: bool,
    allow_remote: bool,
    session_per_connection: bool,
    task: str | None,
    task_file: str | None,
    principal: str,
    session_id: str | None,
    no_pins: bool,
    pin_key: str | None,
    call_timeout: float,
    ask_timeout: float,
    no_elicit: bool,
    hide_denied: bool,
    restart_backoff: float,
    durability: str,
    command: tuple[str, ...],
) -> None:
    """Serve MCP, forwarding to the server started by COMMAND (after --), or to a gateway's servers, checking every call."""
    from tether.adapters.mcp import ProxyConfig, ServeOptions, serve

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse, oauth)
    try:
        policy = Policy.from_file(policy_path)
    except PolicyError as exc:
        raise _fail(f"invalid policy {exc}") from None
    try:
        store = open_event_store(db, durability="full" if durability == "full" else "normal")
    except StoreError as exc:
        raise _fail(str(exc)) from None
    options = ServeOptions(
        transport="http" if http_port is not None else "stdio",
        host=host,
        port=http_port or 0,
        task=_task(task, task_file),
        principal=principal,
        session_id=session_id,
        pins=not no_pins,
        pin_key=pin_key,
        gateway=bool(server_specs or gateway_file),
        session_per_connection=session_per_connection,
        auth=not no_auth,
        allow_remote=allow_remote,
    )
    config = ProxyConfig(
        call_timeout_s=call_timeout,
        ask_timeout_s=ask_timeout,
        elicit=not no_elicit,
        hide_denied=hide_denied,
        restart=restart_backoff > 0,
        restart_backoff_s=max(restart_backoff, 0.05),
        restart_backoff_max_s=max(60.0, restart_backoff),
    )
    import asyncio

    try:
        asyncio.run(serve(policy, store, upstreams, options, config))
    except (ConfigError, SessionError, RuntimeFailure) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass


@mcp.command("lint", context_settings={"ignore_unknown_options": True})
@db_option
@_servers_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, one per line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def lint_cmd(
    db: str,
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    oauth: bool,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Lint what the server started by COMMAND (or a gateway's servers) gives the model; exit 1 when anything is flagged.

    Deterministic rules (docs/mcp.md): instructions to the model, concealment from the user,
    references to other servers' tools, paths, URLs and addresses, hidden or look-alike Unicode,
    and free-form arguments the tool does not need.
    """
    import dataclasses

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse, oauth)
    listings = _listings(upstreams, state=db)
    gateway = bool(server_specs or gateway_file)
    total = 0
    for upstream, found in zip(upstreams, _findings(upstreams, listings, gateway), strict=True):
        total += len(found)
        if as_json:
            for f in found:
                click.echo(json.dumps({"server": upstream.name or upstream.describe(), **dataclasses.asdict(f)}, ensure_ascii=False))
            continue
        console.print(f"[bold]{escape(upstream.name or upstream.describe())}[/]: {len(found) or 'nothing'} flagged", soft_wrap=True)
        for f in found:
            console.print(f"  {escape(f.line())}", soft_wrap=True, highlight=False)
    if total:
        raise SystemExit(1)


@mcp.command("policy-init", context_settings={"ignore_unknown_options": True})
@db_option
@_servers_options
@click.option("--name", default=None, help="The policy's name (default: the server's).")
@click.option(
    "--default", "default", type=click.Choice(["ask", "deny"]), default="ask", show_default=True, help="What every tool starts with."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here (default: stdout).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def policy_init_cmd(
    db: str,
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    oauth: bool,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    name: str | None,
    default: str,
    output: str | None,
    command: tuple[str, ...],
) -> None:
    """List the tools of the server started by COMMAND (or of a gateway's servers) and write a starting policy."""
    from tether.adapters.mcp import starting_policy

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse, oauth)
    listings = _listings(upstreams, state=db)
    gateway = bool(server_specs or gateway_file)
    tools = [
        {**t, "name": _client_names(u, li)[t["name"]]} if gateway else t
        for u, li in zip(upstreams, listings, strict=True)
        for t in li.tools
    ]
    server_name = "gateway" if gateway else str(listings[0].server_info.get("name") or "mcp-server")
    source = ", ".join(u.describe() for u in upstreams)
    prefixes = [f"{u.name}__" if gateway else "" for u in upstreams]
    findings = [f for found in _findings(upstreams, listings, gateway) for f in found]
    text = starting_policy(
        name or server_name,
        tools,
        default="deny" if default == "deny" else "ask",
        source=source,
        pseudo_prefixes=prefixes,
        findings=findings,
    )
    Policy.from_yaml(text, source="<generated>")  # what we write must load
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        err_console.print(f"wrote a starting policy for {len(tools)} tool(s) to {output}")


@mcp.group("pins")
def pins() -> None:
    """Tool-definition pins: review a server's definitions, list them, approve or refuse a new or changed one."""


@pins.command("list")
@db_option
@click.option("--all", "show_all", is_flag=True, help="Show every definition, not only pending ones and current pins.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per definition.")
def pins_list_cmd(db: str, show_all: bool, as_json: bool) -> None:
    """Show each server's pinned, pending and refused definitions (`reviewed` marks those a human approved)."""
    from tether.adapters.mcp import PinBook, pin_keys

    store = open_store(db, read_only=True)
    for key in pin_keys(store):
        if not as_json:
            console.print(f"[bold]{escape(key)}[/]")
        records = PinBook(store, key).records()
        latest = {r.tool: r for r in records}
        for rec in records:
            if not show_all and latest[rec.tool] is not rec and rec.status != "pending":
                continue
            if as_json:
                doc = {
                    "server": key,
                    "call": rec.call_id,
                    "tool": rec.tool,
                    "status": rec.status,
                    "reviewed": rec.reviewed,
                    "hash": rec.hash,
                }
                click.echo(json.dumps(doc, ensure_ascii=False))
                continue
            what = str(rec.definition.get("description", rec.definition.get("instructions", "")) or "")
            status = "reviewed" if rec.reviewed else rec.status
            console.print(f"  {status:<8} {rec.call_id}  {escape(rec.tool)}  {rec.hash[:19]}  {escape(what[:80])!r}", soft_wrap=True)


def _find(store: Any, call: str, *, pending_only: bool) -> tuple[str, Any]:
    from tether.adapters.mcp import PinBook, pin_keys

    found = [
        (key, rec)
        for key in pin_keys(store)
        for rec in PinBook(store, key).records()
        if rec.call_id.startswith(call) and (rec.status == "pending" or not pending_only)
    ]
    if len(found) != 1:
        raise _fail(f"{'no' if not found else 'more than one'} {'pending ' if pending_only else ''}pin matches {call!r}")
    key, rec = found[0]
    return key, rec


@pins.command("show")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One line of JSON (the default is the same object, indented for reading).")
@click.argument("call")
def pins_show_cmd(db: str, as_json: bool, call: str) -> None:
    """Print one definition in full (CALL: an id from `pins list`, or a unique prefix)."""
    store = open_store(db, read_only=True)
    key, rec = _find(store, call, pending_only=False)
    click.echo(json.dumps({"server": key, "call": rec.call_id, "status": rec.status, "reviewed": rec.reviewed, "hash": rec.hash,
                           "definition": rec.definition}, indent=None if as_json else 2, ensure_ascii=False))  # fmt: skip


def _pin_answer(db: str, call: str, approved: bool, by: str, note: str) -> None:
    from tether.adapters.mcp import PinBook

    store = open_store(db)
    key, rec = _find(store, call, pending_only=True)
    result = PinBook(store, key).answer(rec.call_id, approved, by=by, note=note)
    console.print(f"{escape(rec.tool)} ({rec.hash[:19]}) on {escape(key)}: {result.status}")


@pins.command("approve")
@db_option
@answer_options
@click.option("--all", "approve_all", is_flag=True, help="Approve every pending and first-use definition (of --pins, or of every server).")
@click.option("--pins", "pin_key", default=None, help="With --all: only this server's pins (a key from `pins list`).")
@click.argument("call", required=False)
def pins_approve_cmd(db: str, by: str, note: str, approve_all: bool, pin_key: str | None, call: str | None) -> None:
    """Approve the pending definition CALL (an id from `pins list`, or a unique prefix), or --all of them.

    An approved definition is also *reviewed*: the proxy records it as trusted text.
    """
    from tether.adapters.mcp import PinBook, ToolDefinition, pin_keys

    if call is not None and not approve_all:
        _pin_answer(db, call, True, by, note)
        return
    if not approve_all:
        raise _fail("name a pending pin (CALL) or use --all")
    store = open_store(db)
    keys = [pin_key] if pin_key else pin_keys(store)
    for key in keys:
        book = PinBook(store, key)
        latest = {r.tool: r for r in book.records() if r.status != "refused"}
        done = book.review([ToolDefinition(r.tool, r.definition) for r in latest.values()], by=by, note=note)
        console.print(f"{escape(key)}: {len(done)} definition(s) approved")


@pins.command("deny")
@db_option
@answer_options
@click.argument("call")
def pins_deny_cmd(db: str, by: str, note: str, call: str) -> None:
    """Refuse the pending definition CALL; the tool stays hidden and its calls denied."""
    _pin_answer(db, call, False, by, note)


@pins.command("review", context_settings={"ignore_unknown_options": True})
@db_option
@answer_options
@_servers_options
@click.option("--pin-key", default=None, help="Name of this server's pins (as given to `tether mcp --pin-key`).")
@click.option("--yes", is_flag=True, help="Approve without asking (after reading the definitions some other way).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def pins_review_cmd(
    db: str,
    by: str,
    note: str,
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    oauth: bool,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    pin_key: str | None,
    yes: bool,
    command: tuple[str, ...],
) -> None:
    """Show everything the server started by COMMAND (or a gateway's servers) gives the model, and approve it.

    Approved definitions are pinned and count as trusted text in proxy sessions; anything that
    changes later is held until approved again.
    """
    from tether.adapters.mcp import PinBook

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse, oauth)
    listings = _listings(upstreams, state=db)
    store = open_store(db, must_exist=False)
    all_found = _findings(upstreams, listings, False)
    for upstream, listing, found in zip(upstreams, listings, all_found, strict=True):
        key = pin_key if pin_key and len(upstreams) == 1 else upstream.pin_key()
        definitions = listing.definitions()
        console.print(f"[bold]{escape(key)}[/] ({escape(upstream.describe())}): {len(definitions) - 1} tool(s)")
        for d in definitions:
            click.echo(json.dumps(d.data, indent=2, ensure_ascii=False))
        if found:
            console.print(
                f"[yellow]The lint flags {len(found)} thing(s); a definition flagged for more than a path, URL or address"
                " stays untrusted text even once approved:[/]",
                soft_wrap=True,
            )
            for f in found:
                console.print(f"  {escape(f.line())}", soft_wrap=True, highlight=False)
        if not yes and not click.confirm(f"Approve these {len(definitions)} definition(s) of {key}?", default=False):
            console.print("nothing approved")
            continue
        done = PinBook(store, key).review(definitions, by=by, note=note)
        console.print(f"{escape(key)}: {len(done)} definition(s) approved")


for _command in (install_cmd, uninstall_cmd, status_cmd, token, auth_cmd):
    mcp.add_command(_command)
