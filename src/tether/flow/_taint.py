"""Taint of tool outputs: what the session put into the world keeps its label.

An output can carry data the session itself sent out earlier: a standing order's
subject the agent wrote, a note it saved, a search query a tool echoes, an error
message quoting an argument. Left alone, an attacker's IBAN written into a
subject and read back through a trusted tool would come back "found in trusted
data", and a secret saved to the user's notes would lose its tag.

**The rule.** Every argument value of every executed call whose label is above
``TRUSTED`` is remembered with that label (``remember``); so are the current
call's own arguments for its own output (echoes). An output whose policy label
is below a remembered value's label gets that label joined in when it contains
a *substantial piece* of the value, after normalisation of both sides:

* a value of ``RUN`` characters or more: **any common run of ``RUN`` characters**.
  Appending a character, escaping one (JSON ``\\u0001``, HTML, percent), truncating
  the value, embedding it in longer text, changing its case or Unicode form all
  leave such a run, so the read-back is tainted;
* a shorter value of ``MIN_WORD`` characters or more, and a number in each of its
  written forms (``number_forms``), when it occurs as a whole word or as a token core
  (the form in which a short value is grounded: ``_XQ7_`` grounds ``xq7``).

The residual, documented in docs/architecture.md: a value split into pieces shorter
than ``RUN`` characters (or short values under ``MIN_WORD``) is not traced. Flow
rules on the destination (``require: trusted``) then still apply to the
reassembled value, which is found nowhere and takes the context label.

**Bounded, failing closed.** Remembered pieces are kept exactly up to
``max_entries`` (one entry per distinct ``RUN``-character gram or short word).
Past that, a value's pieces go into a fixed-size Bloom filter of ``overflow_bits``
bits instead, and every later output containing a piece that the filter may have
seen gets the join of every overflowed label: a false positive only taints more.
When a tenth of its bits are set it is *saturated* and that join goes into every
later output. Nothing is ever forgotten silently. With the defaults (131,072 exact
pieces, 8 Mbit) saturation comes after about 350,000 distinct pieces, roughly
350 KB of distinct text sent out after reading untrusted data.
"""

from __future__ import annotations

import base64
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import contains_word, normalize
from tether.flow._tokens import token_cores

RUN = 8
"""Common run (normalised characters) that carries a long value into an output."""
MIN_WORD = 3
"""Shorter values are not traced (they occur everywhere); values under ``RUN`` match as whole words."""
_CHUNK = 1 << 20
_OVERLAP = 64
_WORD = re.compile(r"\w+")
_SEED2 = 0x9E3779B9


def _grams(text: str) -> Iterator[str]:
    """Every ``RUN``-character substring of ``text`` (C-level iteration)."""
    n = len(text)
    return map(text.__getitem__, map(slice, range(n - RUN + 1), range(RUN, n + 1)))


def _chunks(text: str) -> Iterator[str]:
    if len(text) <= _CHUNK:
        yield text
        return
    for start in range(0, len(text), _CHUNK - _OVERLAP):
        yield text[start : start + _CHUNK]
        if start + _CHUNK >= len(text):
            return


def _word_key(value: str) -> str | None:
    match = _WORD.search(value)
    return match.group() if match else None


class _Bloom:
    """A fixed-size Bloom filter over strings (CRC-32 double hashing, so the same in every process).

    An output is probed once per ``RUN``-character gram, so the filter is only useful while a
    single probe rarely errs: with ``HASHES`` bits per item and a fraction ``f`` of bits set, a
    probe errs with probability ``f ** HASHES``. Past ``SATURATION`` the filter counts as full and
    its label goes into every output (1e-4 per probe at 10%: about one output in ten of 1 KB).
    """

    HASHES = 4
    SATURATION = 0.10

    __slots__ = ("bits", "mask", "set_bits")

    def __init__(self, nbits: int) -> None:
        self.bits = bytearray(nbits // 8)
        self.mask = nbits - 1
        self.set_bits = 0

    def _positions(self, item: str) -> list[int]:
        data = item.encode("utf-8")
        h1, h2 = zlib.crc32(data), zlib.crc32(data, _SEED2) | 1
        mask = self.mask
        return [(h1 + i * h2) & mask for i in range(self.HASHES)]

    def add(self, item: str) -> None:
        bits = self.bits
        for pos in self._positions(item):
            byte, bit = pos >> 3, 1 << (pos & 7)
            if not bits[byte] & bit:
                bits[byte] |= bit
                self.set_bits += 1

    def __contains__(self, item: str) -> bool:
        bits = self.bits
        return all(bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(item))

    @property
    def saturated(self) -> bool:
        """Too many bits are set for a probe to mean anything: treat everything as a hit."""
        return self.set_bits > self.SATURATION * (self.mask + 1)


class TaintMemory:
    """Normalised pieces of values the session put into the world, with their labels."""

    __slots__ = ("_bloom", "_grams", "_max_entries", "_overflow_bits", "_top", "_word_count", "_words", "overflow")

    def __init__(self, max_entries: int = 131_072, overflow_bits: int = 1 << 23) -> None:
        if overflow_bits < 1024 or overflow_bits & (overflow_bits - 1):
            raise ValueError(f"overflow_bits must be a power of two of at least 1024, got {overflow_bits}")
        self._max_entries = max_entries
        self._overflow_bits = overflow_bits
        self._grams: dict[str, Label] = {}
        self._words: dict[str, list[tuple[str, Label]]] = {}
        self._word_count = 0
        self._top = TRUSTED
        self._bloom: _Bloom | None = None
        self.overflow: Label = TRUSTED
        """Join of the labels of every value that did not fit (``TRUSTED`` when none)."""

    @property
    def saturated(self) -> bool:
        """Whether the overflow filter is full: every later output gets the ``overflow`` label."""
        return self._bloom is not None and self._bloom.saturated

    @property
    def entries(self) -> int:
        """Pieces held exactly (grams and words)."""
        return len(self._grams) + self._word_count

    # ------------------------------------------------------------------ remembering

    def remember(self, norm: str, label: Label, *, word: bool = False) -> None:
        """Remember a normalised value sent out with ``label`` (``word=True``: match it as a whole word only)."""
        if label == TRUSTED or len(norm) < MIN_WORD:
            return
        if word or len(norm) < RUN:
            self._remember_word(norm, label)
            return
        grams = self._grams
        # In text order (not a set's): the memory's layout must be the same in every process.
        get = grams.get
        fresh = [g for g in dict.fromkeys(_grams(norm)) if (old := get(g)) is not label and (old is None or not label <= old)]
        if not fresh:
            return
        new_keys = sum(1 for g in fresh if g not in grams)
        if self.entries + new_keys > self._max_entries:
            self._spill(fresh, label)
            return
        for g in fresh:
            old = grams.get(g)
            grams[g] = label if old is None else old.join(label)
        self._top = self._top.join(label)

    def _remember_word(self, norm: str, label: Label) -> None:
        key = _word_key(norm)
        if key is None:
            return  # no letter or digit: carries nothing a policy could check
        entries = self._words.get(key)
        if entries is not None:
            for i, (value, old) in enumerate(entries):
                if value == norm:
                    if not label <= old:
                        entries[i] = (value, old.join(label))
                        self._top = self._top.join(label)
                    return
        if self.entries + 1 > self._max_entries:
            self._spill((), label, key)
            return
        self._words.setdefault(key, []).append((norm, label))
        self._word_count += 1
        self._top = self._top.join(label)

    def _spill(self, grams: Iterable[str], label: Label, word: str | None = None) -> None:
        if self._bloom is None:
            self._bloom = _Bloom(self._overflow_bits)
        for g in grams:
            self._bloom.add(g)
        if word is not None:
            self._bloom.add("\x00" + word)
        self.overflow = self.overflow.join(label)

    # ------------------------------------------------------------------ tainting

    def taint(self, base: Label, text: str, echoes: Iterable[tuple[str, Label, bool]] = ()) -> Label:
        """``base`` joined with the label of every remembered (or echoed) value ``text`` carries.

        ``echoes`` are extra (normalised value, label, word) triples: the current call's own arguments.
        """
        result = base
        bloom = self._bloom if self._bloom is not None and not self.overflow <= base else None
        if bloom is not None and bloom.saturated:
            result = result.join(self.overflow)
            bloom = None
        echo_grams: dict[str, Label] = {}
        echo_words: dict[str, list[tuple[str, Label]]] = {}
        for norm, lab, word in echoes:
            if lab <= result or len(norm) < MIN_WORD:
                continue
            if word or len(norm) < RUN:
                key = _word_key(norm)
                if key is not None:
                    echo_words.setdefault(key, []).append((norm, lab))
            else:
                for g in _grams(norm):
                    old = echo_grams.get(g)
                    echo_grams[g] = lab if old is None else old.join(lab)
        use_memory = not self._top <= result
        if not (use_memory or bloom is not None or echo_grams or echo_words):
            return result
        norm_text = normalize(text)
        gram_maps = [m for m in ((self._grams if use_memory else None), echo_grams) if m]
        word_maps = [m for m in ((self._words if use_memory else None), echo_words) if m]
        for chunk in _chunks(norm_text):
            for grams_map in gram_maps:
                for g in filter(grams_map.__contains__, _grams(chunk)):
                    lab = grams_map[g]
                    if not lab <= result:
                        result = result.join(lab)
            if word_maps or bloom is not None:
                # A short value is looked up (grounded) as a token core, so a token core equal to it
                # taints; a whole word equal to it does too (``4850`` in ``4850.00``).
                cores = token_cores(chunk)
                words = cores.union(_WORD.findall(chunk))
                for words_map in word_maps:
                    for key in filter(words_map.__contains__, words):
                        for value, lab in words_map[key]:
                            if not lab <= result and (value in cores or contains_word(chunk, value)):
                                result = result.join(lab)
                if (
                    bloom is not None
                    and not self.overflow <= result
                    and (any(("\x00" + w) in bloom for w in words) or any(g in bloom for g in _grams(chunk)))
                ):
                    result = result.join(self.overflow)
        return result

    def memory_bytes(self) -> int:
        """Approximate bytes held (exact pieces and the overflow filter); bounded by the limits."""
        size = sys.getsizeof(self._grams) + sum(map(sys.getsizeof, self._grams))
        size += sys.getsizeof(self._words) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._words.items())
        size += sum(sys.getsizeof(value) for entries in self._words.values() for value, _ in entries)
        return size + (len(self._bloom.bits) if self._bloom is not None else 0)

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        """The memory as JSON-able data (exact pieces, the overflow filter and its label)."""
        labels: dict[Label, int] = {}

        def ref(lab: Label) -> int:
            return labels.setdefault(lab, len(labels))

        grams = [[g, ref(lab)] for g, lab in self._grams.items()]
        words = [[value, ref(lab)] for entries in self._words.values() for value, lab in entries]
        out: dict[str, Any] = {
            "max_entries": self._max_entries,
            "overflow_bits": self._overflow_bits,
            "labels": [lab.to_json() for lab in labels],
            "grams": grams,
            "words": words,
            "overflow": self.overflow.to_json(),
        }
        if self._bloom is not None:
            out["bloom"] = base64.b64encode(bytes(self._bloom.bits)).decode("ascii")
            out["bloom_set"] = self._bloom.set_bits
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> TaintMemory:
        """Rebuild a memory from :meth:`to_snapshot`; it taints every output as the original did."""
        memory = cls(int(data["max_entries"]), int(data["overflow_bits"]))
        labels = [Label.from_json(x) for x in data["labels"]]
        for g, i in data["grams"]:
            memory._grams[str(g)] = labels[i]
            memory._top = memory._top.join(labels[i])
        for value, i in data["words"]:
            key = _word_key(str(value))
            if key is None:
                raise ValueError(f"snapshot word {value!r} has no word characters")
            memory._words.setdefault(key, []).append((str(value), labels[i]))
            memory._word_count += 1
            memory._top = memory._top.join(labels[i])
        memory.overflow = Label.from_json(data["overflow"])
        if "bloom" in data:
            bloom = _Bloom(memory._overflow_bits)
            raw = base64.b64decode(data["bloom"])
            if len(raw) != len(bloom.bits):
                raise ValueError("snapshot overflow filter has the wrong size")
            bloom.bits[:] = raw
            bloom.set_bits = int(data["bloom_set"])
            memory._bloom = bloom
        return memory
