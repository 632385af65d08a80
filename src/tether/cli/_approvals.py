"""``tether approvals ...``: list and answer the pending asks of any session in the store.

Only ``--db`` is needed: the store keeps each session's policy by its content hash,
and an answer is given through the session itself (so it is bound to the call hash,
re-decided against the session's budgets and status, and logged in its chain).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click
from rich.markup import escape

from tether._display import fold, visible_text
from tether.cli._common import INTERNAL_PREFIX, answer_options, console, db_option, err_console, fail, open_store, parse_duration
from tether.errors import PolicyError, SessionError, StoreError
from tether.events import ApprovalAnswered, format_time
from tether.policy import Policy
from tether.server import ArgView, Oversight, OversightError, PendingCall
from tether.session import Guard
from tether.store import EventStore, PendingApproval

LIST_FOLD = 300
"""Characters of each argument ``tether approvals list`` shows before folding the rest (with a mark)."""


def pending_approvals(store: EventStore, *, now: float | None = None) -> list[PendingApproval]:
    """Every unanswered, unexpired approval request in ``store`` (tool-definition pins excepted)."""
    return Oversight(store, clock=(lambda: now) if now is not None else time.time).pending_approvals()


def _shown(text: str, limit: int | None) -> str:
    """``text`` for the terminal: marked characters made visible, folded after ``limit`` characters with a mark."""
    folded = fold(text, limit) if limit is not None else None
    if folded is None or not folded.folded:
        return escape(visible_text(text))
    return escape(visible_text(folded.head)) + f"[reverse] ⟦+{folded.folded:,} characters folded⟧ [/]"


def _print_call(p: PendingApproval, *, limit: int | None, origins: PendingCall | None = None) -> None:
    """One pending call, each argument on its own line (whole when ``limit`` is None)."""
    left = max(0, int(p.expires_at - time.time()))
    console.print(f"[bold]{escape(p.call_id)}[/] session {escape(p.session_id[:12])}, {left}s left", soft_wrap=True)
    console.print(f"  {_shown(p.tool, None)}(", soft_wrap=True)
    leaves: Sequence[ArgView | tuple[str, str]] = origins.leaves if origins is not None else Oversight.leaves(p.args)
    for leaf in leaves:
        path, text = (leaf.path, leaf.text) if isinstance(leaf, ArgView) else leaf
        console.print(f"    [cyan]{_shown(path or '(arguments)', None)}[/] = {_shown(text, limit)}", soft_wrap=True)
        if isinstance(leaf, ArgView):
            tags = "".join(f", {t}" for t in leaf.label["tags"])
            src = "; ".join(s.what for s in leaf.sources)
            if leaf.inherited:
                src = "found in nothing the agent read: it carries the context label" + (f" (from {src})" if src else "")
            console.print(f"      [dim]{leaf.label['integrity']}{escape(tags)}: {escape(visible_text(src))}[/]", soft_wrap=True)
    console.print("  )", soft_wrap=True)
    if origins is not None and origins.reasons:
        for r in origins.reasons:
            console.print(f"  [yellow]{_shown(r.rule, None)}[/]: {_shown(r.message, None)}", soft_wrap=True)
    else:
        console.print(f"  {_shown(p.summary, limit)}", soft_wrap=True)


@click.group()
def approvals() -> None:
    """List and answer calls waiting for a human (from any process sharing the store)."""


@approvals.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per pending call.")
@click.option("--full", is_flag=True, help="Show every argument whole (otherwise each is folded after 300 characters, with a mark).")
def list_cmd(db: str, as_json: bool, full: bool) -> None:
    """Show the calls waiting for approval. Characters that change how text reads (bidi controls,
    zero-width and control characters, look-alikes) are shown as ⟦U+XXXX NAME⟧ marks."""
    store = open_store(db, read_only=True)
    items = pending_approvals(store)
    for p in items:
        if as_json:
            click.echo(json.dumps(asdict(p), ensure_ascii=False, default=str))
        else:
            _print_call(p, limit=None if full else LIST_FOLD)
    if any(_folded(p) for p in items) and not (as_json or full):
        console.print("[dim]folded values: 'tether approvals show CALL' or 'tether approvals list --full' shows them whole[/]")
    if not items and not as_json:
        console.print("no pending approvals")


def _folded(p: PendingApproval) -> bool:
    return any(len(text) > LIST_FOLD for _, text in Oversight.leaves(p.args))


@approvals.command("show")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the call as one JSON object.")
@click.argument("call")
def show_cmd(db: str, as_json: bool, call: str) -> None:
    """Show the pending CALL (an id or a unique prefix) whole: every argument, where its data came
    from (which event, trusted or not, which tags), and the rule that asked."""
    over = Oversight(open_store(db, read_only=True))
    try:
        target = over.find(call)
        view = over.explain(target)
    except OversightError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps(view.to_json(), ensure_ascii=False))
        return
    _print_call(target, limit=None, origins=view)


def _answer(
    db: str,
    policy_path: str | None,
    call: str,
    approved: bool,
    by: str,
    note: str,
    as_json: bool,
    remember: list[str] | None = None,
    scope: str = "session",
    expires_s: float | None = None,
) -> None:
    store = open_store(db)
    # An empty prefix would match every call: never answer a call the human did not name.
    matches = store.pending_approvals(call_prefix=call, hide=(INTERNAL_PREFIX,)) if call else []
    if not matches and call:
        earlier = _already_answered(store, call)
        if earlier is not None:
            # Say what the state already is; nothing is appended.
            state = "approved" if earlier.approved else "refused"
            _say(as_json, {"call_id": earlier.call_id, "changed": False, "state": state, "by": earlier.by},
                 f"call {escape(earlier.call_id)} was already {state} by {escape(earlier.by)}; nothing was logged")  # fmt: skip
            raise SystemExit(0 if earlier.approved == approved else 1)
    if len(matches) != 1:
        fail(f"{'no' if not matches else 'more than one'} pending call matches {call!r}")
    target = matches[0]
    try:
        guard = Guard(Policy.from_file(policy_path), store) if policy_path is not None else Guard.for_session(store, target.session_id)
        session = guard.open_session(target.session_id)
        expires_at = None if expires_s is None else session.clock() + expires_s
        ok = session.answer(
            target.call_id,
            approved,
            by=by,
            note=note,
            remember=remember,
            scope="principal" if scope == "principal" else "session",
            expires_at=expires_at,
        )
    except (PolicyError, SessionError, StoreError) as exc:
        fail(str(exc))
    if ok:
        word = "approved"
    elif not approved:
        word = "refused"
    else:
        status = session.state.approvals.get(target.call_id)
        word = "NOT approved: " + (status.note if status is not None and status.by == "timeout" else _denial(session, target.call_id))
    doc = {"call_id": target.call_id, "session_id": target.session_id, "tool": target.tool, "changed": True, "approved": approved,
           "allowed": ok, "state": "approved" if ok else "refused" if not approved else "denied", "by": by}  # fmt: skip
    mine = [e for e in session.endorsements(live_only=False) if e.call_id == target.call_id] if remember is not None else []
    if remember is not None:
        doc["remembered"] = [{"id": e.id, "scope": e.scope, "tool": e.tool, "arg": e.arg, "expires_at": e.expires_at} for e in mine]
    _say(
        as_json,
        doc,
        f"call {escape(target.call_id)} to {escape(target.tool)} {escape(word)}" + (f" by {escape(by)}" if ok or not approved else ""),
    )
    if remember is not None and not as_json:
        for e in mine:
            until = "until revoked" if e.expires_at is None else f"until {format_time(e.expires_at)}"
            console.print(
                f"remembered ({e.scope}): {escape(e.tool)}.{escape(e.arg)} = {_shown(str(e.value), LIST_FOLD)} {until} [dim]{e.id}[/]",
                soft_wrap=True,
            )
        if not mine:
            console.print("nothing to remember: no argument value of this call can be endorsed")
    raise SystemExit(0 if ok == approved else 1)


def _say(as_json: bool, doc: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        console.print(text, soft_wrap=True)


def _already_answered(store: EventStore, call: str) -> ApprovalAnswered | None:
    """The answer already given to the one call whose id is ``call`` or starts with it (the log
    is read only on this path: a human named a call that waits no more)."""
    found: dict[str, ApprovalAnswered] = {}
    for summary in store.sessions():
        if summary.session_id.startswith(INTERNAL_PREFIX):
            continue
        for item in store.read(summary.session_id):
            event = item.event()
            if isinstance(event, ApprovalAnswered) and event.call_id.startswith(call):
                found[event.call_id] = event
    return next(iter(found.values())) if len(found) == 1 else None


def _denial(session: Any, call_id: str) -> str:
    """Why an approved call was still denied (from the answer event's re-check)."""
    for item in reversed(session.store.read(session.id, max(0, session.state.last_seq - 64))):
        event = item.event()
        if event.kind == "approval_answered" and event.call_id == call_id:
            return str(event.describe())
    return "it was denied when re-checked"


def _answer_options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")(fn)
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
@click.option("--remember", is_flag=True, help="Approve and remember: endorse the call's values so the same ask is not raised again.")
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="NAME",
    help="With --remember: an argument to endorse (repeatable; default: those whose provenance caused the ask).",
)
@click.option(
    "--scope",
    type=click.Choice(["session", "principal"]),
    default="session",
    show_default=True,
    help="With --remember: this session, or every session of its principal.",
)
@click.option(
    "--expires", default="7d", show_default=True, metavar="DURATION", help="With --remember: how long it holds (30m, 12h, 7d, or 'never')."
)
@click.argument("call")
def approve_cmd(
    db: str,
    policy_path: str | None,
    by: str,
    note: str,
    as_json: bool,
    remember: bool,
    args: tuple[str, ...],
    scope: str,
    expires: str,
    call: str,
) -> None:
    """Approve the pending CALL (an id or a unique prefix). The call is checked again now:
    if a budget, a rate or the session's status no longer allows it, it stays denied (exit 1).

    With --remember, the values of the call's untrusted arguments (or those named with --arg) are
    endorsed: trusted for that argument of that tool from now on (trust only: tags such as
    secret stay), listed by 'tether endorsements list', revocable."""
    if (args or scope != "session") and not remember:
        raise click.UsageError("--arg and --scope go with --remember")
    _answer(db, policy_path, call, True, by, note, as_json, list(args) if remember else None, scope, parse_duration(expires))


@approvals.command("deny")
@_answer_options
@click.argument("call")
def deny_cmd(db: str, policy_path: str | None, by: str, note: str, as_json: bool, call: str) -> None:
    """Refuse the pending CALL (an id or a unique prefix)."""
    _answer(db, policy_path, call, False, by, note, as_json)
