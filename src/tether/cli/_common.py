"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from tether.errors import StoreError
from tether.server import HIDDEN as HIDDEN  # streams that are not agent runs: MCP pins, principals' ledgers
from tether.server import INTERNAL_PREFIX as INTERNAL_PREFIX  # the MCP proxy's pin sessions (not agent runs)
from tether.store import EventStore, SQLiteStore

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "tether.db"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def db_option(fn: F) -> F:
    """``--db PATH``: the SQLite event store (default ``$TETHER_DB`` or ``tether.db``)."""
    return click.option(
        "--db",
        "db",
        default=lambda: os.environ.get("TETHER_DB", DEFAULT_DB),
        show_default="$TETHER_DB or tether.db",
        type=click.Path(dir_okay=False),
        help="SQLite event store.",
    )(fn)


def open_store(path: str, *, must_exist: bool = True) -> SQLiteStore:
    """Open the store or exit with a clear message."""
    if must_exist and path != ":memory:" and not os.path.exists(path):
        err_console.print(f"[red]error:[/] no event store at {path!r}")
        raise SystemExit(2)
    try:
        return SQLiteStore(path)
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {exc}")
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


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration(text: str) -> float | None:
    """``30m``, ``12h``, ``7d``, ``2w`` or plain seconds as seconds; ``never`` as None. A usage error otherwise."""
    word = text.strip().lower()
    if word in ("never", "none"):
        return None
    unit = _UNITS.get(word[-1:])
    number = word[:-1] if unit is not None else word
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = -1.0
    if not (0 < value <= 366 * 86400):
        raise click.BadParameter(f"{text!r} is not a duration of at most a year (like 30m, 12h, 7d, or 'never')")
    return value
