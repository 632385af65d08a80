"""The tracker against a straightforward reference: same origin labels, same output labels, and a
restored tracker that answers exactly like the original (gram path and direct scan alike)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import TRUSTED, UNTRUSTED, FlowLimits, FlowTracker, Label, contains_word, label, normalize
from tether.flow import _provenance as prov
from tether.flow import _staging as staging
from tether.flow._taint import MIN_WORD, RUN
from tether.flow._tokens import find_bounded, is_core, token_cores

SECRET = label("trusted", ["secret"])
PII = label("untrusted", ["pii"])
LABELS = [TRUSTED, UNTRUSTED, SECRET, PII]
WORDS = ["alice", "Bob@X.com", "gb29nwbk6016", "4821", "pay", "rent.", "(note)", "x-1", "Straße", "ab", "1,250.00", "_ab.cd", "ab.cd"]
PHRASE = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
SOURCE = st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join), st.sampled_from(LABELS))


class Reference:
    """The rules of docs/architecture.md spelled out, with no index, bound or cache."""

    def __init__(self) -> None:
        self.sources: list[tuple[bytes, Label, bool]] = []
        self.context = TRUSTED
        self.sent: list[tuple[str, Label]] = []

    def add(self, text: str, lab: Label, pinned: bool) -> None:
        self.sources.append((normalize(text).encode("utf-8"), lab, pinned))
        self.context = self.context.join(lab)

    def origin(self, value: str) -> Label:
        norm = normalize(value)
        data = norm.encode("utf-8")
        if not norm or (len(data) < prov.MIN_GRAM_VALUE and not is_core(norm)):
            return self.context  # a short value that is not one token is found nowhere
        found = [(lab, pinned) for text, lab, pinned in self.sources if find_bounded(text, data) >= 0]
        pinned_trusted = [lab for lab, pinned in found if pinned and not lab.untrusted]
        if pinned_trusted:
            out = pinned_trusted[0]
            for lab in pinned_trusted[1:]:
                out = out.meet(lab)
            return out
        trusted = [lab for lab, _ in found if not lab.untrusted]
        chosen = trusted or [lab for lab, _ in found]
        if not chosen:
            return self.context
        out = chosen[0]
        for lab in chosen[1:]:
            out = out.join(lab)
        return out

    def leaves(self, args: dict[str, str]) -> list[tuple[str, Label]]:
        return [(normalize(v), self.origin(v)) for v in args.values() if self.origin(v) != TRUSTED]

    def carried(self, value: str, text: str) -> bool:
        if len(value) < MIN_WORD:
            return False
        if len(value) >= RUN:
            grams = {text[i : i + RUN] for i in range(len(text) - RUN + 1)}
            return any(value[i : i + RUN] in grams for i in range(len(value) - RUN + 1))
        return any(c.isalnum() or c == "_" for c in value) and (value in token_cores(text) or contains_word(text, value))

    def output(self, base: Label, text: str, args: dict[str, str]) -> Label:
        out = base
        norm = normalize(text)
        for value, lab in self.sent + self.leaves(args):
            if self.carried(value, norm):
                out = out.join(lab)
        return out


@contextmanager
def _scan_limit(limit: int, large: int = prov.LARGE_SOURCE, staged: int = staging.MAX_STAGED) -> Iterator[None]:
    saved = prov.SCAN_LIMIT, prov.LARGE_SOURCE, staging.MAX_STAGED
    prov.SCAN_LIMIT, prov.LARGE_SOURCE, staging.MAX_STAGED = limit, large, staged
    try:
        yield
    finally:
        prov.SCAN_LIMIT, prov.LARGE_SOURCE, staging.MAX_STAGED = saved


def _restored(tracker: FlowTracker) -> FlowTracker:
    data: dict[str, Any] = json.loads(json.dumps(tracker.to_snapshot()))
    return FlowTracker.from_snapshot(data)


def _outputs(probe: str) -> tuple[str, str]:
    """A short output (checked in plain Python) and a long one (checked with numpy) carrying ``probe``."""
    return f"report: {probe} done", f"report: {probe} done " + "." * (staging.SMALL_TEXT + 8)


def _check(tracker: FlowTracker, ref: Reference, probes: list[str]) -> None:
    for probe in probes:
        assert tracker.origin(probe).label == ref.origin(probe), probe
        for base in (TRUSTED, UNTRUSTED):
            args = {"to": probe}
            for text in _outputs(probe):
                assert tracker.output_label(base, text, args, ("to",)) == ref.output(base, text, args), (probe, len(text))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(SOURCE.map(lambda s: s[0]), st.just(TRUSTED)), min_size=1, max_size=3),
    st.lists(st.tuples(st.sampled_from(["source", "send"]), SOURCE), max_size=10),
    st.lists(PHRASE, min_size=1, max_size=8),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_tracker_answers_as_the_reference(
    pins: list[tuple[str, Label]],
    steps: list[tuple[str, tuple[str, Label]]],
    probes: list[str],
    grams: bool,
    arrays: bool,
    folds: bool,
) -> None:
    """``arrays``: sources of 64 bytes or more keep their token cores in the epochs' sorted core
    arrays (a small index, whose large-source threshold is a sixteenth of an epoch), the others in
    the token maps, so one epoch mixes both. ``folds``: values sent out are folded in bulk every two
    values, else they stay staged until the snapshot; outputs are labelled from the stage first,
    then (after the snapshot) from the table, and a restored tracker answers as the original."""
    with _scan_limit(0 if grams else prov.SCAN_LIMIT, 0 if arrays else prov.LARGE_SOURCE, 2 if folds else staging.MAX_STAGED):
        tracker, ref = FlowTracker(FlowLimits(max_index_chars=4096) if arrays else None), Reference()
        for i, (text, lab) in enumerate(pins):
            tracker.pin(text, lab, f"pin{i}")
            ref.add(text, lab, pinned=True)
        for i, (kind, (text, lab)) in enumerate(steps):
            if kind == "source":
                tracker.add_source(text, lab, f"e{i}")
                ref.add(text, lab, pinned=False)
            else:
                args = {"body": text}
                ref.sent += ref.leaves(args)
                tracker.note_executed(args, ("body",))
        _check(tracker, ref, probes)
        restored = _restored(tracker)  # folds the original's staged values
        for probe in probes:
            assert restored.origin(probe) == tracker.origin(probe), probe
        _check(tracker, ref, probes)
        _check(restored, ref, probes)
