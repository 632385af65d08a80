"""``tether policy ...``: validate policies and replay history under a new one."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console, open_store
from tether.errors import PolicyError, SessionError
from tether.policy._compiled import Policy
from tether.session._replay import replay


@click.group()
def policy() -> None:
    """Check policy files and try them on recorded sessions."""


def _load(path: str) -> Policy:
    try:
        return Policy.from_file(path)
    except PolicyError as exc:
        err_console.print(f"[red]invalid policy[/] {escape(str(exc))}")
        raise SystemExit(2) from None


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def check_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """Validate policy FILES. Exit 0 when all are valid, 2 otherwise."""
    failed = False
    for path in files:
        try:
            pol = Policy.from_file(path)
        except PolicyError as exc:
            failed = True
            if as_json:
                click.echo(json.dumps({"file": path, "valid": False, "error": exc.message, "rule_path": exc.rule_path, "line": exc.line}))
            else:
                err_console.print(f"[red]invalid[/] {escape(str(exc))}")
            continue
        if as_json:
            click.echo(json.dumps({"file": path, "valid": True, "name": pol.name, "hash": pol.hash, "tools": len(pol.tools)}))
        else:
            console.print(f"[green]ok[/] {path}: policy {pol.name!r}, {len(pol.tools)} tools, {pol.hash}")
    raise SystemExit(2 if failed else 0)


@policy.command("replay")
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False), help="The candidate policy.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@click.argument("sessions", nargs=-1)
def replay_cmd(policy_path: str, db: str, as_json: bool, sessions: tuple[str, ...]) -> None:
    """Re-decide every recorded call under another policy; list the calls whose verdict changes.

    Exit 0 when nothing changes, 1 when some verdicts change, 2 on error.
    """
    pol = _load(policy_path)
    store = open_store(db)
    try:
        report = replay(store, pol, list(sessions) or None)
    except SessionError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "policy": pol.hash,
                    "sessions": report.sessions,
                    "calls": report.calls,
                    "changes": [
                        {
                            "session": c.session_id,
                            "call_id": c.call_id,
                            "tool": c.tool,
                            "old": c.old_verdict,
                            "new": c.new.verdict,
                            "reasons": [r.to_json() for r in c.new.reasons],
                        }
                        for c in report.changes
                    ],
                },
                indent=2,
            )
        )
    else:
        console.print(f"replayed {report.calls} call(s) in {report.sessions} session(s) under {pol.name!r} ({pol.hash[:19]})")
        for c in report.changes:
            console.print(f"  {c.session_id[:12]} {c.call_id[:12]} {c.tool}: [bold]{c.old_verdict} -> {c.new.verdict}[/]")
            for r in c.new.reasons:
                console.print(f"      {escape(r.message)} [dim]\\[{escape(r.rule)}][/]")
        console.print(f"{len(report.changes)} decision(s) would change")
    raise SystemExit(1 if report.changes else 0)
