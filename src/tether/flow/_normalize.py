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


def normalize(text: str) -> str:
    """Canonical form used for provenance lookups.

    Percent-decoding (repeated), HTML entity decoding, Unicode NFKC, case folding,
    removal of invisible format characters, typographic quotes and CJK brackets written as
    ASCII, and whitespace collapsed to one space.
    """
    if text.isascii() and "%" not in text and "&" not in text:
        return " ".join(text.lower().split())
    text = percent_decode(text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text)
        text = unicodedata.normalize("NFKC", text.casefold()).translate(_PUNCT)
    else:
        text = text.lower()
    return " ".join(text.split())


def number_forms(value: int | float) -> tuple[str, ...]:
    """The ways a number is commonly written: ``4.0`` may appear as ``4``, ``4.0`` or ``4.00``."""
    forms = [str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e16 else str(value)]
    if isinstance(value, float) and math.isfinite(value):
        forms += [repr(value), f"{value:.2f}"]
    return tuple(dict.fromkeys(forms))


def contains_word(text: str, word: str, *, number: bool = False) -> bool:
    """``word`` occurs in ``text`` with no letter or digit right before or after it.

    With ``number=True`` a decimal point does not count as a boundary either, so
    ``4`` is not found in ``4.0`` and ``0`` is not found in ``4.0``.
    """
    pattern = rf"(?<![\w.]){re.escape(word)}(?![\w]|\.\d)" if number else rf"(?<![\w]){re.escape(word)}(?![\w])"
    return re.search(pattern, text) is not None
