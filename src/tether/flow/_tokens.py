"""Whole-token matching: when does a value *occur* in a text?

Grounding looks an argument value up in the texts the session has read. A plain
substring search would let an attacker pick a different identifier that happens
to be a piece of a trusted one: ``bob@partner-firm.co`` inside ``bob@partner-firm.com``,
``firm.com`` inside ``partner-firm.com``, an IBAN prefix inside the IBAN. So an
occurrence counts only when it is a whole token sequence, bounded at both ends.

The rule, on normalised text (see :func:`tether.flow.normalize`):

* **Delimiters** separate tokens: the space and ``" ' ` < > ( ) [ ] { } , ; |``.
* **Edge punctuation** ``. : ! ? * # = - _ / \\`` may end or start a token without
  being part of the value: ``bob@x.com.`` at the end of a sentence still contains
  ``bob@x.com``, and ``--bob@x.com`` does too.
* **Numbers are written whole.** A digit-group separator between two digits
  (``,`` ``.`` ``'`` ``_``; a thin or no-break space between digits is normalised to ``'``)
  is not a token boundary, and a minus sign right before a digit belongs to the number:
  ``1,250.00`` is one token and neither ``1`` nor ``250.00`` occurs in it, and ``-250.00``
  is the token core ``-250.00``, in which ``250.00`` does not occur. A number therefore
  matches only a whole written number, never a digit group or a magnitude of one.
* An occurrence of a value at ``[start, end)`` is *bounded* when, on the left, it
  starts the text, follows a delimiter, begins with a delimiter, or follows a run of
  edge punctuation that itself follows a delimiter or the start of the text; and on
  the right, symmetrically, it ends the text, precedes a delimiter, ends with a
  delimiter, or precedes a run of edge punctuation followed by a delimiter or the
  end; in both cases the two characters around the edge must not be inside one written
  number (the rule above). Anything else (a letter, a digit, ``@``, a non-ASCII character, a control
  character, or edge punctuation that continues into more token) means the
  occurrence is only a piece of a longer token, and it does not count.

The token map of the provenance index stores each token with its edge punctuation
stripped, except a minus sign before a digit (its *core*); a value without delimiters or edge punctuation occurs bounded
exactly where it equals a core, so the map and the substring search agree.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

DELIMITERS = " \"'`<>()[]{},;|"
"""Characters that separate tokens in normalised text."""
EDGE_PUNCT = ".:!?*#=-_/\\"
"""Punctuation that may lead or trail a token without being part of the value."""

DIGIT_GROUP_SEPARATORS = ",.'_"
"""Characters that group the digits of one written number (``1,250.00``, ``1'250``, ``1_250``)."""

_DELIM_BYTES = frozenset(DELIMITERS.encode("ascii"))
_EDGE_BYTES = frozenset(EDGE_PUNCT.encode("ascii"))
_GROUP_BYTES = frozenset(DIGIT_GROUP_SEPARATORS.encode("ascii"))
_DIGIT_BYTES = frozenset(b"0123456789")
_MINUS = ord("-")
_DIGITS = "0123456789"
_RUN = "[^" + re.escape(DELIMITERS) + "]+"
_JOINING_DELIMITERS = "".join(c for c in DIGIT_GROUP_SEPARATORS if c in DELIMITERS)
TOKEN_SPLIT = re.compile(_RUN + "(?:(?<=[0-9])[" + re.escape(_JOINING_DELIMITERS) + "](?=[0-9])" + _RUN + ")*")
"""A raw token: a run of non-delimiters, where a separator between two digits does not split."""


def core_of(raw: str) -> str:
    """The core of a raw token: edge punctuation stripped, except a minus sign right before a digit."""
    core = raw.strip(EDGE_PUNCT)
    if core and core[0] in _DIGITS:
        start = len(raw) - len(raw.lstrip(EDGE_PUNCT))
        if start > 0 and raw[start - 1] == "-":
            return "-" + core
    return core


def _table(chars: str) -> npt.NDArray[np.bool_]:
    table = np.zeros(256, dtype=bool)
    table[list(chars.encode("ascii"))] = True
    return table


_IS_DELIM = _table(DELIMITERS)
_IS_EDGE = _table(EDGE_PUNCT)
_IS_DIGIT = _table(_DIGITS)
_IS_JOINING = _table(_JOINING_DELIMITERS)
_SPACE = np.uint8(ord(" "))


def _delims_and_stripped(raw: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_] | None]:
    """Per byte: is it a delimiter (a joining one between two digits is not), and is it edge
    punctuation stripped from a core (``None`` when the text holds no edge punctuation)."""
    n = raw.size
    delim = _IS_DELIM[raw]
    digit = _IS_DIGIT[raw]
    joining = _IS_JOINING[raw]
    if n > 2 and joining.any():
        delim[1:-1] &= ~(joining[1:-1] & digit[:-2] & digit[2:])
    edge = _IS_EDGE[raw]
    if not edge.any():
        return delim, None
    # Runs of edge punctuation: a run is stripped when it starts the text or follows a delimiter
    # (leading), or ends the text or precedes one (trailing); no per-position scan is needed.
    bounds = np.flatnonzero(np.diff(np.concatenate(([False], edge, [False])).view(np.int8)))
    starts, ends = bounds[0::2], bounds[1::2]
    leading = (starts == 0) | delim[np.maximum(starts - 1, 0)]
    trailing = (ends == n) | delim[np.minimum(ends, n - 1)]
    chosen = leading | trailing
    marks = np.zeros(n + 1, dtype=np.int8)
    marks[starts[chosen]] = 1
    marks[ends[chosen]] -= 1
    stripped = np.cumsum(marks[:n], dtype=np.int8).view(bool)
    # A minus sign right before a digit belongs to the number, never stripped as leading (it ends its
    # run, and the digit after it is no delimiter, so its run is not trailing either).
    stripped[:-1] &= ~((raw[:-1] == _MINUS) & digit[1:])
    return delim, stripped


def core_mask(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Per byte of a normalised text's UTF-8: whether it belongs to a token core (each maximal run
    of such bytes is one core, see :func:`token_cores`)."""
    if not raw.size:
        return np.zeros(0, dtype=bool)
    delim, stripped = _delims_and_stripped(raw)
    return ~delim if stripped is None else ~(delim | stripped)


def token_cores(norm: str) -> set[str]:
    """The distinct token cores of a normalised text (see :func:`core_of`).

    Computed on the UTF-8 bytes in vectorised steps, then one C-level split (the bytes of a
    non-ASCII character are never delimiters or punctuation): delimiters, except a joining one
    between two digits, become spaces; edge punctuation is dropped where it leads a token (but a
    minus sign right before a digit) or trails one. Normalised text holds no whitespace but the
    space, so the split yields exactly the cores."""
    raw = np.frombuffer(norm.encode("utf-8"), dtype=np.uint8)
    if not raw.size:
        return set()
    delim, stripped = _delims_and_stripped(raw)
    out = np.where(delim, _SPACE, raw)
    if stripped is not None:
        out = out[~stripped]
    return set(out.tobytes().decode("utf-8").split())


def is_core(value: str) -> bool:
    """Whether ``value`` (normalised) is a single token core: no delimiters (but digit-group separators
    between digits), no edge punctuation at its ends (but a minus sign before a digit)."""
    if not value or value[-1] in EDGE_PUNCT or TOKEN_SPLIT.fullmatch(value) is None:
        return False
    return value[0] not in EDGE_PUNCT or (value[0] == "-" and len(value) > 1 and value[1] in _DIGITS)


def in_one_number(text: bytes, pos: int) -> bool:
    """Whether the bytes at ``pos - 1`` and ``pos`` belong to one written number (no boundary between them):
    a digit-group separator between two digits, or a minus sign and the digit it signs."""
    if pos <= 0 or pos >= len(text):
        return False
    before, after = text[pos - 1], text[pos]
    if after in _DIGIT_BYTES:
        if before == _MINUS:
            return True
        return before in _GROUP_BYTES and pos >= 2 and text[pos - 2] in _DIGIT_BYTES
    return before in _DIGIT_BYTES and after in _GROUP_BYTES and pos + 1 < len(text) and text[pos + 1] in _DIGIT_BYTES


def starts_token(text: bytes, start: int) -> bool:
    """Whether an occurrence beginning at byte ``start`` of ``text`` is bounded on the left."""
    if start == 0:
        return True
    if in_one_number(text, start):
        return False
    prev = text[start - 1]
    if prev in _DELIM_BYTES or text[start] in _DELIM_BYTES:
        return True
    if prev not in _EDGE_BYTES:
        return False
    i = start - 1
    while i >= 0 and text[i] in _EDGE_BYTES:
        i -= 1
    return i < 0 or text[i] in _DELIM_BYTES


def ends_token(text: bytes, end: int) -> bool:
    """Whether an occurrence ending before byte ``end`` of ``text`` is bounded on the right."""
    n = len(text)
    if end >= n:
        return True
    if in_one_number(text, end):
        return False
    nxt = text[end]
    if nxt in _DELIM_BYTES or text[end - 1] in _DELIM_BYTES:
        return True
    if nxt not in _EDGE_BYTES:
        return False
    i = end
    while i < n and text[i] in _EDGE_BYTES:
        i += 1
    return i == n or text[i] in _DELIM_BYTES


def bounded_at(text: bytes, start: int, length: int) -> bool:
    """Whether the occurrence ``text[start:start+length]`` is bounded at both ends."""
    return starts_token(text, start) and ends_token(text, start + length)


def find_bounded(text: bytes, value: bytes, limit: int = 1 << 62) -> int:
    """Position of the first bounded occurrence of ``value`` in ``text``, or -1.

    Checks at most ``limit`` raw occurrences; returns -2 when that bound stopped the search.
    """
    pos = text.find(value)
    checked = 0
    while pos >= 0:
        if bounded_at(text, pos, len(value)):
            return pos
        checked += 1
        if checked >= limit:
            return -2
        pos = text.find(value, pos + 1)
    return -1


def occurs_in(norm_text: str, norm_value: str) -> bool:
    """Whether the normalised value occurs in the normalised text as a whole token sequence."""
    if not norm_value:
        return False
    return find_bounded(norm_text.encode("utf-8"), norm_value.encode("utf-8")) >= 0
