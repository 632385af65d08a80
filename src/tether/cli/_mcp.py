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
from tether.errors import ConfigError, PolicyError, RuntimeFailure, SessionError, StoreError
from tether.policy import Policy
from tether.store import SQLiteStore


class _McpGroup(click.Group):
    """A group whose default command is ``run``: ``tether mcp --policy P -- cmd`` works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_McpGroup)
def mcp() -> None:
    """Guard any MCP server: check every tool call, label every result, log every step."""


def _fail(text: str, code: int = 2) -> SystemExit:
    err_console.print(f"[red]tether-mcp:[/] {escape(text)}", soft_wrap=True)
    return SystemExit(code)


def _servers_options(fn: Any) -> Any:
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


def _upstreams(
    command: tuple[str, ...],
    url: str | None,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    headers: tuple[str, ...] = (),
    sse: bool = False,
) -> list[Any]:
    from tether.adapters.mcp import Upstream, check_gateway, load_gateway, server_option

    try:
        if (headers or sse) and url is None:
            raise ConfigError("--header and --sse go with --url (a gateway file gives each server its own `headers` and `type`)")
        if server_specs or gateway_file:
            if command or url:
                raise ConfigError("give a server command (or --url), or a gateway (--server/--config), not both")
            servers = [server_option(s) for s in server_specs]
            if gateway_file:
                servers += load_gateway(gateway_file)
            check_gateway(servers)
            return servers
        if url is not None:
            return [Upstream(url=url, headers=_url_headers(headers), transport="sse" if sse else "http")]
        return [Upstream(command=command, url=url)]
    except ConfigError as exc:
        raise _fail(str(exc)) from None


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

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse)
    try:
        policy = Policy.from_file(policy_path)
    except PolicyError as exc:
        raise _fail(f"invalid policy {exc}") from None
    try:
        store = SQLiteStore(db, durability="full" if durability == "full" else "normal")
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


def _listings(upstreams: list[Any]) -> list[Any]:
    import asyncio

    from tether.adapters.mcp import list_server

    async def fetch() -> list[Any]:
        return [await list_server(u) for u in upstreams]

    try:
        return asyncio.run(fetch())
    except (ConfigError, RuntimeFailure) as exc:
        raise _fail(str(exc)) from None


def _client_names(upstream: Any, listing: Any) -> dict[str, str]:
    """A gateway server's tool names as clients see them (``server__tool``, shortened past 64 characters)."""
    from tether.adapters.mcp import gateway_tool_names

    return gateway_tool_names(upstream.name, [str(t["name"]) for t in listing.tools])


def _findings(upstreams: list[Any], listings: list[Any], gateway: bool) -> list[list[Any]]:
    """The lint's findings per server; in a gateway, tool and prompt names as the client sees them (``server__name``)."""
    import dataclasses

    from tether.adapters.mcp import gateway_findings

    per_server = gateway_findings([u.name for u in upstreams], listings)
    if not gateway:
        return per_server
    out: list[list[Any]] = []
    for u, li, found in zip(upstreams, listings, per_server, strict=True):
        names = _client_names(u, li)
        out.append(
            [
                dataclasses.replace(f, definition=names.get(f.definition, f"{u.name}__{f.definition}"))
                if f.kind in ("tool", "prompt")
                else f
                for f in found
            ]
        )
    return out


@mcp.command("lint", context_settings={"ignore_unknown_options": True})
@_servers_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, one per line.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def lint_cmd(
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
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

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse)
    listings = _listings(upstreams)
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
@_servers_options
@click.option("--name", default=None, help="The policy's name (default: the server's).")
@click.option(
    "--default", "default", type=click.Choice(["ask", "deny"]), default="ask", show_default=True, help="What every tool starts with."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here (default: stdout).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def policy_init_cmd(
    url: str | None,
    headers: tuple[str, ...],
    sse: bool,
    server_specs: tuple[str, ...],
    gateway_file: str | None,
    name: str | None,
    default: str,
    output: str | None,
    command: tuple[str, ...],
) -> None:
    """List the tools of the server started by COMMAND (or of a gateway's servers) and write a starting policy."""
    from tether.adapters.mcp import starting_policy

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse)
    listings = _listings(upstreams)
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


@mcp.command("status")
@db_option
@click.option("--json", "as_json", is_flag=True, help="The status files as JSON.")
def status_cmd(db: str, as_json: bool) -> None:
    """Each running proxy or gateway on this store: its servers' state, restarts and last error."""
    from tether.adapters.mcp import read_status

    runs = read_status(db)
    if as_json:
        click.echo(json.dumps(runs, indent=2, ensure_ascii=False))
        return
    if not runs:
        console.print(f"no MCP proxy has reported on {escape(db)} (none running, or started with another --db)")
        return
    for run in runs:
        alive = "running" if run.get("running") else "not running (left by a proxy that was killed)"
        console.print(f"[bold]pid {run.get('pid')}[/] {alive}, session {escape(str(run.get('session')))}, since {run.get('started')}")
        for server in run.get("servers") or []:
            error = f", last error: {server['last_error']}" if server.get("last_error") else ""
            up = f", up {server['up_for_s']:g} s" if server.get("up_for_s") is not None else ""
            console.print(
                f"  {escape(str(server.get('name')))}: {server.get('state')}, restarts {server.get('restarts')}{up}{escape(error)}",
                soft_wrap=True,
            )


def _client_config(client_name: str, config: str | None) -> tuple[Any, Path]:
    from tether.adapters.mcp import find_client

    try:
        kind = find_client(client_name)
        return kind, Path(config).expanduser().resolve() if config else kind.default_path()
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _starting_policy_for(sidecar_text: str, path: Path, name: str) -> str:
    """A starting policy for the servers a gateway file names (they are started and listed, no tool is called)."""
    import tempfile

    from tether.adapters.mcp import load_gateway, starting_policy

    with tempfile.TemporaryDirectory() as tmp:
        side = Path(tmp) / "gateway.json"
        side.write_text(sidecar_text, encoding="utf-8")
        upstreams = load_gateway(side, warn=lambda text: err_console.print(f"tether-mcp: {escape(text)}", soft_wrap=True))
    listings = _listings(upstreams)
    tools = [{**t, "name": _client_names(u, li)[t["name"]]} for u, li in zip(upstreams, listings, strict=True) for t in li.tools]
    findings = [f for found in _findings(upstreams, listings, True) for f in found]
    source = ", ".join(u.describe() for u in upstreams)
    return starting_policy(name, tools, source=source, pseudo_prefixes=[f"{u.name}__" for u in upstreams], findings=findings)


@mcp.command("install")
@click.option("--client", "client_name", required=True, help="claude, cursor, vscode, windsurf or cline.")
@click.option("--config", "config", default=None, help="The client's config file (default: its user-level file on this system).")
@click.option("--policy", "policy", default=None, help="Policy to enforce (default: a starting policy written beside the config).")
@click.option("--db", "db", default=None, help="Event store (default: ~/.local/share/tether/tether.db).")
@click.option("--dry-run", is_flag=True, help="Show the change as a diff; write nothing.")
def install_cmd(client_name: str, config: str | None, policy: str | None, db: str | None, dry_run: bool) -> None:
    """Put Tether in front of a client's MCP servers: they run behind one `tether mcp` gateway entry.

    The config is backed up first; running it again moves only servers added since;
    `tether mcp uninstall` puts them back.
    """
    from tether.adapters.mcp import apply_change, plan_install

    kind, path = _client_config(client_name, config)
    store = Path(db).expanduser().resolve() if db else Path("~/.local/share/tether/tether.db").expanduser()
    policy_path = Path(policy).expanduser().resolve() if policy else path.with_name(path.name + ".tether-policy.yaml")
    if policy and not policy_path.is_file():
        raise _fail(f"no policy at {str(policy_path)!r}")
    try:
        change = plan_install(kind, path, policy=policy_path, db=store)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for note in change.notes:
        console.print(f"  {escape(note)}", soft_wrap=True)
    if not change.changed:
        console.print(f"Tether is already in front of every enabled server in {escape(str(path))}; nothing to do")
        return
    if dry_run:
        click.echo(change.diff(), nl=False)
        console.print(f"would write {escape(str(change.sidecar))} (the servers Tether runs)", soft_wrap=True)
        if not policy_path.exists():
            console.print(f"would write a starting policy to {escape(str(policy_path))} (every tool asks)", soft_wrap=True)
        return
    if not policy_path.exists():
        try:
            text = _starting_policy_for(change.sidecar_after or "{}", path, f"{kind.name}-servers")
        except ConfigError as exc:
            raise _fail(f"{exc} (give --policy FILE to install without listing the servers)") from None
        policy_path.write_text(text, encoding="utf-8")
        console.print(f"wrote a starting policy to {escape(str(policy_path))}: every tool asks a human; tighten it", soft_wrap=True)
    store.parent.mkdir(parents=True, exist_ok=True)
    backup = apply_change(change)
    console.print(
        f"{kind.title}: Tether now runs {escape(str(path))}'s servers (backup: {escape(str(backup))}); restart the client", soft_wrap=True
    )


@mcp.command("uninstall")
@click.option("--client", "client_name", required=True, help="claude, cursor, vscode, windsurf or cline.")
@click.option("--config", "config", default=None, help="The client's config file (default: its user-level file on this system).")
@click.option("--dry-run", is_flag=True, help="Show the change as a diff; write nothing.")
def uninstall_cmd(client_name: str, config: str | None, dry_run: bool) -> None:
    """Undo `tether mcp install`: the servers go back into the client's config, Tether's entry goes."""
    from tether.adapters.mcp import apply_change, plan_uninstall

    kind, path = _client_config(client_name, config)
    try:
        change = plan_uninstall(kind, path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for note in change.notes:
        console.print(f"  {escape(note)}", soft_wrap=True)
    if dry_run:
        click.echo(change.diff(), nl=False)
        console.print(f"would remove {escape(str(change.sidecar))}", soft_wrap=True)
        return
    backup = apply_change(change)
    console.print(
        f"{kind.title}: servers restored in {escape(str(path))} (backup: {escape(str(backup))}); restart the client", soft_wrap=True
    )


@mcp.group("token")
def token() -> None:
    """Bearer tokens of the HTTP endpoint (`tether mcp --http`): one is created at the first start."""


def _tokens(db: str) -> Any:
    from tether.adapters.mcp import TokenStore, token_file

    return TokenStore(token_file(db))


@token.command("new")
@db_option
@click.option("--note", default="", help="What the token is for.")
def token_new_cmd(db: str, note: str) -> None:
    """Create a token; it is printed once (only its hash is kept)."""
    token_id, value = _tokens(db).create(note)
    console.print(f"token {token_id} (shown once): clients send  Authorization: Bearer {value}", soft_wrap=True, highlight=False)


@token.command("list")
@db_option
def token_list_cmd(db: str) -> None:
    """The live tokens of this store's HTTP endpoints (ids, not the tokens)."""
    entries = _tokens(db).entries()
    if not entries:
        console.print("no token (one is created when tether mcp --http first starts)")
    for entry in entries:
        console.print(f"{entry.get('id')}  created {entry.get('created')}  {escape(str(entry.get('note') or ''))}", soft_wrap=True)


@token.command("revoke")
@db_option
@click.argument("token_id")
def token_revoke_cmd(db: str, token_id: str) -> None:
    """End the token TOKEN_ID (from `token list`) for every proxy on this store, at their next request."""
    if not _tokens(db).revoke(token_id):
        raise _fail(f"no single token matches {token_id!r}")
    console.print(f"token {escape(token_id)} revoked")


@mcp.group("pins")
def pins() -> None:
    """Tool-definition pins: review a server's definitions, list them, approve or refuse a new or changed one."""


@pins.command("list")
@db_option
@click.option("--all", "show_all", is_flag=True, help="Show every definition, not only pending ones and current pins.")
def pins_list_cmd(db: str, show_all: bool) -> None:
    """Show each server's pinned, pending and refused definitions (`reviewed` marks those a human approved)."""
    from tether.adapters.mcp import PinBook, pin_keys

    store = open_store(db)
    for key in pin_keys(store):
        console.print(f"[bold]{escape(key)}[/]")
        records = PinBook(store, key).records()
        latest = {r.tool: r for r in records}
        for rec in records:
            if not show_all and latest[rec.tool] is not rec and rec.status != "pending":
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
@click.argument("call")
def pins_show_cmd(db: str, call: str) -> None:
    """Print one definition in full (CALL: an id from `pins list`, or a unique prefix)."""
    store = open_store(db)
    key, rec = _find(store, call, pending_only=False)
    click.echo(json.dumps({"server": key, "call": rec.call_id, "status": rec.status, "reviewed": rec.reviewed, "hash": rec.hash,
                           "definition": rec.definition}, indent=2, ensure_ascii=False))  # fmt: skip


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

    upstreams = _upstreams(command, url, server_specs, gateway_file, headers, sse)
    listings = _listings(upstreams)
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
