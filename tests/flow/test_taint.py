"""The taint memory's compact exact tier: what it remembers, how it grows, and its snapshots."""

from __future__ import annotations

import base64
import json
import zlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import TRUSTED, UNTRUSTED, FlowLimits, FlowTracker, Label, label
from tether.flow._normalize import normalize
from tether.flow._taint import RUN, SLOT_BYTES, TaintMemory, gram_hashes

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
    assert memory.memory_bytes() <= 10 * 60_000 + 1024
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


def test_ascii_grams_hash_without_collisions_and_other_text_through_blake2b() -> None:
    text = "abcdefghijklmnopqrstuvwxyz0123456789"
    hashes = list(gram_hashes(text))
    assert len(hashes) == len(text) - RUN + 1 == len(set(hashes))
    mixed = "naïve café menu"
    assert list(gram_hashes(mixed)) == [next(gram_hashes(mixed[i : i + RUN])) for i in range(len(mixed) - RUN + 1)]
    assert all(0 <= h < 1 << 64 for h in gram_hashes(mixed))


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


def test_a_tampered_snapshot_table_is_refused() -> None:
    memory = TaintMemory(max_entries=1000)
    memory.remember(normalize("GB29NWBK60161331926819 sent"), UNTRUSTED)
    snapshot = memory.to_snapshot()
    slots = array("Q", zlib.decompress(base64.b64decode(snapshot["grams"]["data"])))
    occupied = [i for i, v in enumerate(slots) if v]
    # Move one piece to a slot its lookups never reach (before its home), as a forged snapshot could.
    i = occupied[0]
    home = ((slots[i] >> 32) * len(slots)) >> 32
    moved = array("Q", slots)
    moved[(home - 2) % len(slots)], moved[i] = slots[i], 0
    for bad in (moved, array("Q", bytes(8 * len(slots)))):
        forged = dict(snapshot, grams=dict(snapshot["grams"], data=base64.b64encode(zlib.compress(bad.tobytes())).decode()))
        with pytest.raises(ValueError):
            TaintMemory.from_snapshot(forged)
