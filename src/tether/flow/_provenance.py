"""The provenance index: where could a value in a tool call have come from?

Every text a session has seen (the trusted task, policy constants, each tool
output) is added as a *source* with its label and the id of the event that
recorded it. ``lookup(value)`` finds the sources whose normalised text contains
the normalised value and combines their labels:

* if any **trusted** source contains it, the value is trusted, with the *meet*
  (intersection) of those trusted sources' tags: a value the user also wrote is
  the user's, and a value that appears in the user's own public data reveals
  nothing secret;
* otherwise it is untrusted, with the *join* (union) of the tags of the
  untrusted sources: attacker-writable data can neither vouch for a value nor
  declassify it (an email listing every 4-digit number does not make a PIN public).

A value found nowhere was produced by the model and gets the session's context
label (the caller decides that).

Index layout (lookup cost depends on the value's length, never on the history):

* **sampled grams** for values of ``MIN_GRAM_VALUE`` characters or more: every
  ``K``-character substring of a source starting at a multiple of ``STEP`` is a key
  whose posting list holds (source, position). Any occurrence of a value of length
  ``>= K + STEP - 1`` covers a sampled gram; for each of the ``STEP`` alignments
  the value's rarest gram is looked up and its candidates verified in place.
* **tokens**: a normalised word (split on whitespace and brackets/quotes,
  trailing punctuation dropped) maps to the meet of the labels it was seen with.
  This answers shorter values, and is a fast path for any whole-word value found
  in trusted data. A short value that is not a whole word is reported as not
  found, which is the conservative answer.

Both structures are bounded: posting lists stop growing at ``MAX_POSTINGS``
entries and a lookup verifies at most ``MAX_VERIFY`` candidates. Hitting either
bound can only make an answer more conservative: a missed trusted source could
only have lowered the label, and when only untrusted sources were found the
result says ``complete=False`` so the caller joins in the context label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tether.flow._labels import TRUSTED, Label
from tether.flow._normalize import normalize

K = 6
"""Gram length in characters."""
STEP = 3
"""Sampling stride of indexed gram positions."""
MIN_GRAM_VALUE = K + STEP - 1
"""Shortest normalised value looked up through grams; shorter ones use tokens."""
SCAN_LIMIT = 64 * 1024
"""Up to this many indexed characters, values are searched in the sources directly
(exact, and cheaper than building the gram index); past it the gram index is built."""
MAX_TOKEN = 256
"""Longest word kept in the token map (a fast path for whole-word values)."""
MAX_POSTINGS = 1024
"""Posting-list cap per gram (earlier sources are kept)."""
MAX_VERIFY = 24
"""Most candidate positions verified by one lookup (earlier sources first: the task is source 0)."""
MAX_ANCHORS = 8
"""Grams examined per alignment when choosing the rarest (bounds lookup cost for long values)."""
_POS_BITS = 40
_POS_MASK = (1 << _POS_BITS) - 1

_TOKEN_SPLIT = re.compile(r"[^\s\"'`<>()\[\]{},;|]+")
_TOKEN_TRIM = ".:!?*#=-_/\\"


@dataclass(frozen=True, slots=True)
class Match:
    """The result of a provenance lookup."""

    found: bool
    """Whether any source contains the value."""
    label: Label
    """Combined label of the matching sources (see the module docstring; ``TRUSTED`` when not found)."""
    sources: tuple[str, ...]
    """Event ids of the matching sources that carry the reported label (at most 8)."""
    complete: bool = True
    """False when a bound stopped the search early; the label is then an upper bound."""


NOT_FOUND = Match(found=False, label=TRUSTED, sources=())


def combine(a: Label, b: Label) -> Label:
    """The label of a value found in sources labelled ``a`` and ``b`` (module docstring)."""
    if a.untrusted and b.untrusted:
        return a.join(b)
    if a.untrusted:
        return b
    if b.untrusted:
        return a
    return a.meet(b)


class _Hits:
    """Sources found so far for one lookup, and the label they give (see ``combine``)."""

    __slots__ = ("sources", "trusted_meet", "untrusted_join")

    def __init__(self) -> None:
        self.sources: list[int] = []
        self.trusted_meet: Label | None = None
        self.untrusted_join: Label | None = None

    def could_change(self, lab: Label) -> bool:
        """Whether finding a source labelled ``lab`` could change the result."""
        if lab.untrusted:
            return self.trusted_meet is None and (self.untrusted_join is None or not lab <= self.untrusted_join)
        return self.trusted_meet is None or not self.trusted_meet <= lab

    def add(self, src: int, lab: Label) -> bool:
        """Record a source; True when nothing found later can lower the result."""
        self.sources.append(src)
        if lab.untrusted:
            self.untrusted_join = lab if self.untrusted_join is None else self.untrusted_join.join(lab)
            return False
        self.trusted_meet = lab if self.trusted_meet is None else self.trusted_meet.meet(lab)
        return self.trusted_meet == TRUSTED

    def label(self) -> Label | None:
        """The combined label, or None when nothing was found."""
        return self.trusted_meet if self.trusted_meet is not None else self.untrusted_join


class ProvenanceIndex:
    """Index of everything a session has seen, searchable by value."""

    __slots__ = ("_chars", "_event_ids", "_grams", "_indexed", "_labels", "_texts", "_tokens")

    def __init__(self) -> None:
        self._labels: list[Label] = []
        self._event_ids: list[str] = []
        self._texts: list[str] = []
        self._grams: dict[str, list[int]] = {}
        self._tokens: dict[str, Match] = {}
        self._chars = 0
        self._indexed = 0

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str, label: Label, event_id: str) -> None:
        """Index ``text`` as a source with ``label``, recorded by event ``event_id``."""
        norm = normalize(text)
        self._labels.append(label)
        self._event_ids.append(event_id)
        self._texts.append(norm)
        self._chars += len(norm)
        tokens = self._tokens
        fresh = Match(found=True, label=label, sources=(event_id,))
        # Every occurrence in one source has the same label: each distinct word once.
        for raw in set(_TOKEN_SPLIT.findall(norm)):
            token = raw.strip(_TOKEN_TRIM) or raw
            if len(token) > MAX_TOKEN:
                continue
            seen = tokens.get(token)
            if seen is None:
                tokens[token] = fresh
                continue
            old = seen.label
            if old is label or old is TRUSTED:
                continue  # nothing can change (TRUSTED is the bottom; labels are interned)
            combined = combine(old, label)
            if combined != old:
                keep = seen.sources if combined.untrusted or not old.untrusted else ()
                tokens[token] = Match(found=True, label=combined, sources=(*keep, event_id)[:8])

    def lookup(self, value: str, *, whole_word: bool = False) -> Match:
        """Find the sources containing ``value`` (after normalisation).

        ``whole_word=True`` (used for numbers) only accepts matches of a whole word.
        """
        norm = normalize(value)
        if not norm:
            return NOT_FOUND
        token = self._tokens.get(norm)
        if token is not None and token.label == TRUSTED:
            return token  # the bottom of the lattice: no other source can lower it
        if len(norm) >= MIN_GRAM_VALUE and not whole_word:
            return self._lookup_grams(norm)
        if token is None:
            trimmed = norm.strip(_TOKEN_TRIM)
            token = self._tokens.get(trimmed) if trimmed else None
        return NOT_FOUND if token is None else token

    def _index_grams(self) -> None:
        """Add the sampled grams of sources not indexed yet (done lazily: many sessions never need them)."""
        grams = self._grams
        for idx in range(self._indexed, len(self._texts)):
            norm = self._texts[idx]
            base = idx << _POS_BITS
            for pos in range(0, len(norm) - K + 1, STEP):
                gram = norm[pos : pos + K]
                postings = grams.get(gram)
                if postings is None:
                    grams[gram] = [base | pos]
                elif len(postings) < MAX_POSTINGS:
                    postings.append(base | pos)
        self._indexed = len(self._texts)

    def _scan(self, norm: str) -> Match:
        """Look in every source directly (small histories: C-speed substring search, no caps)."""
        hits = _Hits()
        for src, (text, lab) in enumerate(zip(self._texts, self._labels, strict=True)):
            if norm in text and hits.add(src, lab):
                break
        return self._result(hits, complete=True)

    def _result(self, hits: _Hits, *, complete: bool) -> Match:
        best = hits.label()
        if best is None:
            return Match(found=False, label=TRUSTED, sources=(), complete=complete)
        want_untrusted = hits.trusted_meet is None
        labels = self._labels
        ids = tuple(dict.fromkeys(self._event_ids[s] for s in hits.sources if labels[s].untrusted == want_untrusted))
        return Match(found=True, label=best, sources=ids[:8], complete=complete or not want_untrusted)

    def _lookup_grams(self, norm: str) -> Match:
        if self._indexed < len(self._texts):
            if self._chars <= SCAN_LIMIT:
                return self._scan(norm)
            self._index_grams()
        grams = self._grams
        texts = self._texts
        labels = self._labels
        length = len(norm)
        hits = _Hits()
        verified = 0
        complete = True
        for residue in range(STEP):
            # The rarest gram among (a bounded number of) the offsets of this alignment.
            chosen: list[int] | None = None
            chosen_offset = 0
            for offset in range(residue, min(length - K + 1, residue + STEP * MAX_ANCHORS), STEP):
                postings = grams.get(norm[offset : offset + K])
                if postings is None:
                    chosen = None
                    break
                if chosen is None or len(postings) < len(chosen):
                    chosen = postings
                    chosen_offset = offset
            if chosen is None:
                continue  # some gram of this alignment never occurs: no match here
            if len(chosen) >= MAX_POSTINGS:
                complete = False
            for entry in chosen:
                src = entry >> _POS_BITS
                lab = labels[src]
                if not hits.could_change(lab):
                    continue
                start = (entry & _POS_MASK) - chosen_offset
                if start < 0:
                    continue
                verified += 1
                if verified > MAX_VERIFY:
                    complete = False
                    break
                if texts[src].startswith(norm, start) and hits.add(src, lab):
                    break
            if hits.trusted_meet == TRUSTED or verified > MAX_VERIFY:
                break
        return self._result(hits, complete=complete)

    def digest(self) -> tuple[tuple[str, str, str], ...]:
        """A comparable summary of the indexed sources (for crash/resume checks)."""
        return tuple((eid, lab.describe(), text) for eid, lab, text in zip(self._event_ids, self._labels, self._texts, strict=True))
