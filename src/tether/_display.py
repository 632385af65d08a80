"""What a human sees of a tool call: every character the tool will receive, none that tricks the eye.

Shared by every place a person reads tool text (``tether approvals``, the web inbox, the
MCP approval form). Text is split into :class:`Piece` s: plain runs, and single characters
that could make the text read differently from what the tool receives, each with a mark
naming it by code point:

* **invisible or reordering** characters (bidi controls, zero-width and other format
  characters, control characters other than newline and tab, line and paragraph
  separators, private-use and unassigned code points, variation selectors): never
  rendered, only their mark;
* **look-alikes**: characters whose compatibility form differs (fullwidth letters,
  mathematical alphanumerics, ligatures), spaces other than the plain one, letters of
  another script inside a word that also holds Latin letters (``paypal`` with a
  Cyrillic a), and any non-ASCII character inside an address-like token (a URL,
  an email address, a host name): rendered, followed by their mark.

Long values are folded, never cut: :func:`fold` says how many characters are hidden
so the reader is told.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_HIDE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
_KEEP_CONTROLS = frozenset("\n\t")
_ADDRESS_MARKS = ("://", "@", "www.")


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of text, or one marked character."""

    text: str
    """The characters as the tool receives them."""
    mark: str | None = None
    """For a marked character: its code point and name (``U+202E RIGHT-TO-LEFT OVERRIDE``)."""
    hidden: bool = False
    """The character must not be rendered (it is invisible or reorders text): show the mark only."""


def char_name(ch: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``; control and unnamed characters by category."""
    name = unicodedata.name(ch, "")
    if not name:
        name = {"Cc": "CONTROL", "Co": "PRIVATE USE", "Cs": "SURROGATE"}.get(unicodedata.category(ch), "UNASSIGNED")
    return f"U+{ord(ch):04X} {name}"


def _hidden(ch: str) -> bool:
    if ch in _KEEP_CONTROLS:
        return False
    cp = ord(ch)
    # Variation selectors are combining marks (Mn) but render as nothing.
    return unicodedata.category(ch) in _HIDE_CATEGORIES or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def _lookalikes(word: str) -> set[int]:
    """Offsets in ``word`` (no whitespace) of visible characters that may pass for others."""
    out = {
        i for i, ch in enumerate(word) if not ch.isascii() and (unicodedata.normalize("NFKC", ch) != ch or unicodedata.category(ch) == "Zs")
    }
    if word.isascii():
        return out
    if any(m in word for m in _ADDRESS_MARKS) or ("." in word.strip(".") and any(c.isascii() and c.isalpha() for c in word)):
        # An address (URL, email, host): any non-ASCII character may be a homograph.
        return out | {i for i, ch in enumerate(word) if not ch.isascii()}
    letters = [(i, _script(ch)) for i, ch in enumerate(word) if ch.isalpha()]
    if any(s == "LATIN" for _, s in letters) and any(s != "LATIN" for _, s in letters):
        out |= {i for i, s in letters if s != "LATIN"}
    return out


def pieces(text: str) -> list[Piece]:
    """``text`` split into plain runs and marked characters (joined, the texts give ``text`` back)."""
    out: list[Piece] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(Piece("".join(run)))
            run.clear()

    for word in _words(text):
        suspects = _lookalikes(word) if not word.isspace() else set()
        for i, ch in enumerate(word):
            if _hidden(ch):
                flush()
                out.append(Piece(ch, char_name(ch), hidden=True))
            elif i in suspects or (word.isspace() and ch not in " \n\t"):
                flush()
                out.append(Piece(ch, char_name(ch)))
            else:
                run.append(ch)
    flush()
    return out


def _words(text: str) -> list[str]:
    """``text`` cut into alternating runs of whitespace and non-whitespace (joined: ``text``)."""
    words: list[str] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or text[i].isspace() != text[start].isspace():
            words.append(text[start:i])
            start = i
    return words


def has_marks(text: str) -> bool:
    """Whether any character of ``text`` is marked."""
    return any(p.mark for p in pieces(text))


def visible_text(text: str) -> str:
    """``text`` for a terminal: hidden characters replaced by ``⟦U+202E RIGHT-TO-LEFT OVERRIDE⟧``,
    look-alikes followed by their mark."""
    return "".join(f"⟦{p.mark}⟧" if p.hidden else f"{p.text}⟦{p.mark}⟧" if p.mark else p.text for p in pieces(text))


@dataclass(frozen=True, slots=True)
class Folded:
    """A value cut for a first glance, with what was left out counted."""

    head: str
    """The first characters."""
    rest: str
    """Everything after ``head`` (empty when nothing is folded)."""

    @property
    def folded(self) -> int:
        """How many characters the fold hides (0: the value is whole)."""
        return len(self.rest)


def fold(text: str, limit: int) -> Folded:
    """The first ``limit`` characters of ``text`` and the rest (joined: ``text``)."""
    if len(text) <= limit:
        return Folded(text, "")
    return Folded(text[:limit], text[limit:])
