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
``max_entries`` (one entry per distinct ``RUN``-character gram or short word; short
words also at most ``max_words``). Grams live in a compact open-addressing table: one
64-bit slot per piece (56 bits of a hash of the gram and an 8-bit label id), doubled
when half full up to ``ceil(1.25 * max_entries)`` slots (at most 80% full at the limit), so the exact tier
never holds more than ``10 * max_entries`` bytes (64 MB at the default 6,400,000). A
gram of ASCII characters is hashed by a bijection of its 8 bytes, any other through
BLAKE2b; two pieces that share a slot hash can only make an output *more* tainted.
Past ``max_entries``, a value's pieces go into a fixed-size Bloom filter of
``overflow_bits`` bits instead, and every later output containing a piece that the
filter may have seen gets the join of every overflowed label: a false positive only
taints more. When the filter is half full it is *saturated* and that join goes into
every later output. Nothing is ever forgotten silently.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import contains_word, normalize
from tether.flow._tokens import token_cores

RUN = 8
"""Common run (normalised characters) that carries a long value into an output."""
MIN_WORD = 3
"""Shorter values are not traced (they occur everywhere); values under ``RUN`` match as whole words."""
SLOT_BYTES = 8
"""Bytes per slot of the exact gram table."""
_CHUNK = 1 << 20
_OVERLAP = 64
_WORD = re.compile(r"\w+")
_MASK64 = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection on 64-bit keys
_MIX2 = 0xC2B2AE3D27D4EB4F
_HASHED = 1 << 63  # set on hashed (non-ASCII) gram keys; an ASCII gram's key never has it
_MIN_SLOTS = 1024
_LABEL_IDS = 255  # label ids 1..255 (0 marks an empty slot); later labels are joined into id 255


def _grams(text: str) -> Iterator[str]:
    """Every ``RUN``-character substring of ``text`` (C-level iteration)."""
    n = len(text)
    return map(text.__getitem__, map(slice, range(n - RUN + 1), range(RUN, n + 1)))


def _gram_key(gram: str) -> int:
    data = gram.encode("utf-8")
    if len(data) == RUN:  # all ASCII: the bytes themselves, as in gram_hashes' fast path
        return int.from_bytes(data, "big")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") | _HASHED


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8, person=b"word").digest(), "big")


def gram_hashes(text: str) -> Iterator[int]:
    """A 64-bit hash of every ``RUN``-character gram of ``text``, in text order (the same in every process).

    A gram of ASCII characters is read as a 64-bit number and multiplied by an odd constant (a
    bijection: distinct ASCII grams never share a hash); any other gram is hashed with BLAKE2b.
    """
    if text.isascii():
        data = text.encode("ascii")
        n = len(data)
        pieces = map(data.__getitem__, map(slice, range(n - RUN + 1), range(RUN, n + 1)))
        keys: Iterator[int] = map(int.from_bytes, pieces)
    else:
        keys = map(_gram_key, _grams(text))
    return map(_MASK64.__and__, map(_MIX.__mul__, keys))


def _distinct_gram_hashes(text: str) -> list[int]:
    """The hashes of ``text``'s distinct grams, in no particular order (grams deduplicated before hashing)."""
    if text.isascii():
        data = text.encode("ascii")
        n = len(data)
        keys: Iterable[int] = map(int.from_bytes, set(map(data.__getitem__, map(slice, range(n - RUN + 1), range(RUN, n + 1)))))
    else:
        keys = map(_gram_key, set(_grams(text)))
    return list(map(_MASK64.__and__, map(_MIX.__mul__, keys)))


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


def table_slots(max_entries: int) -> int:
    """Slots of a full gram table for ``max_entries`` pieces (at most 80% of them used)."""
    return -(-max_entries * 5 // 4) + 1 if max_entries > 0 else 0


class _GramTable:
    """An open-addressing (linear probing) hash table of gram hashes with a label id each.

    One ``array('Q')``: a slot holds the top 56 bits of a gram's hash and, in its low 8 bits, a
    label id (0: empty). It doubles when half full, up to ``max_slots`` (which keeps it at most
    80% full at the entry limit). The home slot of a hash is ``(hash >> 32) * size >> 32``, so the table
    can grow (any size) by re-placing the slots it holds; the layout depends only on the order of
    insertion, hence is the same in every process.
    """

    __slots__ = ("count", "max_slots", "slots")

    def __init__(self, max_slots: int, slots: array[int] | None = None, count: int = 0) -> None:
        self.max_slots = max_slots
        self.slots = slots if slots is not None else array("Q", bytes(SLOT_BYTES * min(max_slots, _MIN_SLOTS)))
        self.count = count

    def get(self, h: int) -> int:
        """The label id stored for hash ``h`` (0 when none)."""
        slots = self.slots
        size = len(slots)
        want = h >> 8
        i = ((h >> 32) * size) >> 32
        while True:
            v = slots[i]
            if not v:
                return 0
            if v >> 8 == want:
                return v & 0xFF
            i += 1
            if i == size:
                i = 0

    def found_ids(self, hashes: Iterable[int]) -> set[int]:
        """Label ids of every hash in ``hashes`` that the table holds."""
        slots = self.slots
        size = len(slots)
        found: set[int] = set()
        for h in hashes:
            want = h >> 8
            i = ((h >> 32) * size) >> 32
            while True:
                v = slots[i]
                if not v:
                    break
                if v >> 8 == want:
                    found.add(v & 0xFF)
                    break
                i += 1
                if i == size:
                    i = 0
        return found

    def put(self, h: int, label_id: int) -> None:
        """Store (or overwrite) hash ``h`` with ``label_id``; the caller keeps within ``max_slots``."""
        # Half full: double (short probe runs); only the largest table, capped, fills up to 80%.
        if (self.count + 1) * 2 > len(self.slots) and len(self.slots) < self.max_slots:
            self._resize(min(self.max_slots, 2 * len(self.slots)))
        slots = self.slots
        size = len(slots)
        want = h >> 8
        i = ((h >> 32) * size) >> 32
        while True:
            v = slots[i]
            if not v:
                self.count += 1
                break
            if v >> 8 == want:
                break
            i += 1
            if i == size:
                i = 0
        slots[i] = (want << 8) | label_id

    def _resize(self, size: int) -> None:
        new = array("Q", bytes(SLOT_BYTES * size))
        for v in filter(None, self.slots):
            i = ((v >> 32) * size) >> 32
            while new[i]:
                i = i + 1 if i + 1 < size else 0
            new[i] = v
        self.slots = new


class _Bloom:
    """A fixed-size Bloom filter over 64-bit piece hashes (two positions per piece)."""

    __slots__ = ("bits", "nbits", "set_bits")

    def __init__(self, nbits: int) -> None:
        self.bits = bytearray(nbits // 8)
        self.nbits = nbits
        self.set_bits = 0

    def _positions(self, h: int) -> tuple[int, int]:
        n = self.nbits
        return ((h >> 32) * n) >> 32, ((((h * _MIX2) & _MASK64) >> 32) * n) >> 32

    def add(self, h: int) -> None:
        bits = self.bits
        for pos in self._positions(h):
            byte, bit = pos >> 3, 1 << (pos & 7)
            if not bits[byte] & bit:
                bits[byte] |= bit
                self.set_bits += 1

    def __contains__(self, h: int) -> bool:
        bits = self.bits
        return all(bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(h))

    @property
    def saturated(self) -> bool:
        """More than half the bits are set: treat everything as a hit."""
        return self.set_bits * 2 > self.nbits


def _check_layout(slots: array[int], count: int) -> set[int]:
    """The label ids a restored table uses; raises unless every piece is found from its home slot
    (no empty slot between its home and where it lies) and ``count`` pieces are held: a table
    changed outside this module must not lose pieces silently."""
    size = len(slots)
    empties = [i for i, v in enumerate(slots) if not v]
    if size - len(empties) != count or not empties:
        raise ValueError("snapshot gram table holds a different number of pieces than it says")
    last_empty_overall = empties[-1]
    last_empty = -1
    used: set[int] = set()
    for i, v in enumerate(slots):
        if not v:
            last_empty = i
            continue
        home = ((v >> 32) * size) >> 32
        reachable = last_empty < home if home <= i else last_empty == -1 and last_empty_overall < home
        if not reachable:
            raise ValueError("snapshot gram table has a piece that lookups cannot reach")
        used.add(v & 0xFF)
    return used


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


class TaintMemory:
    """Normalised pieces of values the session put into the world, with their labels."""

    __slots__ = (
        "_bloom",
        "_label_ids",
        "_labels",
        "_max_entries",
        "_max_words",
        "_overflow_bits",
        "_table",
        "_top",
        "_word_count",
        "_words",
        "overflow",
        "saturated_at",
    )

    def __init__(self, max_entries: int = 6_400_000, overflow_bits: int = 1 << 20, max_words: int = 65_536) -> None:
        if overflow_bits < 1024 or overflow_bits & (overflow_bits - 1):
            raise ValueError(f"overflow_bits must be a power of two of at least 1024, got {overflow_bits}")
        if max_entries < 0 or max_words < 0:
            raise ValueError(f"max_entries and max_words must not be negative, got {max_entries}, {max_words}")
        self._max_entries = max_entries
        self._max_words = max_words
        self._overflow_bits = overflow_bits
        self._table: _GramTable | None = None
        self._labels: list[Label] = [TRUSTED]  # index = label id; id 0 is "empty"
        self._label_ids: dict[Label, int] = {}
        self._words: dict[str, list[tuple[str, int]]] = {}
        self._word_count = 0
        self._top = TRUSTED
        self._bloom: _Bloom | None = None
        self.overflow: Label = TRUSTED
        """Join of the labels of every value that did not fit (``TRUSTED`` when none)."""
        self.saturated_at: int | None = None
        """Exact pieces held when the overflow filter saturated (``None`` while it has not)."""

    @property
    def entries(self) -> int:
        """Pieces held exactly (grams and words)."""
        return (self._table.count if self._table is not None else 0) + self._word_count

    @property
    def saturated(self) -> bool:
        """Whether the overflow filter is saturated (its label goes into every later output)."""
        return self._bloom is not None and self._bloom.saturated

    def _intern(self, label: Label) -> int:
        known = self._label_ids.get(label)
        if known is not None:
            return known
        if len(self._labels) <= _LABEL_IDS:
            self._labels.append(label)
            self._label_ids[label] = len(self._labels) - 1
            return len(self._labels) - 1
        # Out of ids: the last id stands for the join of every later label (only over-taints).
        self._labels[_LABEL_IDS] = self._labels[_LABEL_IDS].join(label)
        self._label_ids[label] = _LABEL_IDS
        return _LABEL_IDS

    # ------------------------------------------------------------------ remembering

    def remember(self, norm: str, label: Label, *, word: bool = False) -> None:
        """Remember a normalised value sent out with ``label`` (``word=True``: match it as a whole word only)."""
        if label == TRUSTED or len(norm) < MIN_WORD:
            return
        if word or len(norm) < RUN:
            self._remember_word(norm, label)
            return
        # In text order (not a set's): the memory's layout must be the same in every process.
        hashes = list(dict.fromkeys(gram_hashes(norm)))
        table = self._table
        labels = self._labels
        fresh: list[tuple[int, int]] = []
        new_keys = 0
        for h in hashes:
            old = table.get(h) if table is not None else 0
            if old and label <= labels[old]:
                continue
            fresh.append((h, old))
            new_keys += not old
        if not fresh:
            return
        if self.entries + new_keys > self._max_entries:
            self._spill([h for h, _ in fresh], label)
            return
        if table is None:
            table = self._table = _GramTable(table_slots(self._max_entries))
        label_id = self._intern(label)
        for h, old in fresh:
            table.put(h, label_id if not old else self._intern(labels[old].join(label)))
        self._top = self._top.join(label)

    def _remember_word(self, norm: str, label: Label) -> None:
        key = _word_key(norm)
        if key is None:
            return  # no letter or digit: carries nothing a policy could check
        entries = self._words.get(key)
        if entries is not None:
            for i, (value, old_id) in enumerate(entries):
                if value == norm:
                    old = self._labels[old_id]
                    if not label <= old:
                        entries[i] = (value, self._intern(old.join(label)))
                        self._top = self._top.join(label)
                    return
        if self.entries + 1 > self._max_entries or self._word_count + 1 > self._max_words:
            self._spill((), label, key)
            return
        self._words.setdefault(key, []).append((norm, self._intern(label)))
        self._word_count += 1
        self._top = self._top.join(label)

    def _spill(self, hashes: Iterable[int], label: Label, word: str | None = None) -> None:
        if self._bloom is None:
            self._bloom = _Bloom(self._overflow_bits)
        for h in hashes:
            self._bloom.add(h)
        if word is not None:
            self._bloom.add(_word_hash(word))
        self.overflow = self.overflow.join(label)
        if self.saturated_at is None and self._bloom.saturated:
            self.saturated_at = self.entries

    # ------------------------------------------------------------------ tainting

    def taint(self, base: Label, text: str, echoes: Iterable[tuple[str, Label, bool]] = ()) -> Label:
        """``base`` joined with the label of every remembered (or echoed) value ``text`` carries.

        ``echoes`` are extra (normalised value, label, word) triples: the current call's own arguments.
        """
        echo_grams: dict[str, Label] = {}
        echo_words: dict[str, list[tuple[str, Label]]] = {}
        for norm, lab, word in echoes:
            if lab <= base or len(norm) < MIN_WORD:
                continue
            if word or len(norm) < RUN:
                key = _word_key(norm)
                if key is not None:
                    echo_words.setdefault(key, []).append((norm, lab))
            else:
                for g in _grams(norm):
                    old = echo_grams.get(g)
                    echo_grams[g] = lab if old is None else old.join(lab)
        use_memory = not self._top <= base
        bloom = self._bloom if self._bloom is not None and not self.overflow <= base else None
        result = base
        if bloom is not None and bloom.saturated:
            result = result.join(self.overflow)
            bloom = None
        if not (use_memory or bloom is not None or echo_grams or echo_words):
            return result
        labels = self._labels
        table = self._table if use_memory else None
        words_memory = self._words if use_memory and self._words else None
        norm_text = normalize(text)
        for chunk in _chunks(norm_text):
            hashes = _distinct_gram_hashes(chunk) if table is not None or bloom is not None else []
            if table is not None:
                # In batches, so a text that already carries everything remembered stops early.
                for start in range(0, len(hashes), 128):
                    if self._top <= result:
                        break
                    for label_id in table.found_ids(hashes[start : start + 128]):
                        result = result.join(labels[label_id])
            if echo_grams:
                for g in filter(echo_grams.__contains__, _grams(chunk)):
                    lab = echo_grams[g]
                    if not lab <= result:
                        result = result.join(lab)
            if words_memory is not None or echo_words or bloom is not None:
                # A short value is looked up (grounded) as a token core, so a token core equal to it
                # taints; a whole word equal to it does too (``4850`` in ``4850.00``).
                cores = token_cores(chunk)
                words = cores.union(_WORD.findall(chunk))
                if words_memory is not None:
                    for key in filter(words_memory.__contains__, words):
                        for value, label_id in words_memory[key]:
                            lab = labels[label_id]
                            if not lab <= result and (value in cores or contains_word(chunk, value)):
                                result = result.join(lab)
                for key in filter(echo_words.__contains__, words):
                    for value, lab in echo_words[key]:
                        if not lab <= result and (value in cores or contains_word(chunk, value)):
                            result = result.join(lab)
                if (
                    bloom is not None
                    and not self.overflow <= result
                    and (any(_word_hash(w) in bloom for w in words) or any(h in bloom for h in hashes))
                ):
                    result = result.join(self.overflow)
        return result

    def memory_bytes(self) -> int:
        """Approximate bytes held (exact pieces and the overflow filter); bounded by the limits."""
        size = len(self._table.slots) * SLOT_BYTES if self._table is not None else 0
        size += sys.getsizeof(self._words) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._words.items())
        size += sum(sys.getsizeof(value) + 64 for entries in self._words.values() for value, _ in entries)
        return size + (len(self._bloom.bits) if self._bloom is not None else 0)

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        """The memory as JSON-able data (exact pieces, the overflow filter and its label)."""
        out: dict[str, Any] = {
            "max_entries": self._max_entries,
            "max_words": self._max_words,
            "overflow_bits": self._overflow_bits,
            "labels": [lab.to_json() for lab in self._labels[1:]],
            "words": [[value, label_id] for entries in self._words.values() for value, label_id in entries],
            "overflow": self.overflow.to_json(),
            "saturated_at": self.saturated_at,
        }
        table = self._table
        if table is not None:
            slots = array("Q", table.slots)
            if sys.byteorder == "big":
                slots.byteswap()
            out["grams"] = {"slots": len(slots), "count": table.count, "data": _pack(slots.tobytes())}
        if self._bloom is not None:
            out["bloom"] = base64.b64encode(bytes(self._bloom.bits)).decode("ascii")
            out["bloom_set"] = self._bloom.set_bits
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> TaintMemory:
        """Rebuild a memory from :meth:`to_snapshot`; it taints every output as the original did."""
        memory = cls(int(data["max_entries"]), int(data["overflow_bits"]), int(data.get("max_words", 65_536)))
        memory._labels += [Label.from_json(x) for x in data["labels"]]
        if len(memory._labels) > _LABEL_IDS + 1:
            raise ValueError("snapshot has too many taint labels")
        for label_id, lab in enumerate(memory._labels[1:], 1):
            memory._label_ids.setdefault(lab, label_id)
        ids = range(1, len(memory._labels))
        if "grams" in data:
            grams = data["grams"]
            slots = array("Q")
            slots.frombytes(_unpack(str(grams["data"])))
            if sys.byteorder == "big":
                slots.byteswap()
            count = int(grams["count"])
            max_slots = table_slots(memory._max_entries)
            if len(slots) != int(grams["slots"]) or not count < len(slots) <= max_slots or count > memory._max_entries:
                raise ValueError("snapshot gram table is inconsistent with its size or limits")
            used = _check_layout(slots, count)
            if not used <= set(ids):
                raise ValueError("snapshot gram table refers to an unknown label")
            memory._table = _GramTable(max_slots, slots, count)
            for label_id in used:
                memory._top = memory._top.join(memory._labels[label_id])
        for value, label_id in data["words"]:
            key = _word_key(str(value))
            if key is None:
                raise ValueError(f"snapshot word {value!r} has no word characters")
            if label_id not in ids:
                raise ValueError(f"snapshot word {value!r} refers to an unknown label")
            memory._words.setdefault(key, []).append((str(value), int(label_id)))
            memory._word_count += 1
            memory._top = memory._top.join(memory._labels[label_id])
        memory.overflow = Label.from_json(data["overflow"])
        saturated_at = data.get("saturated_at")
        memory.saturated_at = None if saturated_at is None else int(saturated_at)
        if "bloom" in data:
            bloom = _Bloom(memory._overflow_bits)
            raw = base64.b64decode(data["bloom"])
            if len(raw) != len(bloom.bits):
                raise ValueError("snapshot overflow filter has the wrong size")
            bloom.bits[:] = raw
            bloom.set_bits = int(data["bloom_set"])
            memory._bloom = bloom
        return memory
