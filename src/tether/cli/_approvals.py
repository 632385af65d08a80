"""``tether approvals ...``: list and answer the pending asks of any session in the store."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import answer_options, console, db_option, err_console, open_store
from tether.errors import PolicyError, SessionError
from tether.policy._compiled import Policy
from tether.session._guard import Guard
from tether.store._chain import EventStore
from tether.store._events import ApprovalAnswered, ApprovalRequested, CallProposed, SessionStarted

INTERNAL_PREFIX = "mcp-pins:"


@dataclass(frozen=True, slots=True)
class Pending:
    """An approval request nobody has answered yet."""

    session_id: str
    call_id: str
    tool: str
    args: Any
    summary: str
    expires_at: float
    policy_name: str


def pending_approvals(store: EventStore, *, now: float | None = None) -> list[Pending]:
    """Every unanswered, unexpired approval request in ``store`` (tool-definition pins excepted)."""
    now = time.time() if now is None else now
    out: list[Pending] = []
    for summary in store.sessions():
        if summary.session_id.startswith(INTERNAL_PREFIX):
            continue
        calls: dict[str, CallProposed] = {}
        asked: dict[str, ApprovalRequested] = {}
        policy_name = ""
        for item in store.read(summary.session_id):
            event = item.event()
            if isinstance(event, SessionStarted):
                policy_name = event.policy_name
            elif isinstance(event, CallProposed):
                calls[event.call_id] = event
            elif isinstance(event, ApprovalRequested):
                asked[event.call_id] = event
            elif isinstance(event, ApprovalAnswered):
                asked.pop(event.call_id, None)
        for call_id, req in asked.items():
            if req.expires_at >= now and call_id in calls:
                call = calls[call_id]
                out.append(Pending(summary.session_id, call_id, call.tool, call.args, req.summary, req.expires_at, policy_name))
    return out


@click.group()
def approvals() -> None:
    """List and answer calls waiting for a human (from any process sharing the store)."""


@approvals.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per pending call.")
def list_cmd(db: str, as_json: bool) -> None:
    """Show the calls waiting for approval."""
    store = open_store(db)
    items = pending_approvals(store)
    for p in items:
        if as_json:
            click.echo(json.dumps({**p.__dict__}, ensure_ascii=False, default=str))
        else:
            left = max(0, int(p.expires_at - time.time()))
            console.print(
                f"[bold]{p.call_id}[/] session {p.session_id[:12]} ({escape(p.policy_name)}), {left}s left\n"
                f"  {escape(p.tool)}({escape(json.dumps(p.args, ensure_ascii=False)[:300])})\n  {escape(p.summary[:500])}",
                soft_wrap=True,
            )
    if not items and not as_json:
        console.print("no pending approvals")


def _answer(db: str, policy_path: str, call: str, approved: bool, by: str, note: str) -> None:
    store = open_store(db)
    matches = [p for p in pending_approvals(store) if p.call_id.startswith(call)]
    if len(matches) != 1:
        err_console.print(f"[red]error:[/] {'no' if not matches else 'more than one'} pending call matches {call!r}")
        raise SystemExit(2)
    target = matches[0]
    try:
        policy = Policy.from_file(policy_path)
        session = Guard(policy, store).resume_session(target.session_id)
        ok = session.answer(target.call_id, approved, by=by, note=note)
    except (PolicyError, SessionError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    word = "approved" if ok else ("refused" if not approved else "not approved (it expired first)")
    console.print(f"call {target.call_id} to {escape(target.tool)} {word} by {escape(by)}")
    raise SystemExit(0 if ok == approved else 1)


def _answer_options(fn: Any) -> Any:
    fn = answer_options(fn)
    fn = click.option(
        "--policy",
        "policy_path",
        required=True,
        envvar="TETHER_POLICY",
        type=click.Path(dir_okay=False, exists=True),
        help="The policy the session runs under (its hash must match).",
    )(fn)
    return db_option(fn)


@approvals.command("approve")
@_answer_options
@click.argument("call")
def approve_cmd(db: str, policy_path: str, by: str, note: str, call: str) -> None:
    """Approve the pending CALL (an id or a unique prefix)."""
    _answer(db, policy_path, call, True, by, note)


@approvals.command("deny")
@_answer_options
@click.argument("call")
def deny_cmd(db: str, policy_path: str, by: str, note: str, call: str) -> None:
    """Refuse the pending CALL (an id or a unique prefix)."""
    _answer(db, policy_path, call, False, by, note)
