"""Checks on what callers hand the session API: bad input gets a typed error, never a crash.

An agent (or a careless integrator) can pass anything: objects whose ``__str__``,
``__repr__``, ``__hash__`` or ``__bool__`` raise, ``str`` subclasses, lone surrogates,
integers too long to print. These helpers turn such values into a :class:`SessionError`
that names the parameter, or into plain, loggable text, without ever calling code the
value controls except where that is the point.
"""

from __future__ import annotations

from typing import Any

from tether._json import jsonsafe
from tether.errors import SessionError
from tether.flow import Label


def clean_text(text: str) -> str:
    """Text that can always be stored as UTF-8 (lone surrogates become U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def plain_str(value: str) -> str:
    """``value`` as an exact ``str`` (a subclass may override hashing, comparison or printing)."""
    return value if type(value) is str else str.__getitem__(value, slice(None))


def shown(value: object, limit: int = 200) -> str:
    """A short printable form of any value; never raises."""
    if isinstance(value, str):
        return repr(clean_text(plain_str(value))[:limit])
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() < 512 else f"<{value.bit_length()}-bit integer>"
    return f"<{type(value).__name__}>"


MAX_NAME_CHARS = 256
"""Longest tool name or call id accepted (both come from the model and are shown to humans)."""


def _visible(text: str) -> str:
    """``text`` with every character that is not printable written as an escape."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def name_problem(value: object) -> tuple[str, str | None]:
    """A loggable form of an agent-supplied name (tool, call id), and what is wrong with it (None: nothing).

    Names are shown to the humans who answer approvals (CLI, web UI, logs), so a name must be
    printable text: control, format (bidi overrides, zero-width) and line-separator characters
    would let the model draw a different call than the one being approved.
    """
    if isinstance(value, str):
        text = plain_str(value)
        cleaned = clean_text(text)
        if cleaned != text:
            return cleaned, f"{text.encode('utf-8', 'backslashreplace').decode('utf-8')!r} is not valid Unicode"
        if not text.isprintable():
            return _visible(text)[:MAX_NAME_CHARS], f"{_visible(text)[:200]!r} contains control, format or separator characters"
        if len(text) > MAX_NAME_CHARS:
            return text[:MAX_NAME_CHARS], f"{text[:40]!r}... is longer than {MAX_NAME_CHARS} characters"
        return text, None
    return shown(value), f"a {type(value).__name__} where a string was expected"


def text_param(name: str, value: object, *, allow_empty: bool = True) -> str:
    """A text parameter, checked: exact ``str``, valid Unicode (and not empty unless allowed)."""
    if not isinstance(value, str):
        raise SessionError(f"{name} must be text (str), got {type(value).__name__}")
    text = plain_str(value)
    if clean_text(text) != text:
        raise SessionError(f"{name} is not valid Unicode text (it contains a lone surrogate): {shown(text)}")
    if not allow_empty and not text:
        raise SessionError(f"{name} must not be empty")
    return text


def free_text(name: str, value: object) -> str:
    """A free-text parameter (a note, a name, data): exact ``str``, undecodable parts replaced."""
    if not isinstance(value, str):
        raise SessionError(f"{name} must be text (str), got {type(value).__name__}")
    return clean_text(plain_str(value))


def bool_param(name: str, value: object) -> bool:
    """A boolean parameter, checked (``1`` or ``"yes"`` are mistakes, not answers)."""
    if type(value) is not bool:
        raise SessionError(f"{name} must be True or False, got {type(value).__name__}")
    return value


def label_param(name: str, value: object) -> Label:
    """A :class:`Label` parameter, checked."""
    if not isinstance(value, Label):
        raise SessionError(f"{name} must be a tether Label, got {type(value).__name__}")
    return value


def choice_param(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of ``choices``, checked without trusting the value's own comparison."""
    if type(value) is not str or value not in choices:
        raise SessionError(f"{name} must be one of {', '.join(choices)}; got {shown(value)}")
    return value


def loggable(name: str, value: Any) -> Any:
    """``value`` in its JSON-safe logged form, or a :class:`SessionError` when even that fails."""
    try:
        return jsonsafe(value)
    except Exception as exc:
        raise SessionError(f"{name} cannot be logged ({type(exc).__name__})") from None
