"""``tether policy ...``: validate policies (``policy replay`` lives in ``_replay.py``)."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from tether.cli._common import console, err_console
from tether.cli._policy_files import init_cmd, list_cmd, show_cmd
from tether.cli._policy_try import eval_cmd, test_cmd
from tether.errors import PolicyError
from tether.policy import Policy, PolicyWarning


@click.group()
def policy() -> None:
    """Check policy files and try them on recorded sessions."""


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
            warnings = [w for w in exc.warnings if isinstance(w, PolicyWarning)]
            if as_json:
                first = exc.problems[0]
                report = {"file": path, "valid": False, "error": first.message, "rule_path": first.rule_path, "line": first.line}
                click.echo(
                    json.dumps(
                        {**report, "errors": [_problem_json(p) for p in exc.problems], "warnings": [_problem_json(w) for w in warnings]}
                    )
                )
            else:
                for problem in exc.problems:
                    err_console.print(f"[red]invalid[/] {escape(str(problem))}", soft_wrap=True)
                for warning in warnings:
                    err_console.print(f"[yellow]warning[/] {escape(str(warning))}", soft_wrap=True)
            continue
        failed = failed or (strict and bool(pol.warnings))
        if as_json:
            report = {"file": path, "valid": True, "name": pol.name, "hash": pol.hash, "tools": len(pol.tools)}
            click.echo(json.dumps({**report, "sources": list(pol.sources), "warnings": [_problem_json(w) for w in pol.warnings]}))
        else:
            for warning in pol.warnings:
                err_console.print(f"[yellow]warning[/] {escape(str(warning))}", soft_wrap=True)
            extends = f", extends {len(pol.sources) - 1} file(s)" if len(pol.sources) > 1 else ""
            console.print(
                f"[green]ok[/] {escape(path)}: policy {escape(repr(pol.name))}, {len(pol.tools)} tools{extends}, {pol.hash}", soft_wrap=True
            )
    raise SystemExit(2 if failed else 0)


for _command in (eval_cmd, test_cmd, init_cmd, list_cmd, show_cmd):
    policy.add_command(_command)
