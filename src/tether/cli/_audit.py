"""``tether audit ...``: verify the hash chain and read session timelines."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape

from tether.cli._common import console, db_option, err_console, open_store
from tether.store import format_time


@click.group()
def audit() -> None:
    """Verify and read the event log."""


@audit.command("verify")
@db_option
@click.argument("sessions", nargs=-1)
def verify_cmd(db: str, sessions: tuple[str, ...]) -> None:
    """Recompute the hash chains. Exit 0 when they hold, 1 naming the first bad event."""
    store = open_store(db)
    report = store.verify(list(sessions) or None)
    if report.ok:
        console.print(f"[green]ok[/] {report.events} event(s) in {report.sessions} session(s) verified ({db})")
        raise SystemExit(0)
    p = report.problem
    assert p is not None
    eid = f" (event id {p.event_id})" if p.event_id else ""
    err_console.print(f"[red]TAMPERED[/] session {p.session_id} event {p.seq}{eid}: {escape(p.message)}")
    raise SystemExit(1)


@audit.command("sessions")
@db_option
def sessions_cmd(db: str) -> None:
    """List the sessions in the store."""
    store = open_store(db)
    for s in store.sessions():
        console.print(f"{s.session_id}  {_ts(s.first_time)}  {s.events:>6} events")


def _ts(t: float) -> str:
    return format_time(t)


@audit.command("show")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines, with seq and hashes.")
@click.argument("session")
def show_cmd(db: str, as_json: bool, session: str) -> None:
    """Print a session's timeline."""
    store = open_store(db)
    matches = [s.session_id for s in store.sessions() if s.session_id.startswith(session)]
    if len(matches) != 1:
        err_console.print(f"[red]error:[/] {'no' if not matches else 'more than one'} session matches {session!r}")
        raise SystemExit(2)
    stored = store.read(matches[0])
    for item in stored:
        event = item.event()
        if as_json:
            out: dict[str, Any] = {"seq": item.seq, "hash": item.hash, "prev_hash": item.prev_hash, **event.model_dump(mode="json")}
            click.echo(json.dumps(out, ensure_ascii=False))
        else:
            console.print(f"[dim]{item.seq:>4} {_ts(event.time)}[/] {escape(event.describe())}", soft_wrap=True)
