"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from tether.errors import StoreError
from tether.server import INTERNAL_PREFIX as INTERNAL_PREFIX  # the MCP proxy's pin sessions (not agent runs)
from tether.store import EventStore
from tether.store import open_store as open_event_store

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "tether.db"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def db_option(fn: F) -> F:
    """``--db PATH|URL``: the event store, a SQLite file or a ``postgresql://`` URL (default
    ``$TETHER_DB`` or ``tether.db``)."""
    return click.option(
        "--db",
        "db",
        default=lambda: os.environ.get("TETHER_DB", DEFAULT_DB),
        show_default="$TETHER_DB or tether.db",
        type=click.Path(dir_okay=False),
        help="Event store: a SQLite file or a postgresql:// URL.",
    )(fn)


def open_store(path: str, *, must_exist: bool = True) -> EventStore:
    """Open the store (a SQLite file or a ``postgresql://`` URL) or exit with a clear message."""
    try:
        return open_event_store(path, must_exist=must_exist)
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None


def answer_options(fn: F) -> F:
    """``--by`` (default ``$USER``) and ``--note``: who answers a human question, and why (both logged)."""
    fn = click.option("--note", default="", help="Why (kept in the log).")(fn)
    return click.option("--by", default=lambda: os.environ.get("USER", "cli"), show_default="$USER", help="Who answers (kept in the log).")(
        fn
    )


def resolve_session(store: EventStore, prefix: str) -> str:
    """The one session whose id is ``prefix`` or starts with it; exit 2 naming the problem otherwise."""
    try:
        ids = [s.session_id for s in store.sessions()]
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    if prefix in ids:
        return prefix
    matches = [sid for sid in ids if prefix and sid.startswith(prefix)]
    if len(matches) != 1:
        what = "no session matches" if not matches else f"{len(matches)} sessions match"
        err_console.print(f"[red]error:[/] {what} {escape(repr(prefix))}", soft_wrap=True)
        raise SystemExit(2)
    return matches[0]
