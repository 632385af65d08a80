"""The flow tracker: bounded memory that only forgets conservatively, and exact snapshots."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import TRUSTED, UNTRUSTED, FlowLimits, FlowTracker, Label, join_all, label

SECRET = label("trusted", ["secret"])
PII_UNTRUSTED = label("untrusted", ["pii"])
PII_TRUSTED = label("trusted", ["pii"])
LABELS = [TRUSTED, UNTRUSTED, SECRET, PII_UNTRUSTED, PII_TRUSTED]
SMALL = FlowLimits(max_index_chars=4096, max_taint_entries=200, taint_overflow_bits=2048)
HUGE = FlowLimits(max_index_chars=1 << 30)

VOCAB = [
    "GB29NWBK60161331926819",
    "DE89370400440532013000",
    "bob@partner-firm.com",
    "alice@example.com",
    "invoice",
    "rent",
    "pay",
    "4850",
    "1200.50",
    "https://docs.example.com/guide",
    "the quarterly report",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB",
]
texts = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12).map(" ".join)
padded = st.tuples(texts, st.integers(0, 1500)).map(lambda t: t[0] + " " + "filler " * (t[1] // 7))
probes = st.one_of(st.sampled_from(VOCAB), texts, st.sampled_from([4850, 1200.5, 7, "rent pay", "GB29NWBK6016"]))


def _feed(tracker: FlowTracker, steps: list[tuple[str, Any, int]]) -> None:
    for i, (kind, payload, lab) in enumerate(steps):
        if kind == "source":
            tracker.add_source(payload, LABELS[lab], f"e{i}")
        else:
            tracker.note_executed({"v": payload})


steps = st.lists(
    st.one_of(
        st.tuples(st.just("source"), padded, st.integers(0, len(LABELS) - 1)),
        st.tuples(st.just("write"), st.one_of(texts, st.sampled_from([4850, 1200.5])), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps, st.lists(probes, min_size=1, max_size=8))
def test_forgetting_only_makes_answers_stricter(history: list[tuple[str, Any, int]], values: list[Any]) -> None:
    """Argument (module docstring of tether.flow._provenance): with sources forgotten, every label is
    at least the label the full history gives (found nowhere: the context label, the join of all; found
    in trusted sources: their tags joined with every forgotten source's tags, so a forgotten secret
    copy still counts)."""
    bounded, full = FlowTracker(SMALL), FlowTracker(HUGE)
    for tracker in (bounded, full):
        tracker.pin("Pay the rent to GB29NWBK60161331926819", TRUSTED, "task")
        _feed(tracker, history)
    assert bounded.context == full.context
    for value in values:
        strict, exact = bounded.origin(value), full.origin(value)
        assert exact.label <= strict.label, value
        if exact.found and not exact.label.untrusted and not _holds("Pay the rent to GB29NWBK60161331926819", value):
            # Trusted tags join: every trusted source that holds the value adds its tags.
            holders = [LABELS[i] for kind, text, i in history if kind == "source" and _holds(text, value)]
            assert join_all(lab for lab in holders if not lab.untrusted) <= exact.label, value
    for tracker in (bounded, full):
        # Pinned: never forgotten, and the user's own words are never made secret by another copy.
        assert tracker.origin("GB29NWBK60161331926819").label == TRUSTED


def _holds(text: str, value: Any) -> bool:
    from tether.flow import normalize, number_forms, occurs_in

    if isinstance(value, str):
        return occurs_in(normalize(text), normalize(value))
    return any(occurs_in(normalize(text), form) for form in number_forms(value))


def test_forgotten_trusted_tags_are_kept() -> None:
    tracker = FlowTracker(SMALL)
    tracker.pin("the task names 1234-5678-9999", TRUSTED, "task")
    tracker.add_source("PIN 4821 and card 1234-5678-9999", SECRET, "env")
    for i in range(10):
        tracker.add_source("filler " * 200, TRUSTED, f"f{i}")
    tracker.add_source("meeting in room 4821 about 1234-5678-9999", TRUSTED, "notes")
    assert len(tracker.index) < 12  # the secret source is gone
    assert tracker.origin("4821").label == SECRET
    assert tracker.origin(4821).label == SECRET
    assert tracker.origin("1234-5678-9999").label == TRUSTED  # the task names it


def test_undeclared_argument_names_are_remembered_declared_ones_are_not() -> None:
    tracker = FlowTracker()
    tracker.pin("pay rent", TRUSTED, "task")
    tracker.add_source("mail: DE44500105175407324931 and the word recipient", UNTRUSTED, "mail")
    tracker.note_executed({"recipient": "rent", "DE44500105175407324931": True}, declared={"recipient"})
    assert tracker.output_label(TRUSTED, "fields: DE44500105175407324931", None) == UNTRUSTED
    assert tracker.output_label(TRUSTED, "recipient: rent", None) == TRUSTED  # the policy's name, a trusted value
    # Without declared names every top-level name is data.
    other = FlowTracker()
    other.add_source("mail: recipient", UNTRUSTED, "mail")
    other.note_executed({"recipient": "rent"})
    assert other.output_label(TRUSTED, "recipient: rent", None) == UNTRUSTED
    # An output echoing an undeclared name of its own call carries that name's label.
    assert tracker.output_label(TRUSTED, "stored mail:", {"mail": True}, declared=()) == UNTRUSTED


def test_forgotten_untrusted_tags_are_kept() -> None:
    tracker = FlowTracker(SMALL)
    tracker.add_source("leaked card 4111-1111-1111-1111", PII_UNTRUSTED, "old")
    for i in range(10):
        tracker.add_source("filler " * 200, UNTRUSTED, f"f{i}")
    tracker.add_source("spam mentions 4111-1111-1111-1111", UNTRUSTED, "new")
    assert len(tracker.index) < 12  # the old source is gone
    assert tracker.origin("4111-1111-1111-1111").label == PII_UNTRUSTED


def test_index_memory_is_bounded() -> None:
    tracker = FlowTracker(FlowLimits(max_index_chars=256 * 1024))
    tracker.pin("task GB29NWBK60161331926819", TRUSTED, "task")
    for i in range(600):
        tracker.add_source(f"page {i} " + "word " * 200 + f"id-{i:06d}", UNTRUSTED if i % 2 else TRUSTED, f"e{i}")
        assert tracker.index.chars <= 256 * 1024 + 2000
    tracker.origin("word word word")  # builds the gram index
    grams = tracker.index._grams
    assert grams is not None
    entries = grams.size
    assert int(grams.count.sum()) == entries
    assert entries <= (256 * 1024 + 2000) // 3 + 100
    assert tracker.origin("id-000599").label == UNTRUSTED
    assert tracker.origin("id-000598").label == TRUSTED
    assert tracker.origin("id-000001").inherited  # forgotten: found nowhere, context label
    assert tracker.origin("GB29NWBK60161331926819").label == TRUSTED


def test_taint_memory_overflow_is_remembered() -> None:
    tracker = FlowTracker(SMALL)
    tracker.add_source("mail", UNTRUSTED, "mail")
    tracker.note_executed({"items": [f"value-{i:05d}-xyz" for i in range(100)]})
    assert tracker.taint.entries <= 200 and tracker.taint.overflow == UNTRUSTED
    assert tracker.output_label(TRUSTED, "list: value-00099-xyz", None) == UNTRUSTED


def _same_answers(a: FlowTracker, b: FlowTracker, values: list[Any], outputs: list[tuple[int, str, Any]]) -> None:
    for value in values:
        assert a.origin(value) == b.origin(value), value
    for base, text, args in outputs:
        assert a.output_label(LABELS[base], text, args) == b.output_label(LABELS[base], text, args)


outputs = st.lists(
    st.tuples(st.integers(0, len(LABELS) - 1), padded, st.one_of(st.none(), st.fixed_dictionaries({"q": texts}))), max_size=5
)


@settings(max_examples=150, deadline=None)
@given(steps, st.lists(probes, min_size=1, max_size=8), outputs, steps)
def test_snapshot_restores_exact_answers(
    history: list[tuple[str, Any, int]], values: list[Any], outs: list[tuple[int, str, Any]], more: list[tuple[str, Any, int]]
) -> None:
    original = FlowTracker(SMALL)
    original.pin("Pay the rent to GB29NWBK60161331926819", TRUSTED, "task")
    _feed(original, history)
    data = json.loads(json.dumps(original.to_snapshot()))
    restored = FlowTracker.from_snapshot(data)
    _same_answers(original, restored, values, outs)
    assert restored.to_snapshot() == data
    # And they stay equal as the session goes on.
    _feed(original, more)
    _feed(restored, more)
    _same_answers(original, restored, values, outs)
    assert restored.digest() == original.digest()


def test_snapshot_is_bounded_by_the_limits() -> None:
    limits = FlowLimits(max_index_chars=32 * 1024, max_taint_entries=1000, taint_overflow_bits=1 << 16)
    tracker = FlowTracker(limits)
    for i in range(300):
        tracker.add_source("word " * 200 + str(i), UNTRUSTED, f"e{i}")
        tracker.note_executed({"body": f"message number {i} and its reference REF-{i:08d}"})
    assert tracker.taint.overflow == UNTRUSTED  # the filter is in the snapshot too
    size = len(json.dumps(tracker.to_snapshot()))
    assert size < 32 * 1024 * 2 + 1000 * 40 + limits.taint_overflow_bits // 6 + 10_000


def test_snapshot_rejects_another_version() -> None:
    data = FlowTracker().to_snapshot()
    data["version"] = 99
    try:
        FlowTracker.from_snapshot(data)
    except ValueError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("accepted an unknown snapshot version")


def test_limits_are_validated() -> None:
    for bad in ({"max_index_chars": 10}, {"taint_overflow_bits": 1000}, {"max_taint_entries": -1}):
        try:
            FlowLimits(**bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_origin_says_when_the_label_is_inherited() -> None:
    tracker = FlowTracker()
    tracker.pin("pay GB29NWBK60161331926819", TRUSTED, "task")
    tracker.add_source("spam XX11ATTACKER", UNTRUSTED, "mail")
    found = tracker.origin("XX11ATTACKER")
    assert found.found and not found.inherited and found.sources == ("mail",)
    made_up = tracker.origin("ZZ99NOWHERE000")
    assert not made_up.found and made_up.inherited and made_up.label == UNTRUSTED and made_up.sources == ("mail",)
    assert tracker.origin(True).inherited
    assert isinstance(tracker.origin(None).label, Label)


def test_snapshot_of_a_large_index_answers_as_the_original() -> None:
    """Past the direct-scan limit (gram index built, epochs forgotten) a restored tracker still agrees."""
    original = FlowTracker(FlowLimits(max_index_chars=256 * 1024, max_taint_entries=500, taint_overflow_bits=4096))
    original.pin("Pay the rent to GB29NWBK60161331926819", TRUSTED, "task")
    values: list[Any] = []
    for i in range(700):
        ident = f"ID{i:05d}-{i * 7919 % 100000:05d}"
        values += [ident, f"{ident} word word", i * 13]
        original.add_source(f"entry {ident} " + "word " * 150 + f"amount {i * 13}", LABELS[i % len(LABELS)], f"e{i}")
        if i % 5 == 0:
            original.note_executed({"body": f"reply about {ident} and more", "n": i * 13})
    original.origin("word word word")  # the gram index is built lazily; the restored one builds its own
    restored = FlowTracker.from_snapshot(json.loads(json.dumps(original.to_snapshot())))
    _same_answers(original, restored, values, [(0, f"echo {v}", None) for v in values[::7]])
