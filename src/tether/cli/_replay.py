"""``tether policy replay``: re-decide recorded calls under another policy (a dry run before deploying)."""

from __future__ import annotations

import json
from typing import Any, cast

import click
from rich.markup import escape

from tether._display import visible_text
from tether.cli._common import INTERNAL_PREFIX, console, db_option, err_console, open_store, resolve_session
from tether.errors import PolicyError, SessionError, StoreError
from tether.policy import Policy
from tether.session import Baseline, ReplayChange, replay

MAX_ARGS_SHOWN = 2000
"""Characters of a changed call's arguments printed in the text report (``--json`` has them all)."""


@click.command("replay")
@click.option(
    "--policy",
    "policy_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The candidate policy (default: each session's own policy, as kept in the store).",
)
@click.option(
    "--against",
    type=click.Choice(["recorded", "stored"]),
    default="recorded",
    show_default=True,
    help="Compare with the verdicts in the log, or with each session's stored policy replayed the same way.",
)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@click.argument("sessions", nargs=-1)
def replay_cmd(policy_path: str | None, against: str, db: str, as_json: bool, sessions: tuple[str, ...]) -> None:
    """Re-decide every recorded call under another policy; list the calls whose verdict changes.

    SESSIONS are ids or unique prefixes (default: every session but the MCP proxy's
    internal pin sessions). Exit 0 when nothing changes, 1 when some verdicts change,
    2 on error. Without --policy each session is replayed under its own stored policy:
    a check that the log's decisions are reproduced.
    """
    pol = None
    if policy_path is not None:
        try:
            pol = Policy.from_file(policy_path)
        except PolicyError as exc:
            err_console.print(f"[red]invalid policy[/] {escape(str(exc))}")
            raise SystemExit(2) from None
    store = open_store(db, read_only=True)
    if sessions:
        ids = list(dict.fromkeys(resolve_session(store, s) for s in sessions))
    else:
        ids = [s.session_id for s in store.sessions() if not s.session_id.startswith(INTERNAL_PREFIX)]
    try:
        report = replay(store, pol, ids, baseline=cast(Baseline, against))
    except (SessionError, StoreError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if as_json:
        doc = {
            "policy": None if pol is None else pol.hash,
            "against": against,
            "sessions": report.sessions,
            "calls": report.calls,
            "changes": [_change_json(c, report.policies[c.session_id]) for c in report.changes],
        }
        click.echo(json.dumps(doc, ensure_ascii=False))  # one line, like every --json (docs/cli.md)
    else:
        under = "each session's own policy" if pol is None else f"{escape(repr(pol.name))} ({pol.hash[:19]})"
        base = "the recorded verdicts" if against == "recorded" else "each session's stored policy"
        console.print(f"replayed {report.calls} call(s) in {report.sessions} session(s) under {under}, against {base}", soft_wrap=True)
        for c in report.changes:
            _print_change(c)
        console.print(f"{len(report.changes)} decision(s) would change")
    raise SystemExit(1 if report.changes else 0)


def _print_change(c: ReplayChange) -> None:
    args = json.dumps(c.args, ensure_ascii=False)
    if len(args) > MAX_ARGS_SHOWN:
        args = args[:MAX_ARGS_SHOWN] + f"... ({len(args)} characters; --json has them all)"
    old = c.old_verdict.upper() + (f" ({c.answer.describe()})" if c.answer is not None else "")
    console.print(
        f"  session {escape(c.session_id[:12])} call {escape(c.call_id[:12])}: {escape(visible_text(c.tool))}({escape(visible_text(args))})",
        soft_wrap=True,
    )
    console.print(f"      [bold]{escape(old)} -> {c.new.verdict.upper()}[/]", soft_wrap=True)
    for r in c.new.reasons:
        console.print(f"      {escape(r.message)} [dim]\\[{escape(r.rule)}][/]", soft_wrap=True)


def _change_json(c: ReplayChange, recorded_policy: str) -> dict[str, Any]:
    return {
        "session": c.session_id,
        "recorded_policy": recorded_policy,
        "call_id": c.call_id,
        "tool": c.tool,
        "args": c.args,
        "old": c.old_verdict,
        "old_reasons": [r.to_json() for r in c.old_reasons],
        "answer": None
        if c.answer is None
        else {"approved": c.answer.approved, "by": c.answer.by, "note": c.answer.note, "allowed": c.answer.allowed},
        "new": c.new.verdict,
        "reasons": [r.to_json() for r in c.new.reasons],
    }
