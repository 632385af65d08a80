"""``tether policy eval`` and ``tether policy test``: try a policy from the shell, on one call or
on a table of cases (the logic is :mod:`tether.session`'s ``trial`` and policy tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click
import yaml
from rich.markup import escape

from tether._decision import ToolCall
from tether.cli._common import console, fail
from tether.errors import PolicyError
from tether.examples import shipped_policy
from tether.policy import Policy
from tether.session import (
    CaseResult,
    HistoryStep,
    PolicyCase,
    PolicyTestError,
    Trial,
    TrialError,
    load_cases,
    policy_test_files,
    run_case,
    trial,
)

_COLOR = {"allow": "green", "ask": "yellow", "deny": "red"}


def load_policy(ref: str) -> Policy:
    """A policy file, or a shipped policy (``tether:NAME``, ``agentdojo:NAME``); exit 2 when invalid."""
    shipped = shipped_policy(ref) if ":" in ref and not Path(ref).exists() else None
    try:
        if shipped is not None:
            return Policy.from_yaml(shipped.text, source=shipped.ref)
        if not Path(ref).is_file():
            fail(f"no policy file at {ref!r} (shipped policies: 'tether policy list')")
        return Policy.from_file(ref)
    except PolicyError as exc:
        fail(f"invalid policy {exc}")


def _text(value: str) -> str:
    """``@FILE`` reads the text from FILE."""
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {value[1:]!r}: {exc.strerror}")
    return value


def _history(outputs: Sequence[str], sources: Sequence[str], untrusted: Sequence[str], history_file: str | None) -> list[HistoryStep]:
    steps: list[HistoryStep] = []
    if history_file is not None:
        try:
            doc = yaml.safe_load(Path(history_file).read_text(encoding="utf-8"))
            steps += load_cases(history_file, yaml.safe_dump([{"history": doc, "call": {"tool": "-"}, "expect": "allow"}]))[0].history
        except (OSError, yaml.YAMLError, PolicyTestError) as exc:
            fail(f"cannot read the history file {history_file!r}: {exc}")
    for item in outputs:
        tool, sep, text = item.partition("=")
        if not sep or not tool:
            raise click.UsageError(f"--output takes TOOL=TEXT, got {item!r}")
        steps.append(HistoryStep(tool=tool, output=_text(text)))
    steps += [HistoryStep(output=_text(t), label="trusted") for t in sources]
    steps += [HistoryStep(output=_text(t), label="untrusted") for t in untrusted]
    return steps


@click.command("eval")
@click.argument("policy_ref", metavar="POLICY")
@click.option("--tool", required=True, help="The tool the call names.")
@click.option("--args", "args_json", default="{}", show_default=True, help="The call's arguments, a JSON object (@FILE reads it).")
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="TOOL=TEXT",
    help="An earlier call to TOOL (no arguments) returned TEXT (@FILE). Repeatable, in order.",
)
@click.option("--source", "sources", multiple=True, metavar="TEXT", help="Trusted text the agent saw (a user's message). Repeatable.")
@click.option("--untrusted", "untrusted", multiple=True, metavar="TEXT", help="Untrusted text the agent saw (a web page). Repeatable.")
@click.option(
    "--history",
    "history_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Earlier steps as a YAML list (the 'history' of a policy test case), before the --output and --source steps.",
)
@click.option("--task", default="policy eval", show_default=True, help="The session's task (trusted text).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def eval_cmd(
    policy_ref: str,
    tool: str,
    args_json: str,
    outputs: tuple[str, ...],
    sources: tuple[str, ...],
    untrusted: tuple[str, ...],
    history_file: str | None,
    task: str,
    as_json: bool,
) -> None:
    """Decide one call under POLICY as the guard would, after the given history.

    Prints the verdict, every reason, and the label each argument got. Exit 0 for allow,
    1 for deny or ask (so a script can test it), 2 on a usage error.
    """
    pol = load_policy(policy_ref)
    try:
        args = json.loads(_text(args_json))
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--args is not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise click.UsageError("--args must be a JSON object")
    try:
        got = trial(pol, ToolCall(tool, args), _history(outputs, sources, untrusted, history_file), task=_text(task))
    except TrialError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(got.to_json(), ensure_ascii=False))
    else:
        _print_trial(got)
    raise SystemExit(0 if got.decision.verdict == "allow" else 1)


def _print_trial(got: Trial) -> None:
    d = got.decision
    console.print(f"[{_COLOR[d.verdict]}]{d.verdict}[/] {escape(d.tool)}", soft_wrap=True)
    for r in d.reasons:
        console.print(f"  {escape(r.rule)}: {escape(r.message)}", soft_wrap=True)
    for lab in got.labels:
        tags = "".join(f", {t}" for t in lab.tags)
        where = "" if lab.found else " (found in nothing read: the context label)"
        console.print(
            f"  [cyan]{escape(lab.path or '(arguments)')}[/] = {escape(json.dumps(lab.value, ensure_ascii=False))}: {lab.integrity}{tags}{where}",
            soft_wrap=True,
        )


@click.command("test")
@click.argument("policy_ref", metavar="POLICY")
@click.argument("tests", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per case, then a summary line.")
@click.option("-v", "--verbose", is_flag=True, help="Name every case, not only failures.")
def test_cmd(policy_ref: str, tests: tuple[str, ...], as_json: bool, verbose: bool) -> None:
    """Run table-driven policy tests: TESTS are YAML files or directories of them (for a shipped
    POLICY, default: the tests shipped with it).

    Exit 0 when every case passes, 1 when some fail, 2 on a usage error (an unreadable policy
    or test file). The format is in docs/policy.md ("Testing a policy").
    """
    pol = load_policy(policy_ref)
    files = _cases(policy_ref, tests)
    results: list[CaseResult] = []
    for name, cases in files:
        got = [run_case(pol, c) for c in cases]
        results += got
        if as_json:
            for r in got:
                click.echo(json.dumps(r.to_json(), ensure_ascii=False))
        elif verbose:
            for r in got:
                console.print(
                    f"{escape(r.case.where)} {escape(r.case.name)} [{'green]PASSED' if r.passed else 'red]FAILED'}[/]", soft_wrap=True
                )
        else:
            marks = "".join("[green].[/]" if r.passed else "[red]F[/]" for r in got)
            console.print(f"{escape(name)} {marks}", soft_wrap=True)
    failed = [r for r in results if not r.passed]
    for r in failed if not as_json else []:
        console.print(f"[red]FAILED[/] {escape(r.case.where)} {escape(r.case.name)}: {escape(r.problem or '')}", soft_wrap=True)
    summary = {"passed": len(results) - len(failed), "failed": len(failed)}
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        color = "red" if failed else "green"
        console.print(f"[{color}]{summary['passed']} passed" + (f", {len(failed)} failed" if failed else "") + "[/]", soft_wrap=True)
    raise SystemExit(1 if failed else 0)


def _cases(policy_ref: str, tests: Sequence[str]) -> list[tuple[str, list[PolicyCase]]]:
    try:
        if tests:
            return [(str(path), load_cases(path)) for path in policy_test_files(tests)]
        shipped = shipped_policy(policy_ref) if not Path(policy_ref).exists() else None
        if shipped is None or not shipped.tests:
            raise click.UsageError("name the test files or directories (TESTS)")
        return [(name, load_cases(name, text)) for name, text in shipped.tests]
    except PolicyTestError as exc:
        fail(str(exc))
