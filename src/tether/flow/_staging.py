"""Values sent out but not yet folded into the taint memory's table, searchable as they are.

A fold into the numpy table costs a few tens of numpy calls whatever its size, far more than a
20-word value's own work, so values are *staged* and folded in bulk. When a fold happens depends
only on the sequence of values remembered (at most ``MAX_STAGED`` values or ``MAX_STAGED_CHARS``
characters are staged), never on reads: an output is checked against the table *and* the staged
values, so a session that labels outputs in between folds at the same points, and builds the
same table, as one that replays its events without labelling anything.

Staged values are kept in two forms: their ``RUN``-character grams as Python strings per label
(small outputs are checked with set operations, no numpy call), and, built when a large output
needs them, their 56-bit piece keys per label (:func:`keys_meeting`).

The helpers at the end are shared by the staged values and the current call's echoed arguments:
both are small sets of (value, label) checked against one output.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from tether.flow._hashing import RUN, U64, piece_keys
from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import contains_word
from tether.flow._tokens import TOKEN_SPLIT, core_of, find_bounded, is_core, token_cores

MAX_STAGED = 256
"""Values staged before the memory folds them in."""
MAX_STAGED_CHARS = 16_384
"""Characters staged before the memory folds them in (a longer value is folded at once)."""
SMALL_TEXT = 512
"""Outputs of up to this many normalised characters are checked in plain Python."""

_WORD = re.compile(r"\w+")
_FEW_OCCURRENCES = 64  # occurrences of a short value checked one by one (more: the text's cores are built)
_FILTER_SHIFT = np.uint64(36)  # 56-bit keys -> 20-bit filter index
_FILTER_SIZE = 1 << 20


def word_key(value: str) -> str | None:
    """The first run of word characters of a short value (its bucket in the word memory)."""
    match = _WORD.search(value)
    return match.group() if match else None


def grams_of(text: str) -> set[str]:
    """The distinct ``RUN``-character grams of ``text``."""
    return {text[i : i + RUN] for i in range(len(text) - RUN + 1)}


def words_of(text: str, cores: set[str]) -> set[str]:
    """The keys under which a short value the text carries is found: the text's token cores, its runs
    of word characters, and those of its cores (a core's first run is not always a run of the text:
    ``_ab.cd`` has the core ``ab.cd``, whose key ``ab`` the text only holds as ``_ab``)."""
    return cores.union(_WORD.findall(text), _WORD.findall(" ".join(cores)))


def short_in(text: str, value: str) -> bool:
    """Whether ``text`` carries the short value: as a token core (a single core occurs bounded exactly
    where a token's core equals it) or as a whole word. The same answer as looking its key up in
    :func:`words_of` and then :func:`word_in`, without building the text's word set: the value's
    occurrences are found by C-level search and, when there are few, checked one by one."""
    if value not in text:
        return False
    if text.count(value) > _FEW_OCCURRENCES:
        return word_in(value, text, token_cores(text))
    if is_core(value) and find_bounded(text.encode("utf-8"), value.encode("utf-8")) >= 0:
        return True
    # contains_word: no word character (as the regex ``\w`` has it) right before or after.
    pos = text.find(value)
    end = len(value)
    while pos >= 0:
        before = text[pos - 1] if pos else ""
        after = text[pos + end : pos + end + 1]
        if not _is_word_char(before) and not _is_word_char(after):
            return True
        pos = text.find(value, pos + 1)
    return False


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def small_cores(text: str) -> set[str]:
    """:func:`tether.flow._tokens.token_cores` in plain Python (small texts: no numpy call)."""
    return {core for core in map(core_of, TOKEN_SPLIT.findall(text)) if core}


def word_in(value: str, text: str, cores: set[str]) -> bool:
    """Whether a short value occurs in ``text`` as a token core or as a whole word."""
    return value in cores or contains_word(text, value)


def keys_meeting(out_keys: U64, groups: list[tuple[U64, Label]]) -> list[Label]:
    """The labels of the groups whose keys occur among ``out_keys`` (a large output's).

    A filter of the groups' keys picks the few candidates among ``out_keys`` first, so a 1 MB
    output costs one gather, not a sort or a binary search per key."""
    if not groups or not out_keys.size:
        return []
    filt = np.zeros(_FILTER_SIZE, dtype=bool)
    for keys, _ in groups:
        filt[(keys >> _FILTER_SHIFT).astype(np.int64)] = True
    cand = out_keys[filt[(out_keys >> _FILTER_SHIFT).astype(np.int64)]]
    if not cand.size:
        return []
    cand = np.sort(cand)
    out: list[Label] = []
    for keys, lab in groups:
        if keys.size:
            at = np.minimum(np.searchsorted(cand, keys), cand.size - 1)
            if bool((cand[at] == keys).any()):
                out.append(lab)
    return out


class Staged:
    """The staged values (module docstring), in arrival order."""

    __slots__ = ("_grams", "_keys", "_seen", "chars", "top", "values", "words")

    def __init__(self) -> None:
        self.values: list[tuple[str, Label, bool]] = []
        """(normalised value, label, whole word only), in arrival order."""
        self.chars = 0
        self.top = TRUSTED
        """Join of the staged labels."""
        self._grams: dict[Label, set[str]] = {}
        self._seen = 0  # values whose grams are in _grams
        self.words: dict[str, list[tuple[str, Label]]] = {}
        self._keys: list[tuple[U64, Label]] | None = None

    def add(self, norm: str, label: Label, word: bool) -> bool:
        """Stage a value; True when the stage is full (the caller folds it in now)."""
        self.values.append((norm, label, word))
        self.chars += len(norm)
        self.top = self.top.join(label)
        self._keys = None
        if word or len(norm) < RUN:
            key = word_key(norm)
            if key is not None:
                self.words.setdefault(key, []).append((norm, label))
        return len(self.values) >= MAX_STAGED or self.chars >= MAX_STAGED_CHARS

    @property
    def grams(self) -> dict[Label, set[str]]:
        """The staged grams as strings, per label; built when an output is first checked against
        them, so that remembering a value (on the path that lets a call run) only appends it."""
        for norm, label, word in self.values[self._seen :]:
            if not (word or len(norm) < RUN):
                self._grams.setdefault(label, set()).update(grams_of(norm))
        self._seen = len(self.values)
        return self._grams

    def key_groups(self) -> list[tuple[U64, Label]]:
        """The staged grams' piece keys, one array per label (for large outputs)."""
        if self._keys is None:
            by_label: dict[Label, list[str]] = {}
            for norm, label, word in self.values:
                if not (word or len(norm) < RUN):
                    by_label.setdefault(label, []).append(norm)
            self._keys = [(keys_of_values(values)[0], label) for label, values in by_label.items()]
        return self._keys


def keys_of_values(values: list[str]) -> tuple[U64, npt.NDArray[np.int64]]:
    """The piece keys of every value (each of ``RUN`` characters or more) in one :func:`piece_keys`
    call over their concatenation, with the index of the value each key came from (grams
    straddling two values are dropped)."""
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    counts = np.maximum(lengths - RUN + 1, 0)
    keys = piece_keys("".join(values))
    if len(values) == 1:
        return keys, np.zeros(keys.size, dtype=np.int64)
    which = np.repeat(np.arange(len(values), dtype=np.int64), counts)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    at = offsets[which] + np.arange(which.size, dtype=np.int64) - firsts[which]
    return keys[at], which
