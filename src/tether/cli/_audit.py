"""``tether audit ...``: verify the hash chains, export and check their heads, read session timelines."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape

from tether._display import visible_text
from tether.cli._anchors import AnchorFileError, read_heads
from tether.cli._common import console, db_option, err_console, open_store, resolve_session
from tether.errors import StoreError
from tether.events import format_time
from tether.store import ChainHead, EventStore, StoredEvent, VerifyProblem


@click.group()
def audit() -> None:
    """Verify and read the event log."""


def _tampered(p: VerifyProblem) -> None:
    eid = f" (event id {p.event_id})" if p.event_id else ""
    err_console.print(f"[red]TAMPERED[/] session {escape(p.session_id)} event {p.seq}{eid}: {escape(p.message)}", soft_wrap=True)


@audit.command("verify")
@db_option
@click.option(
    "--expect",
    "expect_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Heads exported earlier with 'tether audit head': each must still be in its chain (catches truncation and rewrites).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.argument("sessions", nargs=-1)
def verify_cmd(db: str, expect_path: str | None, as_json: bool, sessions: tuple[str, ...]) -> None:
    """Recompute the hash chains (all sessions, or the SESSIONS named by id or unique prefix).

    Exit 0 when they hold, 1 naming the first bad event, 2 on a usage error.
    Without --expect, an attacker who rewrites the heads table along with the events
    goes unnoticed; with it, every exported head must still be in its chain, at its
    sequence number with its hash.
    """
    expect: list[ChainHead] = []
    if expect_path is not None:
        try:
            expect = read_heads(expect_path)
        except AnchorFileError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise SystemExit(2) from None
    store = open_store(db, read_only=True)
    present = {s.session_id for s in store.sessions()}
    anchored = {h.session_id for h in expect}
    # A session named by an exported head but gone from the store is checked (and reported missing), not refused.
    ids = [s if s in anchored and s not in present else resolve_session(store, s) for s in sessions] if sessions else None
    if ids is not None:
        expect = [h for h in expect if h.session_id in ids]
    conflict = _conflicting(expect)
    if conflict is not None:
        if as_json:
            click.echo(json.dumps({"ok": False, "db": db, "problem": _problem_json(conflict)}, ensure_ascii=False))
        else:
            _tampered(conflict)
        raise SystemExit(1)
    report = store.verify(ids, expect=expect)
    if as_json:
        doc: dict[str, Any] = {
            "ok": report.ok,
            "db": db,
            "sessions": report.sessions,
            "events": report.events,
            "expected_heads": len(expect),
        }
        if report.problem is not None:
            doc["problem"] = _problem_json(report.problem)
        click.echo(json.dumps(doc, ensure_ascii=False))
        raise SystemExit(0 if report.ok else 1)
    if report.ok:
        held = f"; {len(expect)} exported head(s) still in their chains" if expect_path is not None else ""
        console.print(
            f"[green]ok[/] {report.events} event(s) in {report.sessions} session(s) verified ({escape(db)}){held}", soft_wrap=True
        )
        raise SystemExit(0)
    assert report.problem is not None
    _tampered(report.problem)
    raise SystemExit(1)


def _problem_json(p: VerifyProblem) -> dict[str, Any]:
    return {"session_id": p.session_id, "seq": p.seq, "event_id": p.event_id, "message": p.message}


def _conflicting(expect: list[ChainHead]) -> VerifyProblem | None:
    """Two exports that disagree on one event: history was rewritten between them."""
    seen: dict[tuple[str, int], str] = {}
    for h in expect:
        earlier = seen.setdefault((h.session_id, h.seq), h.hash)
        if earlier != h.hash:
            return VerifyProblem(
                h.session_id,
                h.seq,
                None,
                f"the exported heads disagree about event {h.seq} ({earlier[:16]}... and {h.hash[:16]}...): "
                "history was rewritten between two exports",
            )
    return None


@audit.command("head")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session (the form --expect reads best).")
@click.argument("sessions", nargs=-1)
def head_cmd(db: str, as_json: bool, sessions: tuple[str, ...]) -> None:
    """Print where each chain ends (session id, sequence number, hash): all sessions, or SESSIONS.

    Keep the output somewhere the store's writers cannot change (an append-only file on
    another machine, a ticket, a signed commit); later, 'tether audit verify --expect FILE'
    proves that the log still holds every event those heads covered.
    """
    store = open_store(db, read_only=True)
    ids = [resolve_session(store, s) for s in sessions] if sessions else [s.session_id for s in store.sessions()]
    for sid in ids:
        head = store.head(sid)
        if head is None:
            continue
        if as_json:
            click.echo(json.dumps({"session_id": head.session_id, "seq": head.seq, "hash": head.hash}, ensure_ascii=False))
        else:
            click.echo(f"{head.session_id} {head.seq} {head.hash}")


@audit.command("sessions")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session.")
def sessions_cmd(db: str, as_json: bool) -> None:
    """List the sessions in the store (see also 'tether session list')."""
    store = open_store(db, read_only=True)
    for s in store.sessions():
        if as_json:
            doc = {"session_id": s.session_id, "events": s.events, "started": s.first_time, "last_event": s.last_time, "head": s.head_hash}
            click.echo(json.dumps(doc, ensure_ascii=False))
            continue
        console.print(f"{escape(s.session_id)}  {format_time(s.first_time)}  {s.events:>6} events", soft_wrap=True)


@audit.command("show")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines, with seq and hashes.")
@click.argument("session")
def show_cmd(db: str, as_json: bool, session: str) -> None:
    """Print a session's timeline (SESSION: an id or a unique prefix).

    Each line shows the event's sequence number, time and id prefix (deny reasons cite
    event ids). The chain is verified as it is shown: from the first event that does not
    hold, every event is flagged and the command exits 1.
    """
    store = open_store(db, read_only=True)
    sid = resolve_session(store, session)
    report = store.verify([sid])
    bad_from = report.problem.seq if report.problem is not None else None
    if report.problem is not None:
        _tampered(report.problem)
        err_console.print(f"[red]warning:[/] events from {bad_from} on are not covered by an intact chain; do not trust them")
    for seq, item in _read_all(store, sid):
        flagged = bad_from is not None and seq >= bad_from
        if as_json:
            click.echo(json.dumps(_json_line(seq, item, flagged), ensure_ascii=False))
        else:
            console.print(_text_line(seq, item, flagged), soft_wrap=True)
    if report.problem is not None:
        raise SystemExit(1)


def _read_all(store: EventStore, sid: str) -> list[tuple[int, StoredEvent | None]]:
    """The session's events; an event the store refuses to read (a rewritten row) is None."""
    try:
        return [(item.seq, item) for item in store.read(sid)]
    except StoreError:
        pass
    head = store.head(sid)
    out: list[tuple[int, StoredEvent | None]] = []
    for seq in range(1, (head.seq if head is not None else 0) + 1):
        try:
            got = store.read(sid, seq - 1, limit=1)
        except StoreError:
            out.append((seq, None))
            continue
        out.extend((item.seq, item) for item in got if item.seq == seq)
    return out


def _parsed(item: StoredEvent) -> Any:
    try:
        return item.event()
    except ValueError:
        return None


def _json_line(seq: int, item: StoredEvent | None, flagged: bool) -> dict[str, Any]:
    if item is None:
        return {"seq": seq, "tampered": True, "unreadable": "the stored row is not an event body"}
    out: dict[str, Any] = {"seq": item.seq, "hash": item.hash, "prev_hash": item.prev_hash}
    if flagged:
        out["tampered"] = True
    event = _parsed(item)
    if event is None:
        out["body"] = item.body.decode("utf-8", "replace")
    else:
        out.update(event.model_dump(mode="json"))
    return out


def _text_line(seq: int, item: StoredEvent | None, flagged: bool) -> str:
    mark = "[red]![/]" if flagged else " "
    if item is None:
        return f"{mark}[dim]{seq:>4} {'?':<23} {'?':<12}[/] [red]unreadable: the stored row is not an event body[/]"
    event = _parsed(item)
    if event is None:
        return f"{mark}[dim]{item.seq:>4} {'?':<23} {'?':<12}[/] [red]unreadable event body[/] {escape(repr(item.body[:120]))}"
    return f"{mark}[dim]{item.seq:>4} {format_time(event.time)} {event.id[:12]}[/] {escape(visible_text(event.describe()))}"
