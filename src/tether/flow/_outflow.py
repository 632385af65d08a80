"""Outflow accounting: confidential data leaving a session in pieces too short to trace one by one.

A value of ``RUN`` (8) normalised characters or more is traced on its own: it is found in the
source it was copied from and carries that source's tags, and the flow rules see them. A secret
sent one or two characters per call is not: each piece is found nowhere, or everywhere, and an
argument with no flow rule lets it pass. The ledger closes that class in the core, whatever the
policy tags or forgets to rule:

* **What is remembered.** Every *confidential source* (a text the session read whose label carries
  a confidentiality tag) is remembered as grams of ``RUN`` characters, in its normal form and with
  everything but letters and digits stripped (:class:`~tether.flow._taint.TaintMemory`, bounded
  and failing closed). Once the context carries a tag, every *short piece* sent out (a string leaf
  under ``RUN`` normalised characters, or an integer, in the arguments of a call that ran) goes
  into two rings in the order sent, with whether its label carries a tag (it was copied from
  tagged data, or made up after the session read some: the context label): one ring for its sink
  (tool and top-level argument, the last :data:`SINK_PIECES`) and one for the session (the last
  :data:`SESSION_PIECES`, every sink). Each sink also counts the characters of its tagged pieces.
* **What is checked.** For each short piece of a proposed call, each ring is concatenated with it
  (and with the call's earlier short pieces) twice: every piece, and the tagged pieces only (so
  that ids, dates and numbers found in untagged data, sent between the pieces, do not break the
  sequence; the sequence of every piece catches a secret whose pieces also occur in untagged
  data), each as sent and with separators stripped. When the last ``RUN + len(piece) - 1``
  characters (every run of ``RUN`` characters that includes the new piece) share a run of ``RUN``
  characters with a confidential source, the call sends the next piece of that source: the
  policy's ``outflow.on_trace`` decides (ask by default), with a reason that names the sink (or
  "several"), the tags and the events the data came from, and never the data. Independently, a
  tagged piece that takes its sink's count past a multiple of ``outflow.max_short_chars`` (4,096 by
  default) gets the same verdict: pieces hidden between enough junk to leave the rings still
  cost a human's look per 4,096 characters.
* **Bounds.** At most :data:`MAX_SINKS` sink rings (the least recently used goes first, with its
  count), each of at most :data:`SINK_PIECES` pieces of at most ``RUN - 1`` characters: a few tens
  of KB whatever the session's length. The confidential grams are bounded by
  ``FlowLimits.max_outflow_entries`` (10 bytes each), past which a Bloom filter takes them and,
  once saturated, every check traces (fail closed). Everything here is folded from events (pieces
  when a call is counted, sources when an output is recorded), carried by snapshots and compared
  by ``digest()``.

Residuals (documented in docs/architecture.md): a secret shorter than ``RUN`` characters sent in
pieces (a 4-digit PIN) is caught only where a whole piece equals a short confidential source; a
piece sent after more other short values than the rings hold (:data:`SINK_PIECES` on its sink,
:data:`SESSION_PIECES` in the session) is seen only by the character count; a secret some of whose
pieces are whole words of untagged data (so untagged) sent with untagged values in between is
spelt by neither sequence; a transformation that
leaves no ``RUN``-character run (reversing, encoding) leaves nothing to trace.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tether.flow._hashing import RUN
from tether.flow._labels import TRUSTED, Label
from tether.flow._taint import TaintMemory

SINK_PIECES = 32
"""Short pieces remembered per sink (tool and top-level argument)."""
SESSION_PIECES = 64
"""Short pieces remembered for the whole session (every sink, in the order sent)."""
MAX_SINKS = 64
"""Sinks with a ring of their own (the least recently used one is dropped first)."""
MAX_EIDS = 4
"""Events cited per set of tags as the data's source."""
SNAPSHOT_FORMAT = 1


def stripped(text: str) -> str:
    """``text`` with everything but letters and digits removed (separators an attacker inserts)."""
    return text if text.isalnum() else "".join(ch for ch in text if ch.isalnum())


@dataclass(frozen=True, slots=True)
class Trace:
    """A proposed piece that would complete a run of a confidential source."""

    sink: str
    """``tool.argument`` the piece goes to."""
    path: str
    """The leaf's path in the call."""
    label: Label
    """The join of the labels of the confidential sources it matches."""
    sources: tuple[str, ...]
    """Events that recorded sources with those labels (at most 8)."""
    across: bool
    """True when only the session's ring (pieces through several sinks) spells the run."""
    volume: int = 0
    """When non-zero: no run was spelt, but this many characters of short confidential pieces would
    have left through the sink, past the policy's limit (pieces hidden between other pieces)."""


class OutflowLedger:
    """Short confidential pieces sent out, per sink and per session, and the confidential sources they may spell."""

    __slots__ = ("_eids", "_joined", "memory", "session", "sinks", "volume")

    def __init__(self, max_entries: int = 1_000_000, overflow_bits: int = 1 << 20) -> None:
        self.memory = TaintMemory(max_entries, overflow_bits, 4096)
        """Grams of the confidential sources (as read and stripped)."""
        self.sinks: OrderedDict[str, deque[tuple[str, bool]]] = OrderedDict()
        """Recent short pieces per sink (and whether each carried a tag), oldest first; sinks least recently used first."""
        self.session: deque[tuple[str, bool]] = deque(maxlen=SESSION_PIECES)
        """Recent short pieces through every sink, oldest first."""
        self.volume: dict[str, int] = {}
        """Characters of short tagged pieces sent through each sink (of those in ``sinks``)."""
        self._joined: dict[str | None, tuple[str, str, str, str]] = {}
        # Each ring's pieces joined, as sent and stripped, all of them and the tagged ones only
        # (derived: rebuilt from the rings; key None: the session).
        self._eids: dict[frozenset[str], list[str]] = {}
        # The first few events read per set of tags: cited by reasons (keyed by tags, not labels,
        # so that sources with their own readers do not grow it).

    # ------------------------------------------------------------------ folding

    def add_source(self, norm: str, label: Label, event_id: str) -> None:
        """A text read with ``label`` (normalised): remembered when it is confidential."""
        if not label.tags:
            return
        self.memory.remember(norm, label)
        flat = stripped(norm)
        if flat != norm:
            self.memory.remember(flat, label)
        cited = self._eids.setdefault(label.tags, [])
        if len(cited) < MAX_EIDS and event_id not in cited:
            cited.append(event_id)

    def record(self, sink: str, piece: str, tagged: bool) -> None:
        """A short piece (normalised) sent to ``sink`` by a call that ran; ``tagged``: its label carries a tag."""
        ring = self.sinks.get(sink)
        if ring is None:
            ring = self.sinks[sink] = deque(maxlen=SINK_PIECES)
            while len(self.sinks) > MAX_SINKS:
                gone, _ = self.sinks.popitem(last=False)
                self._joined.pop(gone, None)
                self.volume.pop(gone, None)
        else:
            self.sinks.move_to_end(sink)
        if tagged:
            self.volume[sink] = self.volume.get(sink, 0) + len(piece)
        ring.append((piece, tagged))
        self.session.append((piece, tagged))
        self._joined.pop(sink, None)  # joined again when a check needs it
        self._joined.pop(None, None)

    def _joined_ring(self, key: str | None) -> tuple[str, str, str, str]:
        """A ring's pieces joined: every piece and the tagged ones, as sent and stripped (cached)."""
        found = self._joined.get(key)
        if found is None:
            ring = self.session if key is None else self.sinks.get(key, ())
            every = "".join(p for p, _ in ring)
            tagged = "".join(p for p, t in ring if t)
            found = self._joined[key] = (every, stripped(every), tagged, stripped(tagged))
        return found

    # ------------------------------------------------------------------ checking

    @property
    def active(self) -> bool:
        """Whether any confidential source was read (otherwise no piece can spell one)."""
        return bool(self._eids)

    def trace(self, pieces: Iterable[tuple[str, str, str, Label]], max_chars: int | None = None) -> list[Trace]:
        """The proposed short pieces ``(sink, path, normalised piece, label)`` of one call, in order, that
        complete a run of a confidential source, or whose tagged ones take a sink's characters of such
        pieces past a multiple of ``max_chars`` (module docstring)."""
        if not self._eids and max_chars is None:
            return []
        sent: dict[str, tuple[str, str]] = {}
        every = tagged_all = ""
        seen: dict[str, Label] = {}  # tails already checked (a sink's tail is often the session's)
        out: list[Trace] = []
        for sink, path, piece, own_label in pieces:
            tagged = bool(own_label.tags)
            mine, mine_tagged = sent.get(sink, ("", ""))
            mine += piece
            every += piece
            if tagged:
                mine_tagged += piece
                tagged_all += piece
            sent[sink] = (mine, mine_tagged)
            label = TRUSTED
            across = False
            if self._eids:
                ring, session = self._joined_ring(sink), self._joined_ring(None)
                label = self._match(ring[0], ring[1], mine, piece, seen)
                if tagged:
                    label = label.join(self._match(ring[2], ring[3], mine_tagged, piece, seen))
                if label == TRUSTED:
                    label = self._match(session[0], session[1], every, piece, seen)
                    if tagged:
                        label = label.join(self._match(session[2], session[3], tagged_all, piece, seen))
                    across = True
            if label != TRUSTED:
                out.append(Trace(sink, path, label, self._cite(label), across))
                continue
            before = self.volume.get(sink, 0) + len(mine_tagged) - len(piece)
            if tagged and max_chars is not None and (before + len(piece)) // max_chars > before // max_chars:
                out.append(Trace(sink, path, own_label, self._cite(own_label), False, before + len(piece)))
        return out

    def _match(self, ring_plain: str, ring_flat: str, own: str, piece: str, seen: dict[str, Label]) -> Label:
        """The labels of confidential sources sharing a run with the end of a ring's pieces then this
        call's (``own`` ends with ``piece``), as sent and with separators stripped: every run of ``RUN``
        characters that includes the new piece."""
        found = TRUSTED
        for text, new in ((ring_plain + own, piece), (ring_flat + stripped(own), stripped(piece))):
            need = RUN + len(new) - 1
            if not new or len(text) < RUN:
                continue
            tail = text[-need:]
            hit = seen.get(tail)
            if hit is None:
                hit = seen[tail] = self.memory.taint(TRUSTED, tail, normalized=True)
            found = found.join(hit)
        return found

    def _cite(self, label: Label) -> tuple[str, ...]:
        cited = [eid for tags, eids in self._eids.items() if tags & label.tags for eid in eids]
        return tuple(dict.fromkeys(cited))[:8]

    # ------------------------------------------------------------------ state

    @property
    def work(self) -> int:
        """Work done folding confidential sources in (see ``FlowTracker.work``)."""
        return self.memory.work

    def memory_bytes(self) -> int:
        """Approximate bytes held."""
        pieces = sum(len(r) for r in self.sinks.values()) + len(self.session)
        return self.memory.memory_bytes() + 160 * pieces + 600 * len(self.sinks)

    def digest(self) -> dict[str, Any]:
        """A comparable picture (crash/resume equivalence)."""
        return {
            "sinks": [[sink, [list(p) for p in ring]] for sink, ring in self.sinks.items()],
            "session": [list(p) for p in self.session],
            "volume": dict(self.volume),
            "sources": sorted([sorted(tags), list(eids)] for tags, eids in self._eids.items()),
            "memory": self.memory.digest(),
        }

    def to_snapshot(self) -> dict[str, Any]:
        """The ledger as JSON-able data."""
        return {
            "format": SNAPSHOT_FORMAT,
            "sinks": [[sink, [list(p) for p in ring]] for sink, ring in self.sinks.items()],
            "session": [list(p) for p in self.session],
            "volume": [[sink, count] for sink, count in self.volume.items()],
            "sources": [[sorted(tags), list(eids)] for tags, eids in self._eids.items()],
            "memory": self.memory.to_snapshot(),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> OutflowLedger:
        """Rebuild a ledger from :meth:`to_snapshot`."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported outflow snapshot format {data.get('format')!r}")
        ledger = cls()
        ledger.memory = TaintMemory.from_snapshot(data["memory"])
        for sink, ring in data["sinks"][-MAX_SINKS:]:
            ledger.sinks[str(sink)] = deque(((str(p), bool(t)) for p, t in ring), maxlen=SINK_PIECES)
        ledger.session.extend((str(p), bool(t)) for p, t in data["session"])
        for sink, count in data["volume"]:
            if str(sink) in ledger.sinks:
                ledger.volume[str(sink)] = int(count)
        for tags, eids in data["sources"]:
            ledger._eids[frozenset(str(t) for t in tags)] = [str(e) for e in eids][:MAX_EIDS]
        return ledger
