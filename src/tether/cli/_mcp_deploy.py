"""``tether mcp install``/``uninstall`` (a client's config), ``status`` (servers' health) and ``token`` (the HTTP endpoint's tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console
from tether.cli._mcp_common import client_names, fail, findings_of, listings_of
from tether.errors import ConfigError


@click.command("status")
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
        raise fail(str(exc)) from None


def _starting_policy_for(sidecar_text: str, path: Path, name: str) -> str:
    """A starting policy for the servers a gateway file names (they are started and listed, no tool is called)."""
    import tempfile

    from tether.adapters.mcp import load_gateway, starting_policy

    with tempfile.TemporaryDirectory() as tmp:
        side = Path(tmp) / "gateway.json"
        side.write_text(sidecar_text, encoding="utf-8")
        upstreams = load_gateway(side, warn=lambda text: err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True))
    listings = listings_of(upstreams)
    tools = [{**t, "name": client_names(u, li)[t["name"]]} for u, li in zip(upstreams, listings, strict=True) for t in li.tools]
    findings = [f for found in findings_of(upstreams, listings, True) for f in found]
    source = ", ".join(u.describe() for u in upstreams)
    return starting_policy(name, tools, source=source, pseudo_prefixes=[f"{u.name}__" for u in upstreams], findings=findings)


@click.command("install")
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
        raise fail(f"no policy at {str(policy_path)!r}")
    try:
        change = plan_install(kind, path, policy=policy_path, db=store)
    except ConfigError as exc:
        raise fail(str(exc)) from None
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
            raise fail(f"{exc} (give --policy FILE to install without listing the servers)") from None
        policy_path.write_text(text, encoding="utf-8")
        console.print(f"wrote a starting policy to {escape(str(policy_path))}: every tool asks a human; tighten it", soft_wrap=True)
    store.parent.mkdir(parents=True, exist_ok=True)
    backup = apply_change(change)
    console.print(
        f"{kind.title}: Tether now runs {escape(str(path))}'s servers (backup: {escape(str(backup))}); restart the client", soft_wrap=True
    )


@click.command("uninstall")
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
        raise fail(str(exc)) from None
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


@click.group("token")
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token (ids, not the tokens).")
def token_list_cmd(db: str, as_json: bool) -> None:
    """The live tokens of this store's HTTP endpoints (ids, not the tokens)."""
    entries = _tokens(db).entries()
    if as_json:
        for entry in entries:
            click.echo(json.dumps({k: entry.get(k) for k in ("id", "created", "note")}, ensure_ascii=False))
        return
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
        raise fail(f"no single token matches {token_id!r}")
    console.print(f"token {escape(token_id)} revoked")
