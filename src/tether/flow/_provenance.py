"""The provenance index: where could a value in a tool call have come from?

Every text a session has seen (the trusted task, policy constants, each tool
output) is added as a *source* with its label and the id of the event that
recorded it. ``lookup(value)`` finds the sources in which the normalised value
occurs as a whole token sequence (see :mod:`tether.flow._tokens`) and combines
their labels:

* if a **pinned** trusted source (the task, a policy constant: the user's own
  words) contains it, the value has that source's label (trusted, no tags): the
  user named the value, so no other copy of it can make it secret or untrusted;
* otherwise, if any other **trusted** source contains it, the value is trusted
  with the *join* (union) of those sources' tags: for a short secret (a PIN, a
  password) the value *is* the secret, so an untagged trusted text that happens to
  hold the same token ("room 4821") must not declassify it;
* otherwise it is untrusted, with the *join* of the tags of the untrusted
  sources: attacker-writable data can neither vouch for a value nor declassify it
  (an email listing every 4-digit number does not make a PIN public).

A value found nowhere was produced by the model and gets the session's context
label (the caller, :class:`tether.flow.FlowTracker`, decides that).

**Bounded memory.** *Pinned* sources (the task and the policy constants) are kept
for the whole session. Other sources are kept while they fit in ``max_chars``
bytes of normalised text: they are grouped into four *epochs* of ``max_chars / 4``
bytes, and when the total passes the limit the oldest epoch is forgotten at once.
A source longer than an epoch is indexed up to that length only. Forgetting can
only make an answer stricter:

* a value now found nowhere takes the context label, the join of *every* source
  the session ever read (forgotten ones included), which is at least the label
  any set of sources would have given it;
* a value found in a pinned source gets the same label as before (pinned
  sources are never forgotten);
* a value found in other trusted sources gets the join of their tags, and since
  a forgotten trusted source could have added tags, the tags of every forgotten
  source (``evicted``) are joined in as well (it stays trusted: a live trusted
  source holds it);
* a value found only in untrusted sources gets the join of their labels, and
  since a forgotten source could have added tags, the join of every forgotten
  source's label (``evicted``) is joined in as well.

The index holds exactly what its live sources determine (nothing depends on what
was forgotten beyond ``evicted``), so a snapshot of the live sources restores an
index that answers every lookup as the original did.

Layout (lookup cost depends on the value's length, never on the history):

* **sampled grams** for values of ``MIN_GRAM_VALUE`` bytes or more: every
  ``K``-byte substring of a source's UTF-8 text starting at a multiple of ``STEP``
  is hashed (:func:`tether.flow._hashing.sample_hashes`, in bulk and the same in every process) into one of a
  fixed number of buckets of 64-bit entries (source, position, 8 check bits), kept as chains in flat
  arrays (:mod:`tether.flow._gram_index`). Any occurrence of a value of ``K + STEP - 1`` bytes or more
  covers a sampled gram in each alignment; for each of the ``STEP`` alignments the
  smallest bucket among the value's grams is scanned and its candidates verified
  in place (bytes compare plus the whole-token test).
* **tokens**: per epoch, a map from a normalised token core to its combined label
  and one source; a large source's cores go instead to the epoch's sorted core array
  (:mod:`tether.flow._core_array`: hashes found in vectorised steps, every candidate
  verified against the text). This answers values shorter than ``MIN_GRAM_VALUE``, and is a fast
  path for a whole-token value found in trusted data. A short value that is not a
  single token core is reported as not found, the conservative answer.
* up to ``SCAN_LIMIT`` bytes of live text, sources are searched directly (exact,
  and cheaper than building the gram index); past it the gram index is built.

A lookup scans at most ``MAX_SCAN`` bucket entries per alignment and verifies at
most ``MAX_VERIFY`` candidates. Hitting either bound makes the answer partial
unless a pinned source was found (nothing can change that answer): a missed source
could have added tags (or integrity, when only untrusted sources were found), so
the result says ``complete=False`` and the caller joins in the context label (its
tags only, for a trusted answer).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import orjson

from tether.flow import _token_map
from tether.flow._core_array import CoreArray
from tether.flow._gram_index import GramChains, sampled_grams
from tether.flow._hashing import STEP, K, sample_hash
from tether.flow._labels import TRUSTED, Label, label
from tether.flow._matches import NOT_FOUND, Hits, Match, combine
from tether.flow._normalize import normalize
from tether.flow._token_map import TOKEN_SRC_BITS, TOKEN_SRC_MASK
from tether.flow._tokens import TOKEN_SPLIT, bounded_at, core_of, find_bounded, is_core, token_cores

MIN_GRAM_VALUE = K + STEP - 1
"""Shortest normalised value looked up through grams; shorter ones use tokens."""
SCAN_LIMIT = 64 * 1024
"""Up to this many bytes of live text, values are searched in the sources directly."""
MAX_TOKEN = 256
"""Longest token core kept in the token maps."""
MAX_SCAN = 1024
"""Most bucket entries examined per alignment by one lookup."""
MAX_VERIFY = 24
"""Most candidate positions verified by one lookup (older sources first: the task is source 0)."""
MAX_ANCHORS = 8
"""Grams examined per alignment when choosing the smallest bucket (bounds lookup cost for long values)."""
MAX_RAW_OCCURRENCES = 64
"""Most occurrences of a value that are not whole tokens checked per source by a direct scan."""
EPOCHS = 4
"""Sources are forgotten a quarter of the limit at a time."""
SNAPSHOT_FORMAT = 4
"""Version of :meth:`ProvenanceIndex.to_snapshot`'s data."""
LARGE_SOURCE = 64 * 1024
"""Sources of at least this many bytes keep their cores in a sorted array, not a dict."""
MAX_SOURCES = 1 << 27
"""Sources a session may index; later ones are counted in the context label only (a value found nowhere)."""

_FP_BITS = 8
_POS_BITS = 28
_SRC_SHIFT = _FP_BITS + _POS_BITS
_POS_MASK = (1 << _POS_BITS) - 1
_FP_MASK = (1 << _FP_BITS) - 1


def _gram_count(text: bytes) -> int:
    """Sampled grams indexed for a source of this text (:func:`tether.flow._hashing.sample_hashes`)."""
    return max((len(text) - K) // STEP + 1, 0)


class _Epoch:
    """A run of consecutive sources that are forgotten together."""

    __slots__ = ("chars", "cores", "first", "tokens")

    def __init__(self, first: int) -> None:
        self.first = first
        self.chars = 0
        self.tokens: dict[str, int] = {}
        self.cores = CoreArray()
        """The cores of the epoch's large sources (:mod:`tether.flow._core_array`)."""


def _bucket_count(max_chars: int) -> int:
    want = max(1024, max_chars // 16)
    return min(1 << 24, 1 << (want - 1).bit_length())


class ProvenanceIndex:
    """Index of what a session has seen, searchable by value, bounded to ``max_chars`` bytes of unpinned text."""

    __slots__ = (
        "_chars",
        "_eids",
        "_epochs",
        "_grams",
        "_label_ids",
        "_labels",
        "_labels_by_id",
        "_large",
        "_live_base",
        "_maps",
        "_mask",
        "_max_chars",
        "_next",
        "_pin_chars",
        "_pin_tokens",
        "_pins",
        "_texts",
        "evicted",
        "work",
    )

    def __init__(self, max_chars: int = 4_000_000) -> None:
        if max_chars < EPOCHS * 1024:
            raise ValueError(f"max_chars must be at least {EPOCHS * 1024}, got {max_chars}")
        self._max_chars = max_chars
        self._pins = 0
        self._pin_chars = 0
        self._pin_tokens: dict[str, int] = {}
        self._texts: list[bytes] = []
        self._labels: list[Label] = []
        self._eids: list[str] = []
        self._live_base = 0
        self._next = 0
        self._chars = 0
        self._epochs: list[_Epoch] = []
        self._maps: list[dict[str, int]] | None = None
        self._label_ids: dict[Label, int] = {}
        self._labels_by_id: list[Label] = []
        self._grams: GramChains | None = None
        self._mask = _bucket_count(max_chars) - 1
        self._large = max(LARGE_SOURCE, self.epoch_chars // 16)  # at most 16 large sources per epoch
        self.evicted: Label = TRUSTED
        """Join of the labels of every forgotten source."""
        self.work = 0
        """Bytes of normalised text given to the index so far, before any cap (monotonic)."""

    def __len__(self) -> int:
        """Number of sources currently searchable (pinned and live)."""
        return len(self._texts)

    @property
    def chars(self) -> int:
        """Bytes of normalised unpinned text currently indexed."""
        return self._chars

    @property
    def epoch_chars(self) -> int:
        """Bytes of text per epoch (also the most indexed of one source)."""
        return self._max_chars // EPOCHS

    # ------------------------------------------------------------------ adding

    def pin(self, text: str, label: Label, event_id: str) -> None:
        """Index ``text`` for the whole session (the task, policy constants); before any other source."""
        if self._next != self._pins:
            raise ValueError("pinned sources must be added before any other source")
        data = normalize(text).encode("utf-8")
        self.work += len(data)
        self._append(data, label, event_id, self._pin_tokens)
        self._pins += 1
        self._pin_chars += len(data)
        self._live_base = self._next

    def add(self, text: str, label: Label, event_id: str, *, normalized: bool = False) -> None:
        """Index ``text`` as a source with ``label``, recorded by event ``event_id`` (forgotten when old);
        ``normalized=True``: ``text`` is already normalised."""
        if self._next >= MAX_SOURCES:
            return  # never found: the context label, which includes this source's label, applies
        data = (text if normalized else normalize(text)).encode("utf-8")
        self.work += len(data)
        cap = self.epoch_chars
        if len(data) > cap:
            data = data[:cap].decode("utf-8", "ignore").encode("utf-8")
        self._add_normalized(data, label, event_id)

    def _add_normalized(self, data: bytes, label: Label, event_id: str) -> None:
        epoch = self._epochs[-1] if self._epochs and self._epochs[-1].chars < self.epoch_chars else None
        if epoch is None:
            epoch = _Epoch(self._next)
            self._epochs.append(epoch)
            self._maps = None
        if len(data) >= self._large:
            # A large source's cores go to the epoch's sorted array in vectorised steps.
            epoch.cores.add(self._next, data, MAX_TOKEN)
            self._append_source(data, label, event_id)
        else:
            self._append(data, label, event_id, epoch.tokens)
        epoch.chars += len(data)
        self._chars += len(data)
        while self._chars > self._max_chars and len(self._epochs) > 1:
            self._evict_oldest()

    def _label_id(self, lab: Label) -> int:
        found = self._label_ids.get(lab)
        if found is None:
            found = self._label_ids[lab] = len(self._labels_by_id)
            self._labels_by_id.append(lab)
        return found

    def _append(self, data: bytes, label: Label, event_id: str, tokens: dict[str, int]) -> None:
        src = self._next
        self._append_source(data, label, event_id)
        lid = self._label_id(label)
        packed = (lid << TOKEN_SRC_BITS) | src
        by_id = self._labels_by_id
        cores = token_cores(data.decode("utf-8"))
        if cores and max(map(len, cores)) > MAX_TOKEN:
            cores = {core for core in cores if len(core) <= MAX_TOKEN}
        # Cores new to this map take this source as they are (C-level); only known ones combine.
        known = set(filter(tokens.__contains__, cores))
        tokens.update(dict.fromkeys(cores.difference(known) if known else cores, packed))
        for core in known:
            seen = tokens[core]
            old = by_id[seen >> TOKEN_SRC_BITS]
            if old is label:
                continue  # nothing can change (labels are interned)
            combined = combine(old, label)
            if combined != old:
                tokens[core] = (self._label_id(combined) << TOKEN_SRC_BITS) | src

    def _append_source(self, data: bytes, label: Label, event_id: str) -> None:
        """Record a source and index its grams (its tokens are the caller's)."""
        src = self._next
        self._next += 1
        self._texts.append(data)
        self._labels.append(label)
        self._eids.append(event_id)
        if self._grams is not None:
            which, starts, hashes = sampled_grams([data])
            self._grams.add(which + src, starts, hashes, _SRC_SHIFT, _FP_BITS)

    def _evict_oldest(self) -> None:
        gone = self._epochs.pop(0)
        self._maps = None
        end = self._epochs[0].first
        count = end - gone.first
        start = self._pins  # the lists hold the pinned sources first
        gone_texts = self._texts[start : start + count]
        for lab in self._labels[start : start + count]:
            self.evicted = self.evicted.join(lab)
        del self._texts[start : start + count]
        del self._labels[start : start + count]
        del self._eids[start : start + count]
        self._chars -= gone.chars
        self._live_base = end
        if self._grams is not None:
            lo = sum(map(_gram_count, self._texts[:start]))
            self._grams.drop(lo, lo + sum(map(_gram_count, gone_texts)))

    def _slot(self, src: int) -> int:
        """Position of source ``src`` in the parallel lists."""
        return src if src < self._pins else src - self._live_base + self._pins

    # ------------------------------------------------------------------ grams

    def _build_grams(self) -> None:
        self._grams = GramChains(self._mask + 1)
        which, starts, hashes = sampled_grams(self._texts)
        # Positions in the lists to source numbers: the live sources follow the pinned ones.
        src = np.where(which < self._pins, which, which - self._pins + self._live_base)
        self._grams.add(src, starts, hashes, _SRC_SHIFT, _FP_BITS)

    # ------------------------------------------------------------------ lookups

    def lookup(self, value: str, *, whole_word: bool = False) -> Match:
        """Find the sources in which ``value`` (normalised) occurs as a whole token sequence.

        ``whole_word=True`` (used for numbers) only accepts a single token.
        """
        norm = normalize(value)
        if not norm:
            return NOT_FOUND
        if len(norm) <= MAX_TOKEN and is_core(norm):
            # A single token core occurs bounded exactly where a token's core equals it, and every
            # source's token cores are in the maps: they give the complete answer.
            hits, complete = self._token_hits(norm)
            return NOT_FOUND if hits is None else self._result(hits, complete=complete)
        if whole_word:
            return NOT_FOUND
        data = norm.encode("utf-8")
        if len(data) < MIN_GRAM_VALUE or self._missing_token(norm):
            return NOT_FOUND
        if self._total_chars() <= SCAN_LIMIT:
            return self._scan(data)
        if self._grams is None:
            self._build_grams()
        return self._lookup_grams(data)

    def _missing_token(self, norm: str) -> bool:
        """Whether one of the value's longest tokens is in no token map (then it occurs nowhere).

        Each token of a value that occurs bounded is, in that source, a token with the same core."""
        cores = sorted((c for c in map(core_of, TOKEN_SPLIT.findall(norm)) if c), key=len)[-2:]
        maps = self._token_maps
        return any(len(core) <= MAX_TOKEN and not any(core in m for m in maps) and not self._in_arrays(core) for core in cores)

    def _in_arrays(self, core: str) -> bool:
        """Whether a large source may hold ``core`` (an answer cut short by a bound counts as yes)."""
        data = core.encode("utf-8")
        for epoch in self._epochs:
            found, complete = epoch.cores.sources_of(data, self._text_of)
            if found or not complete:
                return True
        return False

    def _text_of(self, src: int) -> bytes:
        return self._texts[self._slot(src)]

    def _total_chars(self) -> int:
        return self._chars + self._pin_chars

    @property
    def _token_maps(self) -> list[dict[str, int]]:
        maps = self._maps
        if maps is None:
            maps = self._maps = [self._pin_tokens, *(e.tokens for e in self._epochs)]
        return maps

    def _token_hits(self, core: str) -> tuple[Hits | None, bool]:
        """The sources holding ``core`` as a token (token maps, then the large sources' core arrays),
        and whether the answer is complete (a core array verifies a bounded number of rows)."""
        hits: Hits | None = None
        by_id = self._labels_by_id
        for tokens in self._token_maps:  # the pinned sources' map first
            packed = tokens.get(core)
            if packed is None:
                continue
            if hits is None:
                hits = Hits(self._pins)
            if hits.add(packed & TOKEN_SRC_MASK, by_id[packed >> TOKEN_SRC_BITS]):
                return hits, True
        complete = True
        data = core.encode("utf-8")
        for epoch in self._epochs:
            found, whole = epoch.cores.sources_of(data, self._text_of)
            complete = complete and whole
            for src in found:
                if hits is None:
                    hits = Hits(self._pins)
                hits.add(src, self._labels[self._slot(src)])
        return hits, complete

    def _scan(self, data: bytes) -> Match:
        """Look in every source directly (small histories: C-speed search, no caps but on raw occurrences)."""
        hits = Hits(self._pins)
        complete = True
        for slot, (text, lab) in enumerate(zip(self._texts, self._labels, strict=True)):
            src = slot if slot < self._pins else slot - self._pins + self._live_base
            if not hits.could_change(src, lab):
                continue
            pos = find_bounded(text, data, MAX_RAW_OCCURRENCES)
            if pos == -2:
                complete = False
            elif pos >= 0 and hits.add(src, lab):
                break
        return self._result(hits, complete=complete)

    def _result(self, hits: Hits, *, complete: bool) -> Match:
        if hits.pinned is not None:
            best = hits.pinned
            ids = [s for s, lab in hits.sources if hits.is_pinned(s, lab)]
            complete = True  # the user named the value: no other source changes its label
        elif hits.trusted is not None:
            best = hits.trusted
            if not self.evicted.tags <= best.tags:
                best = best.join(label("trusted", self.evicted.tags))  # a forgotten trusted source may have held it
            ids = [s for s, lab in hits.sources if not lab.untrusted]
        elif hits.untrusted is not None:
            best = hits.untrusted
            if not self.evicted <= best:
                best = best.join(self.evicted)  # a forgotten source may have held it too
            ids = [s for s, _ in hits.sources]
        else:
            return Match(found=False, label=TRUSTED, sources=(), complete=complete)
        eids = tuple(dict.fromkeys(self._eids[self._slot(s)] for s in ids))
        return Match(found=True, label=best, sources=eids[:8], complete=complete, pinned=hits.pinned is not None)

    def _lookup_grams(self, data: bytes) -> Match:
        grams = self._grams
        assert grams is not None
        size_of, head_of, entry_of, after_of = grams.count.item, grams.head.item, grams.entry.item, grams.after.item
        mask = self._mask
        texts = self._texts
        labels = self._labels
        pins = self._pins
        shift = self._live_base - pins
        length = len(data)
        fp_mask, fp_bits, src_shift, pos_mask = _FP_MASK, _FP_BITS, _SRC_SHIFT, _POS_MASK
        hits = Hits(pins)
        verified = 0
        complete = True
        for residue in range(STEP):
            chosen = -1
            chosen_size = 0
            chosen_offset = 0
            chosen_fp = 0
            for offset in range(residue, min(length - K + 1, residue + STEP * MAX_ANCHORS), STEP):
                h = sample_hash(data[offset : offset + K])
                size = size_of(h & mask)
                if not size:
                    chosen = -1
                    break
                if chosen < 0 or size < chosen_size:
                    chosen, chosen_size, chosen_offset, chosen_fp = h & mask, size, offset, (h >> 24) & fp_mask
            if chosen < 0:
                continue  # some gram of this alignment never occurs: no match here
            if chosen_size > MAX_SCAN:
                complete = False
            at = head_of(chosen)
            for _ in range(min(chosen_size, MAX_SCAN)):
                entry = entry_of(at)
                at = after_of(at)
                if entry & fp_mask != chosen_fp:
                    continue
                src = entry >> src_shift
                slot = src if src < pins else src - shift
                lab = labels[slot]
                if hits.sources and not hits.could_change(src, lab):
                    continue
                start = ((entry >> fp_bits) & pos_mask) - chosen_offset
                if start < 0:
                    continue
                verified += 1
                if verified > MAX_VERIFY:
                    complete = False
                    break
                text = texts[slot]
                if text.startswith(data, start) and bounded_at(text, start, length) and hits.add(src, lab):
                    break
            if hits.pinned == TRUSTED or verified > MAX_VERIFY:
                break
        return self._result(hits, complete=complete)

    def memory_bytes(self) -> int:
        """Approximate bytes held (texts, gram buckets, token maps); bounded by ``max_chars``."""
        size = sys.getsizeof(self._texts) + sum(map(sys.getsizeof, self._texts)) + sum(map(sys.getsizeof, self._eids))
        if self._grams is not None:
            size += self._grams.nbytes()
        size += sum(e.cores.nbytes() for e in self._epochs)
        for tokens in self._token_maps:
            size += sys.getsizeof(tokens) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in tokens.items())
        return size

    # ------------------------------------------------------------------ state

    def digest(self) -> tuple[tuple[str, str, str], ...]:
        """A comparable summary of the searchable sources (for crash/resume checks)."""
        return tuple(
            (eid, lab.describe(), text.decode("utf-8")) for eid, lab, text in zip(self._eids, self._labels, self._texts, strict=True)
        )

    def to_snapshot(self) -> dict[str, Any]:
        """The index as JSON-able data: pinned and live sources, epoch boundaries, ``evicted``, the label
        table and the live epochs' token maps (so a restore tokenises only the pinned sources again)."""
        sources = [[eid, lab.to_json(), text.decode("utf-8")] for eid, lab, text in zip(self._eids, self._labels, self._texts, strict=True)]
        return {
            "format": SNAPSHOT_FORMAT,
            "max_chars": self._max_chars,
            "pins": self._pins,
            "live_base": self._live_base,
            "epochs": [e.first for e in self._epochs],
            "sources": sources,
            "labels": [lab.to_json() for lab in self._labels_by_id],
            "tokens": [_token_map.save(e.tokens) for e in self._epochs],
            "cores": [e.cores.save() for e in self._epochs],
            "grams": self._grams is not None,
            "evicted": self.evicted.to_json(),
            "work": self.work,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ProvenanceIndex:
        """Rebuild an index from :meth:`to_snapshot`; it answers every lookup as the original did.

        The pinned sources' token map and the gram buckets are derived from the texts again (the
        buckets in one vectorised pass); the live token maps are taken as saved once they pass
        :func:`tether.flow._token_map.restore`'s checks."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported provenance snapshot format {data.get('format')!r}")
        index = cls(int(data["max_chars"]))
        for lab in map(Label.from_json, data["labels"]):
            if index._label_id(lab) != len(index._labels_by_id) - 1:
                raise ValueError("snapshot label table repeats a label")
        pins = int(data["pins"])
        sources = data["sources"]
        for eid, lab, text in sources[:pins]:
            encoded = str(text).encode("utf-8")
            index._append(encoded, Label.from_json(lab), str(eid), index._pin_tokens)
            index._pins += 1
            index._pin_chars += len(encoded)
        index._next = index._live_base = int(data["live_base"])
        firsts = [int(f) for f in data["epochs"]]
        saved_maps = data["tokens"]
        end = index._live_base + len(sources) - pins
        if (
            len(saved_maps) != len(firsts)
            or firsts != sorted(set(firsts))
            or (firsts and (firsts[0] != index._live_base or firsts[-1] >= end))
        ):
            raise ValueError("snapshot epochs do not match its sources")
        if len(sources) > pins and not firsts:
            raise ValueError("snapshot epochs do not match its sources")
        parsed: dict[bytes, Label] = {}  # sources share few labels: parse each written form once
        starts = set(firsts)
        for i, (eid, lab, text) in enumerate(sources[pins:]):
            src = index._live_base + i
            if src in starts:
                index._epochs.append(_Epoch(src))
            epoch = index._epochs[-1]
            encoded = str(text).encode("utf-8")
            form = orjson.dumps(lab)
            source_label = parsed.get(form)
            if source_label is None:
                source_label = parsed[form] = Label.from_json(lab)
            index._append_source(encoded, source_label, str(eid))
            epoch.chars += len(encoded)
            index._chars += len(encoded)
        if len(data["cores"]) != len(firsts):
            raise ValueError("snapshot core arrays do not match its epochs")
        stops = [*firsts[1:], end][: len(firsts)]
        for epoch, saved, cores, stop in zip(index._epochs, saved_maps, data["cores"], stops, strict=True):
            own = index._labels[index._slot(epoch.first) : index._slot(stop - 1) + 1]
            epoch.tokens = _token_map.restore(saved, epoch.first, stop, own, index._labels_by_id)
            epoch.cores = CoreArray.restore(cores, epoch.first, stop)
        index._maps = None
        if data["grams"] is True:
            index._build_grams()
        index.evicted = Label.from_json(data["evicted"])
        index.work = int(data["work"])
        return index
