"""Text normalisation shared by the provenance index and the argument matchers.

Both sides of every comparison go through the same function, so an attacker who
re-encodes a value (percent-encoding, HTML entities, full-width or compatibility
characters, upper case, zero-width characters, odd whitespace) gains nothing.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from urllib.parse import unquote

import numpy as np

# Unicode "format" characters (category Cf): invisible, used to split or disguise
# words. Listed as ranges so importing the module stays cheap; a test checks this
# table against ``unicodedata`` for every code point.
_FORMAT_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)

_FORMAT_CLASS = "".join(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in _FORMAT_RANGES)
_INVISIBLE = re.compile(f"[{_FORMAT_CLASS}]+")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Thin, narrow no-break and no-break spaces group digits ("1 250,00"); NFKC would make them a plain
# space, a token boundary, so between two digits they are written as an apostrophe (a digit-group
# separator, see tether.flow._tokens) first.
_DIGIT_SPACE = re.compile("(?<=[0-9\uff10-\uff19])[\u00a0\u2009\u202f](?=[0-9\uff10-\uff19])")
# Typographic quotes, brackets and CJK punctuation that NFKC leaves alone: written as their ASCII
# forms so that they separate tokens like the ASCII ones do (a task typed with “smart quotes”).
_PUNCT = str.maketrans(
    {
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033\u301d\u301e", '"'),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2039\u203a\u2032", "'"),
        **dict.fromkeys("\u300c\u300e\u3008\u300a\u3010\u3014", "["),
        **dict.fromkeys("\u300d\u300f\u3009\u300b\u3011\u3015", "]"),
        "\u3001": ",",
        "\u3002": ".",
    }
)


def is_format_char(ch: str) -> bool:
    """True when ``ch`` is one of the invisible characters removed by :func:`normalize`."""
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _FORMAT_RANGES)


def percent_decode(text: str, rounds: int = 3) -> str:
    """Undo percent-encoding, repeatedly (double encoding is a classic bypass)."""
    for _ in range(rounds):
        if "%" not in text or not _PERCENT.search(text):
            break
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    return text


def _lower(text: str) -> str:
    # str.lower applies one contextual rule (final sigma); mapping capital sigma first makes it per character.
    return text.replace("\u03a3", "\u03c3").lower()


_LONG = 4096  # ASCII texts this long have their whitespace collapsed in vectorised steps
_IS_SPACE = np.zeros(256, dtype=bool)
_IS_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # what str.split() splits ASCII text on


def _collapse_ascii(text: str) -> str:
    """``" ".join(text.split())`` for ASCII text, on its bytes: each run of whitespace becomes one
    space, then the ends are stripped (no Python string per word)."""
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    space = _IS_SPACE[raw]
    if not space.any():
        return text
    keep = ~space
    keep[1:] |= ~space[:-1]  # the first whitespace character of each run stays
    out = np.where(space, np.uint8(32), raw)[keep]
    return out.tobytes().decode("ascii").strip(" ")


def normalize(text: str) -> str:
    """Canonical form used for provenance lookups.

    Percent-decoding (repeated), HTML entity decoding, Unicode NFKC, lower case,
    removal of invisible format characters, typographic quotes and CJK brackets written as
    ASCII, and whitespace collapsed to one space.

    Lower case is the per-character mapping (a capital sigma is always a small sigma), not
    ``str.casefold``: case folding maps sharp s to ``ss`` and final sigma to sigma, which
    IDNA 2008 keeps apart (``straße.de`` and ``strasse.de`` are two domains), so a value the
    user never gave would be grounded in one the user gave.
    """
    if text.isascii() and "%" not in text and "&" not in text:
        return _collapse_ascii(text.lower()) if len(text) >= _LONG else " ".join(text.lower().split())
    out = _normalize_once(text)
    # NFKC can write a new escape ("%ª0" becomes "%a0", a full-width ampersand becomes "&"): normalise again until
    # nothing changes (a few rounds), so that a normal form is its own normal form.
    for _ in range(3):
        if "%" not in out and "&" not in out:
            break
        again = _normalize_once(out)
        if again == out:
            break
        out = again
    return out


def _normalize_once(text: str) -> str:
    text = percent_decode(text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = _DIGIT_SPACE.sub("'", text)
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text)
        text = unicodedata.normalize("NFKC", _lower(text)).translate(_PUNCT)
    else:
        text = text.lower()
    return " ".join(text.split())


def number_forms(value: int | float) -> tuple[str, ...]:
    """The ways a number is commonly written: ``4.0`` may appear as ``4``, ``4.0`` or ``4.00``, and
    ``1250.0`` as ``1,250`` or ``1,250.00`` too."""
    whole = isinstance(value, float) and value.is_integer() and abs(value) < 1e16
    forms = [str(int(value)) if whole else str(value)]
    if isinstance(value, float) and math.isfinite(value):
        forms += [repr(value), f"{value:.2f}"]
    if abs(value) >= 1000 and (not isinstance(value, float) or math.isfinite(value)):
        # Written with thousands separators ("1,250.00"): one token, the whole number.
        forms += [f"{int(value):,}"] if whole or isinstance(value, int) else []
        forms += [f"{value:,.2f}"] if isinstance(value, float) else []
    return tuple(dict.fromkeys(forms))


def contains_word(text: str, word: str, *, number: bool = False) -> bool:
    """``word`` occurs in ``text`` with no letter or digit right before or after it.

    With ``number=True`` the word must be a whole written number: a decimal point or a
    digit-group separator between digits (``, . ' _``) is no boundary and a minus sign
    belongs to the number after it, so ``4`` is not found in ``4.0``, ``250`` is found
    neither in ``1,250`` nor in ``-250``, and ``1`` not in ``1,250``.
    """
    escaped = re.escape(word)
    pattern = rf"(?<![\w.\-])(?<!\d[,'_]){escaped}(?![\w]|[.,'_]\d)" if number else rf"(?<![\w]){escaped}(?![\w])"
    return re.search(pattern, text) is not None
