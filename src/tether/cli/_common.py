"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from tether.errors import StoreError
from tether.server import HIDDEN as HIDDEN  # streams that are not agent runs: MCP pins, principals' ledgers
from tether.server import INTERNAL_PREFIX as INTERNAL_PREFIX  # the MCP proxy's pin sessions (not agent runs)
from tether.store import EventStore
from tether.store import open_store as open_event_store

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "tether.db"

NOT_A_TERMINAL_WIDTH = 10_000
"""Console width when the output is not a terminal: piped or logged lines are never wrapped, and
tables are as wide as their content (rich would otherwise wrap at 80 columns)."""


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps for a terminal only (see :data:`NOT_A_TERMINAL_WIDTH`; ``$COLUMNS``,
    when set, is the width either way)."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal or os.environ.get("COLUMNS") else NOT_A_TERMINAL_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr, width=width)


console = make_console()
err_console = make_console(stderr=True)
page_console = Console(highlight=False)
"""For layouts made for a person to read (``tether demo``'s rules and full-width table): the
terminal's width, or 80 columns (``$COLUMNS``) when piped."""


def fail(message: str, code: int = 2) -> NoReturn:
    """The one error form of every command: ``error: MESSAGE`` on stderr, exit ``code`` (2: a
    usage error or bad input; see docs/cli.md)."""
    err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise SystemExit(code)


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


def open_store(path: str, *, must_exist: bool = True, read_only: bool = False) -> EventStore:
    """Open the store (a SQLite file or a ``postgresql://`` URL) or exit with a clear message.
    ``read_only``: for commands that only read (verify, listings): works on a read-only file or
    mount, and never changes the file."""
    try:
        return open_event_store(path, must_exist=must_exist, read_only=read_only)
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


PROGRESS_EVERY_S = 30.0
"""Seconds between progress lines of long work when stderr is not a terminal."""


class ProgressLines:
    """Progress of long work as plain lines on stderr (``what: 120/1995 (6%), 45 s``), one every
    :data:`PROGRESS_EVERY_S` seconds and one at the end: for logs and pipes, where a bar is noise."""

    def __init__(self, what: str, total: int, out: Console, *, every_s: float = PROGRESS_EVERY_S) -> None:
        self.what, self.total, self.out, self.every_s = what, total, out, every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done; print a line when one is due (and at the end)."""
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            share = f" ({100 * self.done // self.total}%)" if self.total else ""
            self.out.print(f"{escape(self.what)}: {self.done}/{self.total}{share}, {now - self.start:.0f} s", soft_wrap=True)


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
