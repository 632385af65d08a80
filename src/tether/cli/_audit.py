"""``tether audit ...``: verify the hash chains, export and check their heads, read session timelines."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click
from rich.markup import escape

from tether._display import visible_text
from tether.cli._anchors import AnchorFileError, read_heads
from tether.cli._common import console, db_option, err_console, open_store, resolve_session
from tether.errors import StoreError
from tether.events import format_time
from tether.store import (
    ArchivedSession,
    ChainHead,
    EventStore,
    SQLiteStore,
    StoredEvent,
    VerifyProblem,
    archive_sessions,
    finished_before,
    is_postgres_url,
    verify_archived,
)
from tether.store import open_store as open_event_store


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
@click.option(
    "--archives",
    "check_archives",
    is_flag=True,
    help="Also verify archived sessions in their archives, against the heads the store recorded when it archived them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.argument("sessions", nargs=-1)
def verify_cmd(db: str, expect_path: str | None, check_archives: bool, as_json: bool, sessions: tuple[str, ...]) -> None:
    """Recompute the hash chains (all sessions, or the SESSIONS named by id or unique prefix).

    Exit 0 when they hold, 1 naming the first bad event, 2 on a usage error.
    Without --expect, an attacker who rewrites the heads table along with the events
    goes unnoticed; with it, every exported head must still be in its chain, at its
    sequence number with its hash. Sessions moved out by 'tether audit archive' are
    reported with the heads recorded for them; --archives checks each archive ends
    them there (and holds the --expect heads exported before they were moved).
    """
    expect: list[ChainHead] = []
    if expect_path is not None:
        try:
            expect = read_heads(expect_path)
        except AnchorFileError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise SystemExit(2) from None
    store = open_store(db, read_only=True)
    archived = {a.session_id: a for a in store.archived()}
    archived_expect = [h for h in expect if h.session_id in archived]
    expect = [h for h in expect if h.session_id not in archived]
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
    archive_doc: dict[str, Any] | None = None
    archive_problem: VerifyProblem | None = None
    if report.ok and archived and ids is None:
        archive_doc, archive_problem = _verify_archives(list(archived.values()), archived_expect, check_archives)
    problem = report.problem or archive_problem
    if as_json:
        doc: dict[str, Any] = {
            "ok": problem is None,
            "db": db,
            "sessions": report.sessions,
            "events": report.events,
            "expected_heads": len(expect),
        }
        if archive_doc is not None:
            doc["archived"] = archive_doc
        if problem is not None:
            doc["problem"] = _problem_json(problem)
        click.echo(json.dumps(doc, ensure_ascii=False))
        raise SystemExit(0 if problem is None else 1)
    if report.problem is not None:
        _tampered(report.problem)
        raise SystemExit(1)
    held = f"; {len(expect)} exported head(s) still in their chains" if expect_path is not None else ""
    console.print(f"[green]ok[/] {report.events} event(s) in {report.sessions} session(s) verified ({escape(db)}){held}", soft_wrap=True)
    if archive_doc is not None:
        names = ", ".join(archive_doc["archives"])
        if archive_problem is not None:
            _tampered(archive_problem)
            raise SystemExit(1)
        if archive_doc["checked"]:
            console.print(
                f"[green]ok[/] {archive_doc['events']} event(s) in {archive_doc['sessions']} archived session(s) verified in "
                f"{escape(names)}, each ending at its recorded head",
                soft_wrap=True,
            )
        else:
            console.print(
                f"{archive_doc['sessions']} archived session(s) in {len(archive_doc['archives'])} archive(s) ({escape(names)}), "
                "heads recorded here; check them with --archives",
                soft_wrap=True,
            )
    raise SystemExit(0)


def _verify_archives(records: list[ArchivedSession], expect: list[ChainHead], check: bool) -> tuple[dict[str, Any], VerifyProblem | None]:
    """What the store says of its archived sessions; with ``check``, each archive verified against
    the heads recorded here (and any exported heads of them)."""
    names = sorted({r.archive for r in records})
    doc: dict[str, Any] = {"sessions": len(records), "archives": names, "checked": check, "events": None}
    if not check:
        return doc, None
    events, problem = verify_archived(records, lambda name: open_event_store(name, must_exist=True, read_only=True), expect=expect)
    doc["events"] = events
    return doc, problem


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _age_s(text: str) -> float:
    match = _AGE.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not an age like 30d, 12h, 90m, 2w or 0s")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@audit.command("archive")
@db_option
@click.option("--ended-before", "age", required=True, help="Archive sessions that ended (or were killed) this long ago: 30d, 12h, 2w, 0s.")
@click.option(
    "--to", "archive_path", required=True, type=click.Path(dir_okay=False), help="The archive: a SQLite file (created if missing)."
)
@click.option("--dry-run", is_flag=True, help="List the sessions that would move; move nothing.")
def archive_cmd(db: str, age: str, archive_path: str, dry_run: bool) -> None:
    """Move finished sessions out of the store into an archive, keeping their heads here.

    Each session ended or killed before the cutoff is copied byte for byte into ARCHIVE
    (a SQLite Tether store: 'tether audit verify --db ARCHIVE' checks it), then deleted
    from the store, which records its last sequence number and hash and the archive's
    name: 'tether audit verify --archives' proves the archive still ends it there.
    """
    cutoff = time.time() - _age_s(age)
    if not is_postgres_url(db) and archive_path == db:
        err_console.print("[red]error:[/] the archive must be another file than the store")
        raise SystemExit(2)
    store = open_store(db)
    ids = finished_before(store, cutoff)
    if dry_run:
        for sid in ids:
            console.print(escape(sid), soft_wrap=True)
        console.print(f"{len(ids)} session(s) would move to {escape(archive_path)}", soft_wrap=True)
        return
    try:
        archive = SQLiteStore(archive_path, durability="full")
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    try:
        report = archive_sessions(store, archive, ids, archive_name=archive_path, now=time.time)
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(1) from None
    finally:
        archive.close()
    for sid, why in report.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(sid)}: {escape(why)}", soft_wrap=True)
    console.print(
        f"[green]archived[/] {len(report.archived)} session(s), {report.events} event(s), to {escape(archive_path)}", soft_wrap=True
    )


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
