"""``tether policy ...``: validate policies and replay history under a new one."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console, open_store
from tether.errors import PolicyError, SessionError
from tether.policy._compiled import Policy
from tether.policy._problems import PolicyWarning
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


def _problem_json(p: PolicyError | PolicyWarning) -> dict[str, object]:
    return {"file": p.source, "line": p.line, "rule_path": p.rule_path, "message": p.message}


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def check_cmd(files: tuple[str, ...], as_json: bool, strict: bool) -> None:
    """Validate policy FILES, reporting every error and warning with its file, line and rule path.

    Exit 0 when all are valid, 2 otherwise (with --strict, also when there are warnings).
    """
    failed = False
    for path in files:
        try:
            pol = Policy.from_file(path)
        except PolicyError as exc:
            failed = True
            if as_json:
                first = exc.problems[0]
                report = {"file": path, "valid": False, "error": first.message, "rule_path": first.rule_path, "line": first.line}
                click.echo(json.dumps({**report, "errors": [_problem_json(p) for p in exc.problems], "warnings": []}))
            else:
                for problem in exc.problems:
                    err_console.print(f"[red]invalid[/] {escape(str(problem))}", soft_wrap=True)
            continue
        failed = failed or (strict and bool(pol.warnings))
        if as_json:
            report = {"file": path, "valid": True, "name": pol.name, "hash": pol.hash, "tools": len(pol.tools)}
            click.echo(json.dumps({**report, "sources": list(pol.sources), "warnings": [_problem_json(w) for w in pol.warnings]}))
        else:
            for warning in pol.warnings:
                err_console.print(f"[yellow]warning[/] {escape(str(warning))}", soft_wrap=True)
            extends = f", extends {len(pol.sources) - 1} file(s)" if len(pol.sources) > 1 else ""
            console.print(f"[green]ok[/] {path}: policy {pol.name!r}, {len(pol.tools)} tools{extends}, {pol.hash}")
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
