"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from tether.errors import StoreError
from tether.store._sqlite_store import SQLiteStore

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "tether.db"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


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
