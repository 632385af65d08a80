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
64-bit slot per piece (a 56-bit key of the gram and an 8-bit label id), doubled
when half full up to ``ceil(1.25 * max_entries)`` slots (at most 80% full at the limit), so the exact tier
never holds more than ``10 * max_entries`` bytes (64 MB at the default 6,400,000). A
gram of ASCII characters is keyed by a bijection of its 8 bytes, any other by mixing its
code points (:mod:`tether.flow._hashing`); two pieces that share a key can only make an
output *more* tainted.
Past ``max_entries``, a value's pieces go into a fixed-size Bloom filter of
``overflow_bits`` bits instead, and every later output containing a piece that the
filter may have seen gets the join of every overflowed label: a false positive only
taints more. When the filter is half full it is *saturated* and that join goes into
every later output. Nothing is ever forgotten silently.

**Staged, folded in bulk.** A value remembered is staged (:mod:`tether.flow._staging`) and folded
into the table with the others once the stage is full, at a snapshot, or when a counter is read:
one numpy pass per label over every staged value (one value at a time, in arrival order, when a
limit could be reached, so that spilling is decided per value as before). An output is checked
against the table and the staged values alike, so a fold changes no label, but past the exact
limit (a spilled piece then brings the overflow's join, which is higher). Fold points depend only
on the values remembered, so a resumed session folds, and labels, as the original did.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tether.flow._gram_table import SLOT_BYTES, Bloom, GramTable, check_layout, table_slots
from tether.flow._hashing import EMPTY, RUN, U64, piece_key, piece_keys
from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import normalize
from tether.flow._staging import (
    SMALL_TEXT,
    Staged,
    grams_of,
    keys_meeting,
    keys_of_values,
    short_in,
    small_cores,
    word_in,
    word_key,
    words_of,
)
from tether.flow._tokens import token_cores

__all__ = ["MIN_WORD", "RUN", "SLOT_BYTES", "TaintMemory", "table_slots"]

MIN_WORD = 3
"""Shorter values are not traced (they occur everywhere); values under ``RUN`` match as whole words."""
_CHUNK = 1 << 20
_OVERLAP = 64
_LABEL_IDS = 255  # label ids 1..255 (0 marks an empty slot); later labels are joined into id 255
# Values remembered lately (at most _RECENT of at most _RECENT_CHARS characters: a few tens of KB),
# skipped when sent again with the same or a lower label: agents resend the same values.
_RECENT = 128
_RECENT_CHARS = 256
SNAPSHOT_FORMAT = 3
_FEW_SHORT = 64  # short values searched one by one in a large output (more: looked up by its words)


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=7, person=b"word").digest(), "big")


def _chunks(text: str) -> Iterator[str]:
    if len(text) <= _CHUNK:
        yield text
        return
    for start in range(0, len(text), _CHUNK - _OVERLAP):
        yield text[start : start + _CHUNK]
        if start + _CHUNK >= len(text):
            return


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, dtype: Any) -> Any:
    return np.frombuffer(base64.b64decode(str(text)), dtype=dtype)


class TaintMemory:
    """Normalised pieces of values the session put into the world, with their labels."""

    __slots__ = (
        "_bloom",
        "_label_ids",
        "_labels",
        "_max_entries",
        "_max_words",
        "_overflow",
        "_overflow_bits",
        "_recent",
        "_saturated_at",
        "_staged",
        "_table",
        "_top",
        "_word_count",
        "_words",
        "work",
    )

    def __init__(self, max_entries: int = 6_400_000, overflow_bits: int = 1 << 20, max_words: int = 65_536) -> None:
        if overflow_bits < 1024 or overflow_bits & (overflow_bits - 1):
            raise ValueError(f"overflow_bits must be a power of two of at least 1024, got {overflow_bits}")
        if max_entries < 0 or max_words < 0:
            raise ValueError(f"max_entries and max_words must not be negative, got {max_entries}, {max_words}")
        self._max_entries = max_entries
        self._max_words = max_words
        self._overflow_bits = overflow_bits
        self._table: GramTable | None = None
        self._labels: list[Label] = [TRUSTED]  # index = label id; id 0 is "empty"
        self._label_ids: dict[Label, int] = {}
        self._words: dict[str, dict[str, int]] = {}
        """Short values by their key (:func:`word_key`), each with its label id: a dict per key, so
        remembering a value costs the same however many values share its key (``q 1``, ``q 2``...)."""
        self._word_count = 0
        self._top = TRUSTED
        self._bloom: Bloom | None = None
        self._overflow: Label = TRUSTED
        self._saturated_at: int | None = None
        self._staged = Staged()
        self._recent: dict[tuple[str, bool], Label] = {}
        self.work = 0
        """Characters of values folded in so far (monotonic; see :attr:`tether.flow.FlowTracker.work`)."""

    @property
    def entries(self) -> int:
        """Pieces held exactly (grams and words)."""
        self._fold()
        return self._entries()

    def _entries(self) -> int:
        return (self._table.count if self._table is not None else 0) + self._word_count

    @property
    def overflow(self) -> Label:
        """Join of the labels of every value that did not fit (``TRUSTED`` when none)."""
        self._fold()
        return self._overflow

    @property
    def saturated_at(self) -> int | None:
        """Exact pieces held when the overflow filter saturated (``None`` while it has not)."""
        self._fold()
        return self._saturated_at

    @property
    def saturated(self) -> bool:
        """Whether the overflow filter is saturated (its label goes into every later output)."""
        self._fold()
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
        """Remember a normalised value sent out with ``label`` (``word=True``: match it as a whole word only).

        The value is staged and folded in with others once the stage is full (module docstring)."""
        if label == TRUSTED or len(norm) < MIN_WORD:
            return
        if len(norm) <= _RECENT_CHARS:
            key = (norm, word)
            seen = self._recent.get(key)
            if seen is not None and label <= seen:
                return  # every piece is held with this label or a higher one (pieces are never dropped)
            if len(self._recent) >= _RECENT:
                self._recent.clear()
            self._recent[key] = label if seen is None else seen.join(label)
        if self._staged.add(norm, label, word):
            self._fold()

    def _fold(self) -> None:
        """Fold the staged values in: one pass per label over all of them when no limit can be
        reached, else one value at a time in arrival order (so that spilling is decided per value)."""
        values = self._staged.values
        if not values:
            return
        self._staged = Staged()
        self.work += sum(len(norm) for norm, _, _ in values)
        pieces = sum(1 if word or len(norm) < RUN else len(norm) - RUN + 1 for norm, _, word in values)
        words = sum(1 for norm, _, word in values if word or len(norm) < RUN)
        if self._entries() + pieces > self._max_entries or self._word_count + words > self._max_words:
            for norm, label, word in values:
                if word or len(norm) < RUN:
                    self._remember_word(norm, label)
                else:
                    self._remember_grams(piece_keys(norm), label)
            return
        by_label: dict[Label, int] = {}
        grams: list[str] = []
        group: list[int] = []
        for norm, label, word in values:
            if word or len(norm) < RUN:
                self._remember_word(norm, label)
            else:
                grams.append(norm)
                group.append(by_label.setdefault(label, len(by_label)))
        if not grams:
            return
        keys, which = keys_of_values(grams)
        of_key = np.asarray(group, dtype=np.int64)[which]
        for label, g in by_label.items():
            self._remember_grams(keys if len(by_label) == 1 else keys[of_key == g], label)

    def _remember_grams(self, keys: U64, label: Label) -> None:
        if self._entries() + keys.size > self._max_entries:
            keys = np.sort(keys)  # near the limit: count the distinct pieces exactly
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        table = self._table
        labels = self._labels
        if table is not None:
            old = table.get(keys)
            # Per label id: does the stored label already cover this one? (id 0: nothing stored)
            covered = np.array([False] + [label <= lab for lab in labels[1:]], dtype=bool)
            fresh = ~covered[old]
            if not fresh.any():
                return
            keys, old = keys[fresh], old[fresh]
            new_keys = int(np.count_nonzero(old == 0))
        else:
            old = np.zeros(keys.size, dtype=np.uint8)
            new_keys = int(keys.size)
        if self._entries() + new_keys > self._max_entries:
            self._spill(keys, label)
            return
        if table is None:
            table = self._table = GramTable(table_slots(self._max_entries))
        to_id = np.zeros(_LABEL_IDS + 1, dtype=np.uint8)
        for old_id in np.flatnonzero(np.bincount(old, minlength=_LABEL_IDS + 1)).tolist():
            to_id[old_id] = self._intern(label) if not old_id else self._intern(labels[old_id].join(label))
        table.put(keys, to_id[old])
        self._top = self._top.join(label)

    def _remember_word(self, norm: str, label: Label) -> None:
        key = word_key(norm)
        if key is None:
            return  # no letter or digit: carries nothing a policy could check
        entries = self._words.get(key)
        old_id = None if entries is None else entries.get(norm)
        if entries is not None and old_id is not None:
            old = self._labels[old_id]
            if not label <= old:
                entries[norm] = self._intern(old.join(label))
                self._top = self._top.join(label)
            return
        if self._entries() + 1 > self._max_entries or self._word_count + 1 > self._max_words:
            self._spill(EMPTY, label, key)
            return
        self._words.setdefault(key, {})[norm] = self._intern(label)
        self._word_count += 1
        self._top = self._top.join(label)

    def _spill(self, keys: U64, label: Label, word: str | None = None) -> None:
        if self._bloom is None:
            self._bloom = Bloom(self._overflow_bits)
        if word is not None:
            keys = np.append(keys, np.uint64(_word_hash(word)))
        self._bloom.add(keys)
        self._overflow = self._overflow.join(label)
        if self._saturated_at is None and self._bloom.saturated:
            self._saturated_at = self._entries()

    # ------------------------------------------------------------------ tainting

    def taint(self, base: Label, text: str, echoes: Iterable[tuple[str, Label, bool]] = (), *, normalized: bool = False) -> Label:
        """``base`` joined with the label of every remembered (or echoed) value ``text`` carries.

        ``echoes`` are extra (normalised value, label, word) triples: the current call's own
        arguments. Staged values are checked as they are, so reading never folds (module docstring).
        ``normalized=True``: ``text`` is already normalised."""
        staged = self._staged
        echo_grams: list[tuple[str, Label]] = []
        echo_words: list[tuple[str, Label]] = []
        for norm, lab, word in echoes:
            if lab <= base or len(norm) < MIN_WORD:
                continue
            if word or len(norm) < RUN:
                if word_key(norm) is not None:
                    echo_words.append((norm, lab))
            else:
                echo_grams.append((norm, lab))
        use_memory = not self._top <= base
        use_staged = not staged.top <= base
        bloom = self._bloom if self._bloom is not None and not self._overflow <= base else None
        result = base
        if bloom is not None and bloom.saturated:
            result = result.join(self._overflow)
            bloom = None
        if not (use_memory or use_staged or bloom is not None or echo_grams or echo_words):
            return result
        short = bool(echo_words or (use_staged and staged.words) or (use_memory and self._words))
        norm_text = text if normalized else normalize(text)
        if len(norm_text) <= SMALL_TEXT:
            return self._taint_small(result, norm_text, echo_grams, echo_words, short, use_memory, use_staged, bloom)
        table = self._table if use_memory else None
        for chunk in _chunks(norm_text):
            groups = [(piece_keys(norm), lab) for norm, lab in echo_grams if not lab <= result]
            if use_staged:
                groups += [(keys_, lab) for keys_, lab in staged.key_groups() if not lab <= result]
            probe = table is not None and not self._top <= result
            keys = piece_keys(chunk) if probe or groups or bloom is not None else EMPTY
            if probe and table is not None and keys.size:
                found = np.bincount(table.get(keys), minlength=_LABEL_IDS + 1)
                for label_id in np.flatnonzero(found[1:]).tolist():
                    result = result.join(self._labels[label_id + 1])
            for lab in keys_meeting(keys, groups):
                result = result.join(lab)
            few = self._few_short(echo_words, use_memory, use_staged) if short and bloom is None else None
            if few is not None:
                # A few short values: each searched in the text (C-level), no word set of a large text.
                for value, lab in few:
                    if not lab <= result and short_in(chunk, value):
                        result = result.join(lab)
            elif short or bloom is not None:
                cores = token_cores(chunk)
                result = self._short_hits(result, chunk, cores, echo_words, use_memory, use_staged, keys, bloom)
        return result

    def _few_short(self, echo_words: list[tuple[str, Label]], use_memory: bool, use_staged: bool) -> list[tuple[str, Label]] | None:
        """Every short value an output is checked for, when there are at most ``_FEW_SHORT`` (else None)."""
        staged = self._staged.words if use_staged else {}
        count = len(echo_words) + sum(map(len, staged.values())) + (self._word_count if use_memory else 0)
        if count > _FEW_SHORT:
            return None
        few = [*echo_words, *(entry for entries in staged.values() for entry in entries)]
        if use_memory:
            few += [(value, self._labels[label_id]) for entries in self._words.values() for value, label_id in entries.items()]
        return few

    def _taint_small(
        self,
        result: Label,
        text: str,
        echo_grams: list[tuple[str, Label]],
        echo_words: list[tuple[str, Label]],
        short: bool,
        use_memory: bool,
        use_staged: bool,
        bloom: Bloom | None,
    ) -> Label:
        """:meth:`taint` for a short output, in plain Python: its grams as a set of strings."""
        grams = grams_of(text)
        keys: list[int] = []
        if grams and (bloom is not None or (use_memory and self._table is not None)):
            keys = [piece_key(gram) for gram in grams]
        if use_memory and self._table is not None and keys and not self._top <= result:
            for label_id in self._table.get_few(keys):
                result = result.join(self._labels[label_id])
        if use_staged:
            for lab, staged_grams in self._staged.grams.items():
                if not lab <= result and not grams.isdisjoint(staged_grams):
                    result = result.join(lab)
        for norm, lab in echo_grams:
            # Whichever side has fewer grams is searched in the other (substring search is C-level).
            if not lab <= result and (any(g in norm for g in grams) if len(grams) <= 64 else not grams.isdisjoint(grams_of(norm))):
                result = result.join(lab)
        if short or bloom is not None:
            cores = small_cores(text)
            result = self._short_hits(result, text, cores, echo_words, use_memory, use_staged, np.array(keys, dtype=np.uint64), bloom)
        return result

    def _short_hits(
        self,
        result: Label,
        text: str,
        cores: set[str],
        echo_words: list[tuple[str, Label]],
        use_memory: bool,
        use_staged: bool,
        keys: U64,
        bloom: Bloom | None,
    ) -> Label:
        """``result`` joined with the labels of the short values (remembered, staged, echoed) ``text``
        carries, and with the overflow label when the filter may have seen one of its pieces."""
        # A short value is looked up (grounded) as a token core, so a token core equal to it taints;
        # a whole word equal to it does too (``4850`` in ``4850.00``). Values are found by the
        # words of the text (their first word is their key), never by scanning the memory.
        words = words_of(text, cores)
        if use_memory and self._words:
            labels = self._labels
            for key in filter(self._words.__contains__, words):
                for value, label_id in self._words[key].items():
                    if not labels[label_id] <= result and word_in(value, text, cores):
                        result = result.join(labels[label_id])
        staged = self._staged.words if use_staged else {}
        for key in filter(staged.__contains__, words):
            for value, lab in staged[key]:
                if not lab <= result and word_in(value, text, cores):
                    result = result.join(lab)
        for value, lab in echo_words:
            if not lab <= result and word_key(value) in words and word_in(value, text, cores):
                result = result.join(lab)
        if bloom is not None and not self._overflow <= result:
            word_keys = np.array([_word_hash(w) for w in words], dtype=np.uint64)
            if bloom.any_of(word_keys) or bloom.any_of(keys):
                result = result.join(self._overflow)
        return result

    def memory_bytes(self) -> int:
        """Approximate bytes held (exact pieces, staged values, the overflow filter); bounded by the limits."""
        size = self._table.slots.nbytes + self._table.filter.nbytes if self._table is not None else 0
        size += sys.getsizeof(self._words) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._words.items())
        size += sum(sys.getsizeof(value) + 64 for entries in self._words.values() for value in entries)
        size += sum(sys.getsizeof(k[0]) + 120 for k in self._recent) + sum(sys.getsizeof(v[0]) + 64 for v in self._staged.values)
        return size + (self._bloom.bits.nbytes if self._bloom is not None else 0)

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        """The memory as JSON-able data (exact pieces, the overflow filter and its label).

        The gram table is saved as it lies: a bitmap of the used slots and their contents, so a
        restore places nothing again. The staged values are folded in first (a session takes its
        snapshots at points its events determine, so a resumed session folds where the original did);
        the recently remembered values are saved, so a resumed session stages what the original did."""
        self._fold()
        out: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "max_entries": self._max_entries,
            "max_words": self._max_words,
            "overflow_bits": self._overflow_bits,
            "labels": [lab.to_json() for lab in self._labels[1:]],
            "words": [[value, label_id] for entries in self._words.values() for value, label_id in entries.items()],
            "overflow": self._overflow.to_json(),
            "saturated_at": self._saturated_at,
            "work": self.work,
            "recent": [[norm, word, lab.to_json()] for (norm, word), lab in self._recent.items()],
        }
        table = self._table
        if table is not None:
            used = table.slots != 0
            out["grams"] = {
                "slots": int(table.slots.size),
                "count": table.count,
                "used": _b64(np.packbits(used).tobytes()),
                "data": _b64(table.slots[used].astype("<u8").tobytes()),
            }
        if self._bloom is not None:
            out["bloom"] = _b64(self._bloom.bits.tobytes())
            out["bloom_set"] = self._bloom.set_bits
        return out

    def digest(self) -> dict[str, Any]:
        """A comparable picture of what the memory holds, not of where its table holds it: a table
        filled in other batches (a live session folds when its stage fills, a resumed one may fold
        earlier) places the same pieces in other slots, and answers every lookup the same."""
        out = {k: v for k, v in self.to_snapshot().items() if k not in ("work", "grams")}
        table = self._table
        if table is not None:
            held = np.sort(table.slots[table.slots != 0])
            out["grams"] = {"slots": int(table.slots.size), "count": table.count, "held": hashlib.sha256(held.tobytes()).hexdigest()}
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> TaintMemory:
        """Rebuild a memory from :meth:`to_snapshot`; it taints every output as the original did."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported taint snapshot format {data.get('format')!r}")
        memory = cls(int(data["max_entries"]), int(data["overflow_bits"]), int(data["max_words"]))
        memory._labels += [Label.from_json(x) for x in data["labels"]]
        if len(memory._labels) > _LABEL_IDS + 1:
            raise ValueError("snapshot has too many taint labels")
        for label_id, lab in enumerate(memory._labels[1:], 1):
            memory._label_ids.setdefault(lab, label_id)
        ids = range(1, len(memory._labels))
        if "grams" in data:
            memory._table = _restore_table(data["grams"], memory._max_entries, len(ids))
            for label_id in check_layout(memory._table.slots, memory._table.count).tolist():
                memory._top = memory._top.join(memory._labels[label_id])
        used: set[int] = set()
        for value, label_id in data["words"]:
            key = word_key(str(value))
            if key is None:
                raise ValueError(f"snapshot word {value!r} has no word characters")
            if label_id not in ids:
                raise ValueError(f"snapshot word {value!r} refers to an unknown label")
            held = memory._words.setdefault(key, {})
            if str(value) in held:
                raise ValueError(f"snapshot word {value!r} is listed twice")
            held[str(value)] = int(label_id)
            memory._word_count += 1
            used.add(int(label_id))
        for label_id in sorted(used):  # each label once, not once per word
            memory._top = memory._top.join(memory._labels[label_id])
        memory._overflow = Label.from_json(data["overflow"])
        saturated_at = data.get("saturated_at")
        memory._saturated_at = None if saturated_at is None else int(saturated_at)
        memory.work = int(data["work"])
        for norm, word, lab in data["recent"]:
            memory._recent[(str(norm), bool(word))] = Label.from_json(lab)
        if len(memory._recent) > _RECENT:
            raise ValueError("snapshot has too many recent values")
        if "bloom" in data:
            bloom = Bloom(memory._overflow_bits)
            raw = _unb64(data["bloom"], np.uint8)
            if raw.size != bloom.bits.size:
                raise ValueError("snapshot overflow filter has the wrong size")
            bloom.bits[:] = raw
            bloom.set_bits = int(np.bitwise_count(bloom.bits).sum(dtype=np.int64))
            memory._bloom = bloom
        return memory


def _restore_table(grams: dict[str, Any], max_entries: int, label_count: int) -> GramTable:
    size = int(grams["slots"])
    count = int(grams["count"])
    max_slots = table_slots(max_entries)
    if not count < size <= max_slots or count > max_entries:
        raise ValueError("snapshot gram table is inconsistent with its size or limits")
    used = np.unpackbits(_unb64(grams["used"], np.uint8), count=size).astype(bool)
    values = _unb64(grams["data"], "<u8").astype(np.uint64)
    if used.size != size or int(used.sum()) != values.size or not bool((values != 0).all()):
        raise ValueError("snapshot gram table is inconsistent with its size")
    label_ids = values & np.uint64(0xFF)
    if values.size and (int(label_ids.max()) > label_count or int(label_ids.min()) < 1):
        raise ValueError("snapshot gram table refers to an unknown label")
    slots = np.zeros(size, dtype=np.uint64)
    slots[used] = values
    return GramTable(max_slots, slots, count)
