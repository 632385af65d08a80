"""Per-record readers in the flow layer: an output cut into records, each a source with its own readers."""

import json

import pytest
import yaml

from tether.flow import FlowTracker, label
from tether.monitor._readers import MAX_RECORDS, record_spans
from tether.policy import Policy

WHOLE = label("untrusted", ("pii",), ["a@x.com"])
TEXT = "- body: alpha bravo\n  to: [a@x.com, b@x.com]\n- body: charlie delta\n  to: [a@x.com, c@x.com]\n"
CUT = TEXT.index("- body: charlie")
RECORDS = [(0, CUT, ("a@x.com", "b@x.com")), (CUT, len(TEXT), ("a@x.com", "c@x.com"))]


def _tracker(records: object = RECORDS, text: str = TEXT) -> FlowTracker:
    tracker = FlowTracker()
    tracker.pin("the task", label("trusted"), "task")
    tracker.add_source(text, WHOLE, "e1", records=records)  # type: ignore[arg-type]
    return tracker


def test_each_record_is_a_source_with_its_readers_and_the_whole_label_otherwise() -> None:
    tracker = _tracker()
    assert tracker.origin("alpha bravo").label == label("untrusted", ("pii",), ["a@x.com", "b@x.com"])
    assert tracker.origin("charlie delta").label == label("untrusted", ("pii",), ["a@x.com", "c@x.com"])
    assert tracker.origin("a@x.com").label == WHOLE  # in both records: the readers of both
    spanning = tracker.origin("alpha bravo to: [a@x.com, b@x.com] - body: charlie")
    assert spanning.found and not spanning.inherited and spanning.label == WHOLE
    assert tracker.context == WHOLE and tracker.origin("zulu").inherited


@pytest.mark.parametrize(
    "records",
    [
        [(0, CUT + 5, ("a@x.com", "b@x.com")), (CUT, len(TEXT), ("a@x.com", "c@x.com"))],  # overlapping
        [(0, CUT, ("a@x.com", "b@x.com")), (CUT, len(TEXT) + 1, ("a@x.com", "c@x.com"))],  # past the end
        [(0, CUT, ("b@x.com",)), (CUT, len(TEXT), ("a@x.com", "c@x.com"))],  # drops a reader of the whole
        [(CUT, len(TEXT), ("a@x.com", "c@x.com")), (0, CUT, ("a@x.com", "b@x.com"))],  # out of order
    ],
)
def test_records_that_cannot_cut_the_text_are_ignored(records: list[tuple[int, int, tuple[str, ...]]]) -> None:
    tracker = _tracker(records)
    assert tracker.origin("alpha bravo").label == WHOLE
    assert tracker.origin("charlie delta").label == WHOLE


def test_a_snapshot_answers_as_the_original() -> None:
    tracker = _tracker()
    again = FlowTracker.from_snapshot(json.loads(json.dumps(tracker.to_snapshot())))
    for value in ("alpha bravo", "charlie delta", "a@x.com", "bravo to: [a@x.com, b@x.com] - body: charlie", "zulu"):
        assert again.origin(value) == tracker.origin(value)
    assert again.digest() == tracker.digest()
    plain = FlowTracker()
    assert "spans" not in plain.to_snapshot()  # a session without such outputs keeps its snapshot form


POLICY = Policy.from_yaml(
    "tether: 1\nname: r\ntools:\n  mail: {effect: read, output: trusted, output_readers: [to]}\n  plain: {effect: read, output: trusted}\n"
)
MAIL = POLICY.tools["mail"]


def test_record_spans_of_yaml_json_and_structured_outputs() -> None:
    data = yaml.safe_load(TEXT)
    expected = tuple((s, e, frozenset(r)) for s, e, r in RECORDS)
    assert record_spans(MAIL, TEXT, error=False) == expected
    text = json.dumps(data)
    spans = record_spans(MAIL, text, error=False)
    assert [json.loads(text[s:e]) for s, e, _ in spans] == data
    assert [r for _, _, r in spans] == [r for _, _, r in expected]
    from tether._json import output_text

    flat = output_text(data)
    assert [r for _, _, r in record_spans(MAIL, flat, error=False, data=data)] == [r for _, _, r in expected]
    assert record_spans(MAIL, flat, error=False) == ()  # Tether's flattened text is never parsed for records


@pytest.mark.parametrize(
    "text",
    [
        TEXT.replace("c@x.com", "b@x.com"),  # every record names the same readers: nothing to refine
        "- body: one record\n  to: [a@x.com]\n",
        '{"body": "not a list", "to": ["a@x.com"]}',
        "[1, 2,]",  # not JSON
        '[{"to": ["a@x.com"]}, {"to": ["b@x.com"]}] trailing',
        '- to: [a@x.com]\n  body: "x\n- to: [b@x.com]"\n- to: [c@x.com]\n',  # a piece does not parse back to its record
    ],
)
def test_record_spans_fall_back_to_the_whole_output(text: str) -> None:
    assert record_spans(MAIL, text, error=False) == ()


def test_record_spans_need_reader_fields_a_clean_output_and_a_bounded_count() -> None:
    assert record_spans(POLICY.tools["plain"], TEXT, error=False) == ()
    assert record_spans(MAIL, TEXT, error=True) == ()
    many = [{"to": [f"u{i}@x.com"]} for i in range(MAX_RECORDS + 1)]
    assert record_spans(MAIL, json.dumps(many), error=False) == ()


def test_adjacent_records_with_the_same_readers_are_one_source() -> None:
    text = TEXT + "- body: echo foxtrot\n  to: [a@x.com, c@x.com]\n"
    records = [*RECORDS[:1], (CUT, len(TEXT), RECORDS[1][2]), (len(TEXT), len(text), RECORDS[1][2])]
    tracker = _tracker(records, text)
    assert len(tracker.index) == 3  # the task, the first record, the two others together
    across = tracker.origin("charlie delta to: [a@x.com, c@x.com] - body: echo")
    assert across.label == label("untrusted", ("pii",), ["a@x.com", "c@x.com"])  # both records' readers: the same
    assert tracker.origin("bravo to: [a@x.com, b@x.com] - body: charlie").label == WHOLE
