"""``tether session ...``: list sessions with their status; pause, resume or kill a running one.

The command acts through the session itself (under its stored policy), so the control
event is appended to the session's chain like any other; an agent process serving the
session sees it on its next call and is denied from then on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import click
from rich.markup import escape

from tether.cli._common import HIDDEN, console, db_option, err_console, fail, open_store, resolve_session
from tether.errors import SessionError, StoreError
from tether.events import format_time
from tether.session import Guard, Session
from tether.store import EventStore


def _actor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")(fn)
    fn = click.option("--note", default="", help="Why (kept in the log).")(fn)
    return click.option("--by", default=lambda: os.environ.get("USER", "cli"), show_default="$USER", help="Who does it (kept in the log).")(
        fn
    )


@click.group()
def session() -> None:
    """List sessions; pause, resume or kill a running one (from any process sharing the store)."""


def _open(store: EventStore, sid: str) -> Session:
    try:
        return Guard.for_session(store, sid).open_session(sid)
    except (SessionError, StoreError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None


def _status(store: EventStore, sid: str) -> tuple[str, str]:
    """A session's status and policy name, or ``?`` and why it cannot be opened."""
    try:
        state = Guard.for_session(store, sid).open_session(sid).state
    except (SessionError, StoreError, ValueError) as exc:
        return "?", str(exc)
    return state.status, state.policy_name


@session.command("list")
@db_option
@click.option("--all", "show_all", is_flag=True, help="Include the MCP proxy's internal pin sessions and the principals' ledgers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session.")
def list_cmd(db: str, show_all: bool, as_json: bool) -> None:
    """Show each session's status (active, paused, killed, ended), events and pending approvals."""
    store = open_store(db, read_only=True)
    pending = store.pending_counts(live_at=time.time())  # expired ones are denied when their session next looks
    shown = 0
    for s in store.sessions():
        if s.session_id.startswith(HIDDEN) and not show_all:
            continue
        shown += 1
        status, policy = _status(store, s.session_id)
        waiting = pending.get(s.session_id, 0)
        if as_json:
            doc = {
                "session_id": s.session_id,
                "status": status,
                "policy": policy,
                "events": s.events,
                "pending_approvals": waiting,
                "started": s.first_time,
                "last_event": s.last_time,
            }
            click.echo(json.dumps(doc, ensure_ascii=False))
            continue
        color = {"active": "green", "paused": "yellow", "killed": "red"}.get(status, "dim")
        asks = f"  [yellow]{waiting} pending approval(s)[/]" if waiting else ""
        console.print(
            f"{escape(s.session_id)}  [{color}]{escape(status):<7}[/] {s.events:>6} events  "
            f"last {format_time(s.last_time)}  {escape(policy if status != '?' else 'cannot open: ' + policy)}{asks}",
            soft_wrap=True,
        )
    if not shown and not as_json:
        console.print("no sessions")


def _control(db: str, prefix: str, action: Literal["pause", "resume", "kill"], by: str, note: str, as_json: bool = False) -> None:
    store = open_store(db)
    sid = resolve_session(store, prefix)
    sess = _open(store, sid)
    waiting = len(sess.state.approvals.pending())
    try:
        changed = sess.control(action, by=by, note=note)
    except SessionError as exc:
        if as_json:
            click.echo(
                json.dumps({"session_id": sid, "action": action, "changed": False, "refused": str(exc), "status": sess.state.status})
            )
        else:
            err_console.print(f"[red]refused:[/] {escape(str(exc))}")
        raise SystemExit(1) from None
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if as_json:
        denied_n = waiting if changed and action != "resume" else 0
        doc = {"session_id": sid, "action": action, "changed": changed, "status": sess.state.status, "by": by, "approvals_denied": denied_n}
        click.echo(json.dumps(doc, ensure_ascii=False))
        return
    if not changed:
        console.print(f"session {escape(sid)} is already {sess.state.status}; nothing was logged", soft_wrap=True)
        return
    done = {"pause": "paused", "resume": "resumed", "kill": "killed"}[action]
    denied = f"; {waiting} pending approval(s) denied" if waiting and action != "resume" else ""
    console.print(f"session {escape(sid)} {done} by {escape(by)} (now {sess.state.status}){denied}", soft_wrap=True)


@session.command("pause")
@db_option
@_actor_options
@click.argument("session_id", metavar="SESSION")
def pause_cmd(db: str, by: str, note: str, as_json: bool, session_id: str) -> None:
    """Pause SESSION (an id or a unique prefix): every call is denied until it is resumed;
    its pending approvals are denied."""
    _control(db, session_id, "pause", by, note, as_json)


@session.command("resume")
@db_option
@_actor_options
@click.argument("session_id", metavar="SESSION")
def resume_cmd(db: str, by: str, note: str, as_json: bool, session_id: str) -> None:
    """Resume a paused SESSION. A killed or ended session cannot be resumed (exit 1)."""
    _control(db, session_id, "resume", by, note, as_json)


@session.command("kill")
@db_option
@_actor_options
@click.argument("session_id", metavar="SESSION")
def kill_cmd(db: str, by: str, note: str, as_json: bool, session_id: str) -> None:
    """Kill SESSION for good: every later call is denied and it can never be resumed;
    its pending approvals are denied."""
    _control(db, session_id, "kill", by, note, as_json)


@session.command("checkin")
@db_option
@_actor_options
@click.argument("session_id", metavar="SESSION")
def checkin_cmd(db: str, by: str, note: str, as_json: bool, session_id: str) -> None:
    """Check in on SESSION: a person looked and lets it go on, so the policy's ``checkin``
    counters (writes and minutes since a human last looked) start again."""
    store = open_store(db)
    sid = resolve_session(store, session_id)
    sess = _open(store, sid)
    try:
        sess.checkin(by=by, note=note)
    except SessionError as exc:
        if as_json:
            click.echo(json.dumps({"session_id": sid, "checked_in": False, "refused": str(exc)}, ensure_ascii=False))
        else:
            err_console.print(f"[red]refused:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(1) from None
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"session_id": sid, "checked_in": True, "by": by}, ensure_ascii=False))
        return
    console.print(f"checked in on session {escape(sid)} by {escape(by)}", soft_wrap=True)
