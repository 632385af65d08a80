"""The taint memory's compact exact tier: what it remembers, how it grows, and its snapshots."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import TRUSTED, UNTRUSTED, FlowLimits, FlowTracker, Label, label
from tether.flow._gram_table import GramTable
from tether.flow._hashing import piece_key, piece_keys
from tether.flow._normalize import normalize
from tether.flow._taint import RUN, SLOT_BYTES, TaintMemory

SECRET = label("trusted", ["secret"])
PII_UNTRUSTED = label("untrusted", ["pii"])
LABELS = [UNTRUSTED, SECRET, PII_UNTRUSTED]
# A small alphabet (with non-ASCII letters, so both hashing paths run) makes values share runs.
TEXT = st.text(alphabet="abé\u00df x1\u4e2d", min_size=0, max_size=40)
VALUE = st.text(alphabet="abé\u00df x1\u4e2d", min_size=RUN, max_size=30)


def _grams(text: str) -> set[str]:
    return {text[i : i + RUN] for i in range(len(text) - RUN + 1)}


def _reference(remembered: list[tuple[str, Label]], text: str) -> Label:
    """The rule spelled out: the join of the labels of every remembered value sharing a run with ``text``."""
    out = TRUSTED
    grams = _grams(normalize(text))
    for value, lab in remembered:
        if _grams(value) & grams:
            out = out.join(lab)
    return out


def _roundtrip(memory: TaintMemory) -> TaintMemory:
    return TaintMemory.from_snapshot(json.loads(json.dumps(memory.to_snapshot())))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(VALUE, st.sampled_from(LABELS)), max_size=12), st.lists(TEXT, max_size=6))
def test_exact_tier_answers_as_the_rule_and_survives_a_snapshot(values: list[tuple[str, Label]], outputs: list[str]) -> None:
    memory = TaintMemory(max_entries=10_000)
    remembered = []
    for value, lab in values:
        norm = normalize(value)
        if len(norm) >= RUN:
            memory.remember(norm, lab)
            remembered.append((norm, lab))
    assert memory.overflow == TRUSTED  # everything fitted: the answers are exact
    restored = _roundtrip(memory)
    assert restored.to_snapshot() == memory.to_snapshot()
    probes = outputs + [f"saved: {v}!" for v, _ in values]
    for text in probes:
        expected = _reference(remembered, text)
        assert memory.taint(TRUSTED, text) == expected, text
        assert restored.taint(TRUSTED, text) == expected, text


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(VALUE, st.sampled_from(LABELS)), min_size=1, max_size=20), st.integers(0, 40))
def test_a_full_memory_never_forgets(values: list[tuple[str, Label]], max_entries: int) -> None:
    """Whatever the limit, every value sent out taints its read-back (exactly or through the overflow)."""
    memory = TaintMemory(max_entries=max_entries, overflow_bits=1024)
    for value, lab in values:
        memory.remember(normalize(value), lab)
    assert memory.entries <= max_entries
    restored = _roundtrip(memory)
    assert restored.to_snapshot() == memory.to_snapshot()
    for value, lab in values:
        if len(normalize(value)) >= RUN:
            assert lab <= memory.taint(TRUSTED, f"note: {value}.")
            assert lab <= restored.taint(TRUSTED, f"note: {value}.")


def test_the_table_grows_keeps_every_piece_and_stays_within_its_bound() -> None:
    memory = TaintMemory(max_entries=60_000)
    values = [f"order-{i:07d}-ref" for i in range(6_000)]  # about 60,000 distinct grams, several doublings
    for value in values:
        memory.remember(normalize(value), UNTRUSTED)
    distinct = len(set().union(*(_grams(normalize(v)) for v in values)))
    assert memory.entries == distinct and memory.overflow == TRUSTED
    # The table's 10 bytes per piece, plus the small cache of values sent lately (under 64 KiB).
    assert memory.memory_bytes() <= 10 * 60_000 + 65_536
    assert all(memory.taint(TRUSTED, f"[{v}]") == UNTRUSTED for v in values[::97])
    assert memory.taint(TRUSTED, "order status: shipped, see the attached list") == TRUSTED
    assert memory.taint(TRUSTED, "order-9999999-ref") == TRUSTED  # shares only 7-character runs


def test_the_default_limits_hold_megabytes_of_text_within_64_mb() -> None:
    limits = FlowLimits()
    assert limits.max_taint_entries >= 6_000_000
    slots = TaintMemory(limits.max_taint_entries)
    assert slots.memory_bytes() < 1 << 20  # grown as needed, not allocated up front
    assert SLOT_BYTES * (limits.max_taint_entries * 5 // 4 + 1) <= 64_000_008


def test_more_labels_than_ids_only_taints_more() -> None:
    memory = TaintMemory(max_entries=100_000)
    labels = [label("untrusted", [f"tag{i}"]) for i in range(300)]
    for i, lab in enumerate(labels):
        memory.remember(normalize(f"value number {i:04d} xyz"), lab)
    restored = _roundtrip(memory)
    for i, lab in enumerate(labels):
        got = memory.taint(TRUSTED, f"read back: value number {i:04d} xyz")
        assert lab <= got and restored.taint(TRUSTED, f"read back: value number {i:04d} xyz") == got
    assert memory.taint(TRUSTED, "nothing that was sent") == TRUSTED


def test_ascii_grams_key_without_collisions_and_bulk_keys_match_the_reference() -> None:
    text = "abcdefghijklmnopqrstuvwxyz0123456789"
    keys = piece_keys(text).tolist()
    assert len(keys) == len(text) - RUN + 1 == len(set(keys))
    mixed = "naïve café menu \u4e2d\u6587 ok"
    assert piece_keys(mixed).tolist() == [piece_key(mixed[i : i + RUN]) for i in range(len(mixed) - RUN + 1)]
    assert all(0 <= k < 1 << 56 for k in piece_keys(mixed).tolist())


def test_saturation_is_recorded_and_taints_everything() -> None:
    tracker = FlowTracker(FlowLimits(max_taint_entries=100, taint_overflow_bits=1024))
    tracker.add_source("mail", UNTRUSTED, "mail")
    assert not tracker.taint.saturated and tracker.taint.saturated_at is None
    tracker.note_executed({"items": [f"value-{i:05d}-padding" for i in range(200)]})
    assert tracker.taint.saturated and tracker.taint.saturated_at == tracker.taint.entries
    assert tracker.output_label(TRUSTED, "the weather is nice", None).untrusted


def test_words_have_their_own_limit_and_spill_closed() -> None:
    tracker = FlowTracker(FlowLimits(max_taint_words=10))
    tracker.add_source("mail", UNTRUSTED, "mail")
    tracker.note_executed({"codes": [f"Q{i:02d}" for i in range(30)]})
    assert tracker.taint.entries == 10 and tracker.taint.overflow.untrusted
    assert tracker.output_label(TRUSTED, "code Q29 accepted", None).untrusted
    assert tracker.output_label(TRUSTED, "code Q03 accepted", None).untrusted


def test_many_short_values_under_one_key_are_each_held_once_with_the_join_of_their_labels() -> None:
    """Values sharing their first word (``q 1``, ``q 2``...) share a bucket: each is held once,
    a second label joins the first, and a snapshot keeps them (a value listed twice is refused)."""
    memory = TaintMemory()
    for i in range(3000):
        memory.remember(normalize(f"q {i}"), UNTRUSTED, word=True)
    memory.remember(normalize("q 7"), SECRET, word=True)
    assert memory.entries == 3000
    hit = memory.taint(TRUSTED, "see q 7 here")
    assert hit.untrusted and "secret" in hit.tags
    assert memory.taint(TRUSTED, "see q 3001 here") == TRUSTED
    snapshot = memory.to_snapshot()
    again = TaintMemory.from_snapshot(snapshot)
    assert again.digest() == memory.digest()
    assert again.taint(TRUSTED, "see q 7 here") == hit
    with pytest.raises(ValueError, match="twice"):
        TaintMemory.from_snapshot(dict(snapshot, words=[*snapshot["words"], snapshot["words"][0]]))


def test_a_tampered_snapshot_table_is_refused() -> None:
    memory = TaintMemory(max_entries=1000)
    memory.remember(normalize("GB29NWBK60161331926819 sent"), UNTRUSTED)
    assert memory.entries > 0  # reading a counter folds the staged value into the table
    snapshot = memory.to_snapshot()
    grams = snapshot["grams"]
    size = grams["slots"]
    used = np.unpackbits(np.frombuffer(base64.b64decode(grams["used"]), dtype=np.uint8), count=size).astype(bool)
    slots = np.zeros(size, dtype=np.uint64)
    slots[used] = np.frombuffer(base64.b64decode(grams["data"]), dtype="<u8")
    occupied = np.flatnonzero(slots)
    # Move one piece to a slot its lookups never reach (before its home), as a forged snapshot could.
    i = int(occupied[0])
    home = ((int(slots[i]) >> 32) * size) >> 32
    moved = slots.copy()
    moved[(home - 2) % size], moved[i] = slots[i], 0
    for bad in (moved, np.zeros(size, dtype=np.uint64)):
        mask = bad != 0
        forged_grams = dict(
            grams,
            used=base64.b64encode(np.packbits(mask).tobytes()).decode(),
            data=base64.b64encode(bad[mask].astype("<u8").tobytes()).decode(),
        )
        with pytest.raises(ValueError):
            TaintMemory.from_snapshot(dict(snapshot, grams=forged_grams))


ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_bulk_piece_keys_equal_the_per_gram_reference(text: str) -> None:
    """The vectorised keys are the plain-Python keys of each gram, in text order."""
    assert piece_keys(text).tolist() == [piece_key(text[i : i + RUN]) for i in range(len(text) - RUN + 1)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(ANY_TEXT, st.sampled_from(LABELS)), max_size=10), st.lists(ANY_TEXT, max_size=6))
def test_vectorised_table_answers_membership_as_a_set(values: list[tuple[str, Label]], probes: list[str]) -> None:
    """Every remembered gram is found with (at least) its label, and a gram never sent is absent."""
    memory = TaintMemory(max_entries=100_000)
    held: dict[int, Label] = {}
    for value, lab in values:
        if len(value) >= RUN:
            memory.remember(value, lab)
            for i in range(len(value) - RUN + 1):
                k = piece_key(value[i : i + RUN])
                held[k] = held.get(k, TRUSTED).join(lab)
    memory._fold()
    table = memory._table
    probe_keys = {piece_key(p[i : i + RUN]) for p in probes for i in range(len(p) - RUN + 1)} | set(held)
    if table is None:
        assert not held
        return
    keys = np.array(sorted(probe_keys), dtype=np.uint64)
    got = table.get(keys).tolist()
    for k, label_id in zip(keys.tolist(), got, strict=True):
        assert (label_id != 0) == (k in held)
        if label_id:
            assert memory._labels[label_id] == held[k]


def test_a_short_value_is_found_under_its_cores_key() -> None:
    """``_ab.cd`` holds the token core ``ab.cd`` (which grounds the value ``ab.cd``), though the text's
    own run of word characters is ``_ab``: the value's key ``ab`` must still find it, in a short and
    in a long output alike."""
    tracker = FlowTracker()
    tracker.pin("task", TRUSTED, "task")
    tracker.add_source("mail stuff", UNTRUSTED, "m")
    tracker.note_executed({"b": "ab.cd"}, ("b",))
    for text in ("x _ab.cd y", "x _ab.cd y " + "." * 600):
        assert tracker.output_label(TRUSTED, text, None).untrusted, len(text)


def test_a_large_lookup_through_the_bit_filter_finds_every_key_held() -> None:
    """A batch of lookups past the filter's threshold answers as key-by-key probes do, before and
    after the table grows, and at full size (where the filter is dropped)."""
    rng = np.random.default_rng(3)
    for max_slots in (1 << 20, 6000):
        table = GramTable(max_slots)
        held = rng.integers(1, 1 << 56, 2500, dtype=np.uint64)
        for part in np.array_split(held, 5):
            table.put(part, np.full(part.size, 7, dtype=np.uint8))
        assert bool(table.filter.size) == (max_slots > table.slots.size)
        probe = np.concatenate((held, rng.integers(1, 1 << 56, 20_000, dtype=np.uint64)))
        got = table.get(probe)
        assert (got[: held.size] == 7).all() and not got[held.size :].any()
        assert table.get_few(probe[:3].tolist()) == {7}
