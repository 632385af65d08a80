"""``tether approvals ...``: list and answer the pending asks of any session in the store.

Only ``--db`` is needed: the store keeps each session's policy by its content hash,
and an answer is given through the session itself (so it is bound to the call hash,
re-decided against the session's budgets and status, and logged in its chain).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import INTERNAL_PREFIX, answer_options, console, db_option, err_console, open_store
from tether.errors import PolicyError, SessionError, StoreError
from tether.policy import Policy
from tether.session import Guard
from tether.store import EventStore, PendingApproval


def pending_approvals(store: EventStore, *, now: float | None = None) -> list[PendingApproval]:
    """Every unanswered, unexpired approval request in ``store`` (tool-definition pins excepted)."""
    now = time.time() if now is None else now
    return [p for p in store.pending_approvals() if p.expires_at >= now and not p.session_id.startswith(INTERNAL_PREFIX)]


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
            click.echo(json.dumps(asdict(p), ensure_ascii=False, default=str))
        else:
            left = max(0, int(p.expires_at - time.time()))
            console.print(
                f"[bold]{escape(p.call_id)}[/] session {escape(p.session_id[:12])}, {left}s left\n"
                f"  {escape(p.tool)}({escape(json.dumps(p.args, ensure_ascii=False)[:300])})\n  {escape(p.summary[:500])}",
                soft_wrap=True,
            )
    if not items and not as_json:
        console.print("no pending approvals")


def _answer(db: str, policy_path: str | None, call: str, approved: bool, by: str, note: str) -> None:
    store = open_store(db)
    # An empty prefix would match every call: never answer a call the human did not name.
    matches = [p for p in store.pending_approvals() if call and p.call_id.startswith(call) and not p.session_id.startswith(INTERNAL_PREFIX)]
    if len(matches) != 1:
        err_console.print(f"[red]error:[/] {'no' if not matches else 'more than one'} pending call matches {call!r}")
        raise SystemExit(2)
    target = matches[0]
    try:
        guard = Guard(Policy.from_file(policy_path), store) if policy_path is not None else Guard.for_session(store, target.session_id)
        session = guard.open_session(target.session_id)
        ok = session.answer(target.call_id, approved, by=by, note=note)
    except (PolicyError, SessionError, StoreError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if ok:
        word = "approved"
    elif not approved:
        word = "refused"
    else:
        status = session.state.approvals.get(target.call_id)
        word = "NOT approved: " + (status.note if status is not None and status.by == "timeout" else _denial(session, target.call_id))
    console.print(
        f"call {escape(target.call_id)} to {escape(target.tool)} {escape(word)}" + (f" by {escape(by)}" if ok or not approved else "")
    )
    raise SystemExit(0 if ok == approved else 1)


def _denial(session: Any, call_id: str) -> str:
    """Why an approved call was still denied (from the answer event's re-check)."""
    for item in reversed(session.store.read(session.id, max(0, session.state.last_seq - 64))):
        event = item.event()
        if event.kind == "approval_answered" and event.call_id == call_id:
            return str(event.describe())
    return "it was denied when re-checked"


def _answer_options(fn: Any) -> Any:
    fn = answer_options(fn)
    fn = click.option(
        "--policy",
        "policy_path",
        default=None,
        type=click.Path(dir_okay=False, exists=True),
        help="Only for sessions started before policies were kept in the store (its hash must match).",
    )(fn)
    return db_option(fn)


@approvals.command("approve")
@_answer_options
@click.argument("call")
def approve_cmd(db: str, policy_path: str | None, by: str, note: str, call: str) -> None:
    """Approve the pending CALL (an id or a unique prefix). The call is checked again now:
    if a budget, a rate or the session's status no longer allows it, it stays denied (exit 1)."""
    _answer(db, policy_path, call, True, by, note)


@approvals.command("deny")
@_answer_options
@click.argument("call")
def deny_cmd(db: str, policy_path: str | None, by: str, note: str, call: str) -> None:
    """Refuse the pending CALL (an id or a unique prefix)."""
    _answer(db, policy_path, call, False, by, note)
