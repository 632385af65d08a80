"""``tether endorsements ...``: list and revoke the values people approved and asked to remember.

An endorsement makes one value trusted for one argument of one tool (in one session, or in
every session of a principal) until it expires or is revoked. Revoking goes through a session
it holds in, so the revocation is an event in the same chain (or the principal's ledger).
"""

from __future__ import annotations

import json
import os

import click
from rich.markup import escape

from tether._display import visible_text
from tether.cli._common import console, db_option, fail, open_store
from tether.events import format_time
from tether.server import Oversight, OversightError


@click.group()
def endorsements() -> None:
    """List and revoke endorsements ("approve and remember")."""


@endorsements.command("list")
@db_option
@click.option("--principal", default=None, help="Only those holding in this principal's sessions.")
@click.option("--session", "session_id", default=None, metavar="SESSION", help="Only those holding in this session.")
@click.option("--live", is_flag=True, help="Leave out expired ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endorsement.")
def list_cmd(db: str, principal: str | None, session_id: str | None, live: bool, as_json: bool) -> None:
    """Show each endorsement (newest first): tool and argument, the value (marked characters
    made visible), scope, who gave it, when it expires, and how many asks it spared."""
    over = Oversight(open_store(db))
    try:
        items = over.endorsements(principal=principal, session_id=session_id, live_only=live)
    except OversightError as exc:
        fail(str(exc))
    for e in items:
        if as_json:
            click.echo(json.dumps(e.to_json(), ensure_ascii=False))
            continue
        until = "never expires" if e.expires_at is None else ("expires " if e.live else "EXPIRED ") + format_time(e.expires_at)
        where = f"principal {e.principal}" if e.scope == "principal" else f"session {e.origin_session[:12]}"
        value = e.value if isinstance(e.value, str) else json.dumps(e.value)
        console.print(
            f"[bold]{e.id}[/] {escape(visible_text(e.tool))}.{escape(visible_text(e.arg))} = {escape(visible_text(value))}\n"
            f"  {escape(where)}, by {escape(visible_text(e.by))} at {format_time(e.time)}, {until}; spared {e.spared} ask(s)",
            soft_wrap=True,
        )
    if not items and not as_json:
        console.print("no endorsements")


@endorsements.command("revoke")
@db_option
@click.option("--by", default=None, help="Who revokes it (kept in the log; default $USER).")
@click.option("--note", default="", help="Why (kept in the log).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the endorsement revoked.")
@click.argument("endorsement")
def revoke_cmd(db: str, by: str | None, note: str, as_json: bool, endorsement: str) -> None:
    """Revoke ENDORSEMENT (an id or a unique prefix): its value is asked about again."""
    who = by or os.environ.get("USER", "cli")
    try:
        gone = Oversight(open_store(db)).revoke_endorsement(endorsement, by=who, note=note)
    except OversightError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"id": gone.id, "tool": gone.tool, "arg": gone.arg, "revoked": True, "by": who}, ensure_ascii=False))
        return
    console.print(f"endorsement {gone.id} of {escape(gone.tool)}.{escape(gone.arg)} revoked by {escape(who)}", soft_wrap=True)
