"""The outflow ledger: what it keeps (bounded), what it traces, and that snapshots reproduce it."""

from __future__ import annotations

import json
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import TRUSTED, FlowTracker, label
from tether.flow._outflow import MAX_SINKS, SESSION_PIECES, SINK_PIECES, OutflowLedger, stripped

SECRET = label("trusted", ["secret"])


def _tracker() -> FlowTracker:
    tracker = FlowTracker()
    tracker.pin("help me", TRUSTED, "task")
    tracker.add_source("the vault code is zebra-quokka-4471", SECRET, "e-secret")
    return tracker


def test_untagged_sources_are_not_remembered() -> None:
    ledger = OutflowLedger()
    ledger.add_source("plain text of a trusted file", TRUSTED, "e1")
    ledger.add_source("an email from someone", label("untrusted"), "e2")
    assert not ledger.active and ledger.trace([("t.a", "a", "plain te")]) == []


def test_pieces_spell_a_run_and_the_trace_cites_the_source() -> None:
    tracker = _tracker()
    for piece in ["ze", "br", "a-"]:
        assert tracker.trace_outflow("search", {"q": piece}) == []
        tracker.note_executed({"q": piece}, ("q",), "search")
    (trace,) = tracker.trace_outflow("search", {"q": "qu"})
    assert trace.sink == "search.q" and trace.path == "q" and "secret" in trace.label.tags
    assert trace.sources == ("e-secret",) and not trace.across


def test_short_pieces_are_kept_with_whether_they_are_tagged() -> None:
    tracker = _tracker()
    tracker.add_source("order 4471 dated 2024-05-01", TRUSTED, "e-orders")
    tracker.note_executed({"q": "4471", "n": 3, "long": "a value of many characters"}, ("q", "n", "long"), "t")
    assert tracker.outflow.sinks["t.n"] == deque([("3", True)])  # made up: inherits the secret context
    assert tracker.outflow.sinks["t.q"] == deque([("4471", False)])  # found in untagged data
    assert "t.long" not in tracker.outflow.sinks  # long values are traced on their own
    assert tracker.outflow.volume == {"t.n": 1}


def test_the_volume_limit_asks_for_pieces_that_spell_nothing() -> None:
    tracker = _tracker()
    for i in range(9):
        assert tracker.trace_outflow("t", {"a": f"x{i}"}, max_chars=20) == []
        tracker.note_executed({"a": f"x{i}"}, ("a",), "t")
    (trace,) = tracker.trace_outflow("t", {"a": "yy"}, max_chars=20)
    assert trace.volume == 20 and "secret" in trace.label.tags


def test_memory_is_bounded_over_a_long_session() -> None:
    """A week of calls: at most MAX_SINKS rings of SINK_PIECES pieces, and SESSION_PIECES in the session ring."""
    tracker = _tracker()
    for i in range(5000):
        tracker.note_executed({f"a{i % 97}": f"v{i % 13}"}, (), f"tool{i % 31}")
    ledger = tracker.outflow
    assert len(ledger.sinks) == MAX_SINKS
    assert all(len(ring) <= SINK_PIECES for ring in ledger.sinks.values())
    assert len(ledger.session) == SESSION_PIECES
    assert set(ledger.volume) <= set(ledger.sinks)
    assert ledger.memory_bytes() < 1_000_000


def test_stripped_keeps_letters_and_digits() -> None:
    assert stripped("a-b c.d_1é") == "abcd1é"


_pieces = st.lists(
    st.tuples(st.sampled_from(["search", "post"]), st.sampled_from(["q", "text"]), st.text("zebraquokka4471-. ", min_size=1, max_size=4)),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(before=_pieces, after=_pieces)
def test_snapshot_reproduces_the_ledger_and_its_answers(before: list[tuple[str, str, str]], after: list[tuple[str, str, str]]) -> None:
    tracker = _tracker()
    for tool, arg, value in before:
        tracker.note_executed({arg: value}, (arg,), tool)
    restored = FlowTracker.from_snapshot(json.loads(json.dumps(tracker.to_snapshot())))
    assert restored.digest() == tracker.digest()
    for tool, arg, value in after:
        assert restored.trace_outflow(tool, {arg: value}) == tracker.trace_outflow(tool, {arg: value})
        tracker.note_executed({arg: value}, (arg,), tool)
        restored.note_executed({arg: value}, (arg,), tool)
    assert restored.digest() == tracker.digest()
