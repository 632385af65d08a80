"""One place that turns a value into a label: the session's flow tracker.

:class:`FlowTracker` owns everything provenance needs: the index of sources
(the pinned task and policy constants, tool outputs, added sources), the context
label (the join of everything read) with its evidence, number forms, the "found
nowhere, so it takes the context label" fallback, the memory of values the session
put into the world, and the taint of outputs by those values and by the call's own
arguments (echoes). The session state owns one tracker and only feeds it events;
the decision asks it for a value's :class:`Origin`. Nothing here reads a clock or
the outside world, so a decision stays a pure function of (policy, state, call, time).

Memory is bounded by :class:`FlowLimits`. Every bound fails closed: a forgotten
source makes a value "found nowhere", which takes the context label (the join of
every source ever read, forgotten ones included, so it is never below the label any
source would have given); a full taint memory spills into a filter whose label
goes into every output that may carry a spilled piece.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tether.flow._hashing import RUN
from tether.flow._labels import TRUSTED, Label, join_all, label
from tether.flow._matches import NOT_FOUND, Match, combine
from tether.flow._normalize import normalize, number_forms
from tether.flow._outflow import OutflowLedger, Trace
from tether.flow._provenance import ProvenanceIndex
from tether.flow._taint import TaintMemory

SNAPSHOT_VERSION = 5
_CACHED_TEXT = 4096  # texts at least this long keep their normal form for a second use


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """Bounds on what one session's flow tracker keeps in memory (all fail closed)."""

    max_index_chars: int = 4_000_000
    """Bytes of normalised tool output kept searchable (the task and constants are pinned on top).
    Older outputs are forgotten a quarter at a time; a value found only there takes the context label.
    Outputs indexed record by record (per-record readers) are also kept whole in a second index
    with the same bound, so such outputs count up to twice."""
    max_taint_entries: int = 6_400_000
    """Pieces (grams of ``RUN`` characters, short words) of values sent out that are remembered exactly.
    Grams take one 8-byte slot each in a table at most 80% full, grown as needed: at most
    ``10 * max_taint_entries`` bytes (64 MB at the default, enough for about 6 MB of sent-out text
    that repeats no 8-character run, more when it does)."""
    max_taint_words: int = 65_536
    """Of those, short values (under ``RUN`` characters, numbers) remembered exactly (about 200 bytes each)."""
    taint_overflow_bits: int = 1 << 20
    """Size of the filter that holds pieces beyond the exact limits (a power of two, in bits)."""
    max_context_sources: int = 16
    """Event ids kept as evidence for the context label."""
    max_outflow_entries: int = 1_000_000
    """Grams of confidential sources (read with a tag) remembered exactly for outflow accounting
    (10 bytes each, so 10 MB at the default; past it a filter holds them and checks fail closed);
    see :mod:`tether.flow._outflow`."""

    def __post_init__(self) -> None:
        if not 4096 <= self.max_index_chars <= 1 << 30:
            raise ValueError(f"max_index_chars must be between 4096 and 2**30, got {self.max_index_chars}")
        if not 0 <= self.max_taint_entries <= 1 << 32:
            raise ValueError(f"max_taint_entries must be between 0 and 2**32, got {self.max_taint_entries}")
        if self.max_taint_words < 0:
            raise ValueError(f"max_taint_words must not be negative, got {self.max_taint_words}")
        if self.taint_overflow_bits < 1024 or self.taint_overflow_bits & (self.taint_overflow_bits - 1):
            raise ValueError(f"taint_overflow_bits must be a power of two of at least 1024, got {self.taint_overflow_bits}")
        if self.max_context_sources < 0:
            raise ValueError(f"max_context_sources must not be negative, got {self.max_context_sources}")
        if not 0 <= self.max_outflow_entries <= 1 << 32:
            raise ValueError(f"max_outflow_entries must be between 0 and 2**32, got {self.max_outflow_entries}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one scalar argument value came from."""

    label: Label
    """The value's label."""
    found: bool
    """Whether some source the session read contains the value."""
    sources: tuple[str, ...]
    """Evidence: event ids of the sources that give the label (at most 8)."""
    inherited: bool
    """True when the value was found nowhere (or is a boolean or null), so the label is the
    session's context label: the model may have made it up from anything it read."""
    pinned: bool = False
    """True when a pinned source (the task, a policy constant: the user's own words) holds the value."""


def walk_leaves(value: Any, path: str, out: list[tuple[str, Any]]) -> None:
    """Every scalar inside ``value`` with its path (``to[0]``, ``opts.tag``); object keys are
    leaves too (``opts{KEY}``), since an attacker can put data in a key as easily as in a value."""
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((f"{path}{{{k}}}", k))
            walk_leaves(v, f"{path}.{k}", out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            walk_leaves(v, f"{path}[{i}]", out)
    else:
        out.append((path, value))


def _combine_forms(matches: list[Match]) -> Match:
    """The match of a number written in any of several forms: each form is looked up on its own, and
    the forms' answers combine as sources do (a pinned form wins, then trusted forms join their
    tags, then untrusted forms join)."""
    found = [m for m in matches if m.found]
    if not found:
        return NOT_FOUND
    pinned = [m for m in found if m.pinned]
    trusted = [m for m in found if not m.label.untrusted]
    chosen = pinned[:1] or trusted or found
    if len(chosen) == 1:
        return chosen[0]
    sources = tuple(dict.fromkeys(s for m in chosen for s in m.sources))[:8]
    return Match(True, join_all(m.label for m in chosen), sources, all(m.complete for m in chosen))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _record_pieces(text: str, whole: Label, records: Sequence[tuple[int, int, Collection[str]]]) -> list[tuple[str, Label]] | None:
    """``text`` cut into its records (each labelled with its readers) and the text between them
    (labelled ``whole``); None when the records cannot be trusted to cut it (see ``add_source``)."""
    if whole.readers is None:
        return None
    pieces: list[tuple[str, Label]] = []
    at = 0
    for start, end, readers in records:
        wider = frozenset(readers)
        if not at <= start < end <= len(text) or not whole.readers <= wider:
            return None
        if text[at:start].strip():
            pieces.append((text[at:start], whole))
        elif pieces and at == start and pieces[-1][1].readers == wider:
            pieces[-1] = (pieces[-1][0] + text[start:end], pieces[-1][1])  # adjacent records, same readers: one source
            at = end
            continue
        pieces.append((text[start:end], label(whole.integrity, whole.tags, wider)))
        at = end
    if text[at:].strip():
        pieces.append((text[at:], whole))
    return pieces


class FlowTracker:
    """Provenance of one session: sources, context label, values sent out, output taint."""

    __slots__ = ("_last_norm", "_memo", "context", "context_sources", "index", "limits", "outflow", "spans", "taint")

    def __init__(self, limits: FlowLimits | None = None) -> None:
        self.limits = limits if limits is not None else FlowLimits()
        self.index = ProvenanceIndex(self.limits.max_index_chars)
        """The searchable sources (an output with per-record readers as one source per record)."""
        self.spans = ProvenanceIndex(self.limits.max_index_chars)
        """Whole texts of the outputs indexed record by record, labelled with the whole output's label:
        a value found in no single record (it spans several) is found here (see :meth:`origin`)."""
        self.taint = TaintMemory(self.limits.max_taint_entries, self.limits.taint_overflow_bits, self.limits.max_taint_words)
        """Values the session put into the world."""
        self.outflow = OutflowLedger(self.limits.max_outflow_entries, self.limits.taint_overflow_bits)
        """Short confidential pieces sent out, and the confidential sources they may spell."""
        self.context: Label = TRUSTED
        """Join of the labels of everything the session has read."""
        self.context_sources: list[str] = []
        """The first few event ids that raised the context label above ``TRUSTED``."""
        self._memo: dict[tuple[type, Any], Origin] = {}
        # Origins computed since the sources or the context last changed (a check, then the same
        # values again when the call is counted and when its output is labelled).
        self._last_norm: tuple[str, str] | None = None
        # The last large text normalised, with its normal form: recording a result labels the
        # output and then indexes the same string object, which need not be normalised twice.

    def _normalized(self, text: str) -> str:
        last = self._last_norm
        if last is not None and last[0] is text:
            return last[1]
        norm = normalize(text)
        if len(text) >= _CACHED_TEXT:
            self._last_norm = (text, norm)
        return norm

    # ------------------------------------------------------------------ feeding

    def pin(self, text: str, label: Label, event_id: str) -> None:
        """A source kept for the whole session (the task, a policy constant); before any other source."""
        self.index.pin(text, label, event_id)
        self._memo.clear()
        self._raise_context(label, event_id)

    def add_source(self, text: str, label: Label, event_id: str, *, records: Sequence[tuple[int, int, Collection[str]]] = ()) -> None:
        """A text the agent read (a tool output, a user's message), labelled ``label``.

        ``records``: ``(start, end, readers)`` for each record of a list output whose records name
        different readers (``text[start:end]`` is the record). Each record is then indexed as a
        source of its own with its readers (integrity and tags are the whole label's), the text
        between records with ``label``, and the whole text in :attr:`spans` with ``label``. Records
        that overlap, fall outside the text, or would widen no reader set of ``label`` are ignored:
        the whole text is one source (fail closed)."""
        norm = self._normalized(text)
        pieces = _record_pieces(text, label, records) if records else None
        if pieces is None:
            self.index.add(norm, label, event_id, normalized=True)
        else:
            for piece, lab in pieces:
                self.index.add(piece, lab, event_id)
            self.spans.add(norm, label, event_id, normalized=True)
        self.outflow.add_source(norm, label, event_id)
        self._memo.clear()
        self._raise_context(label, event_id)

    def _raise_context(self, label: Label, event_id: str | None) -> None:
        if not label <= self.context:
            self._memo.clear()
        self.context = self.context.join(label)
        if event_id is not None and label != TRUSTED and len(self.context_sources) < self.limits.max_context_sources:
            self.context_sources.append(event_id)

    def join_context(self, label: Label) -> None:
        """Raise the context label without a source (the agent saw data the log could not hold)."""
        self._raise_context(label, None)

    def note_executed(self, args: Any, declared: Collection[str] = (), tool: str | None = None) -> None:
        """Remember the argument values of a call that ran: they are now in the world, with their labels.

        ``declared`` are the argument names the tool's policy declares; any other top-level name
        (a tool with ``additional_args: allow``) is data the caller chose, remembered like a value.
        ``tool`` names the sink: its short confidential pieces go to the outflow ledger.
        """
        for norm, lab, word in self._leaf_pieces(args, declared):
            self.taint.remember(norm, lab, word=word)
        if tool is not None and self.context.tags:
            for sink, _, piece, lab in self._short_pieces(tool, args):
                self.outflow.record(sink, piece, bool(lab.tags))

    def trace_outflow(self, tool: str, args: Any, max_chars: int | None = None) -> list[Trace]:
        """The short confidential pieces of a proposed call that would complete a run of a confidential
        source, through one sink or several, or take a sink's characters of such pieces past a multiple
        of ``max_chars`` (see :mod:`tether.flow._outflow`)."""
        if not self.context.tags or (max_chars is None and not self.outflow.active):
            return []  # nothing confidential read: no piece can spell it
        return self.outflow.trace(self._short_pieces(tool, args), max_chars)

    def _short_pieces(self, tool: str, args: Any) -> Iterator[tuple[str, str, str, Label]]:
        """``(sink, path, normalised piece, label)`` for each leaf under ``RUN`` characters (strings,
        integers), in the order of the arguments."""
        if not isinstance(args, dict):
            return
        for name, value in args.items():
            leaves: list[tuple[str, Any]] = []
            walk_leaves(value, str(name), leaves)
            for path, leaf in leaves:
                kind = type(leaf)
                if kind is str:
                    piece = normalize(leaf)
                elif kind is int:
                    piece = str(leaf)
                else:
                    continue
                if 0 < len(piece) < RUN:
                    yield f"{tool}.{name}", path, piece, self.origin(leaf).label

    def _leaf_pieces(self, args: Any, declared: Collection[str]) -> Iterator[tuple[str, Label, bool]]:
        leaves: list[tuple[str, Any]] = []
        if isinstance(args, dict):
            for name, value in args.items():
                if name not in declared:  # the policy's names are not data; any other name is
                    leaves.append((f"{{{name}}}", name))
                walk_leaves(value, str(name), leaves)
        else:
            walk_leaves(args, "", leaves)
        for _, value in leaves:
            if type(value) is str:
                label = self.origin(value).label
                if label != TRUSTED:
                    yield normalize(value), label, False
            elif _is_number(value):
                label = self.origin(value).label
                if label != TRUSTED:
                    for form in number_forms(value):
                        yield form, label, True

    # ------------------------------------------------------------------ asking

    def origin(self, value: Any) -> Origin:
        """Label of one scalar, whether a source holds it, and the evidence.

        Strings are looked up as they are (whole token sequences), numbers as whole tokens in
        any of their written forms (a trusted form wins). Values found nowhere, booleans and
        null carry the context label.
        """
        kind = type(value)
        if kind is str:
            key = (kind, value)
            memo = self._memo.get(key)
            if memo is not None:
                return memo
            match = self.index.lookup(value)
        elif kind is int or kind is float:
            key = (kind, value)
            memo = self._memo.get(key)
            if memo is not None:
                return memo
            match = _combine_forms([self.index.lookup(f, whole_word=True) for f in number_forms(value)])
        else:
            return self._origin(NOT_FOUND)
        if len(self.spans) and not match.pinned:
            match = self._across_records(value, match)
        origin = self._origin(match)
        if len(self._memo) >= 256:
            self._memo.clear()
        self._memo[key] = origin
        return origin

    def _across_records(self, value: Any, match: Match) -> Match:
        """``match`` with the whole label of each output indexed record by record in which the value
        occurs but in none of its records (it spans records, or its records could not be told
        apart): there nothing maps it to one record, so it gets the readers of every record."""
        if type(value) is str:
            whole = self.spans.lookup(value)
        else:
            whole = _combine_forms([self.spans.lookup(f, whole_word=True) for f in number_forms(value)])
        if not whole.found or set(whole.sources) <= set(match.sources):
            return match  # every output that holds it holds it inside a record: the records' readers apply
        if not match.found:
            return whole
        sources = tuple(dict.fromkeys((*match.sources, *whole.sources)))[:8]
        return Match(True, combine(match.label, whole.label), sources, match.complete and whole.complete)

    def _origin(self, match: Match) -> Origin:
        if not match.found:
            return Origin(self.context, False, tuple(self.context_sources[:8]), True)
        found = match.label
        if not match.complete:
            # A bound cut the search short: a source not searched could have added its label (its
            # tags only when a trusted source holds the value); the context label bounds them all.
            context = self.context
            found = found.join(context) if found.untrusted else found.join(label("trusted", context.tags, context.readers))
        return Origin(found, True, match.sources, False, match.pinned)

    def output_label(self, base: Label, text: str, args: Any, declared: Collection[str] = ()) -> Label:
        """The label of an output ``text`` whose policy label is ``base``, returned by a call with ``args``:
        ``base`` joined with the label of every value sent out earlier, or in ``args`` (undeclared
        top-level names included, see :meth:`note_executed`), that the text carries."""
        echoes = list(self._leaf_pieces(args, declared)) if args is not None else []
        return self.taint.taint(base, self._normalized(text), echoes, normalized=True)

    @property
    def work(self) -> int:
        """Units of work done since the tracker was created (monotonic, carried by snapshots).

        One unit is one byte of normalised text given to the index as a source (pinned or not,
        counted before any cap) or one character of a value folded into the taint memory (values
        staged count when they are folded in (fold points follow the values alone); a value skipped as
        already remembered counts nothing). Replaying events costs about as much as the work they cause, so a session that takes a
        snapshot every N units bounds what a resume replays by about N units, whatever the events."""
        return self.index.work + self.spans.work + self.taint.work + self.outflow.work

    def memory_bytes(self) -> int:
        """Approximate bytes this tracker holds (bounded by its :class:`FlowLimits`)."""
        return self.index.memory_bytes() + self.spans.memory_bytes() + self.taint.memory_bytes() + self.outflow.memory_bytes()

    # ------------------------------------------------------------------ state

    def digest(self) -> dict[str, Any]:
        """A comparable picture of the tracker (crash/resume equivalence)."""
        return {
            "context": self.context.describe(),
            "context_sources": list(self.context_sources),
            "index": self.index.digest(),
            "evicted": self.index.evicted.describe(),
            "spans": self.spans.digest(),
            # What the taint memory holds (work done is not state: a value skipped as already
            # remembered is no work in one tracker and a no-op fold in another).
            "taint": self.taint.digest(),
            "outflow": self.outflow.digest(),
        }

    def to_snapshot(self) -> dict[str, Any]:
        """The tracker as JSON-able data, bounded by its limits."""
        return {
            "version": SNAPSHOT_VERSION,
            "limits": asdict(self.limits),
            "index": self.index.to_snapshot(),
            **({"spans": self.spans.to_snapshot()} if len(self.spans) or self.spans.work else {}),
            "taint": self.taint.to_snapshot(),
            "outflow": self.outflow.to_snapshot(),
            "context": self.context.to_json(),
            "context_sources": list(self.context_sources),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> FlowTracker:
        """Rebuild a tracker from :meth:`to_snapshot`; it answers every lookup and output label as the original."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported flow snapshot version {data.get('version')!r}")
        tracker = cls(FlowLimits(**data["limits"]))
        tracker.index = ProvenanceIndex.from_snapshot(data["index"])
        if "spans" in data:  # absent: no output was indexed record by record
            tracker.spans = ProvenanceIndex.from_snapshot(data["spans"])
        tracker.taint = TaintMemory.from_snapshot(data["taint"])
        tracker.outflow = OutflowLedger.from_snapshot(data["outflow"])
        tracker.context = Label.from_json(data["context"])
        tracker._memo.clear()
        tracker.context_sources = [str(x) for x in data["context_sources"]]
        return tracker
