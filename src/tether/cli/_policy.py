"""``tether policy ...``: validate policies (``policy replay`` lives in ``_replay.py``)."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from tether.cli._common import console, err_console
from tether.errors import PolicyError
from tether.policy._compiled import Policy


@click.group()
def policy() -> None:
    """Check policy files and try them on recorded sessions."""


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
