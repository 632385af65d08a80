"""The Jinja2 templates of the oversight UI, shared with the bench's HTML report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from tether._display import fold, pieces

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "web" / "templates"
"""Where the templates are."""


def when(t: float) -> str:
    """A UTC time as ``2026-12-05 14:32:26Z``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def page_templates() -> jinja2.Environment:
    """The templates, with autoescaping everywhere: no template marks data safe, so tool text is never markup."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(pieces=pieces, fold=fold, when=when)
    # Ids in URLs: one path segment each, whatever they hold ("/", "?", "..").
    env.filters["seg"] = lambda value: quote(str(value), safe="")
    return env
