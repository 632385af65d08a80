"""Property: a value taken from one record of a list output carries that record's readers, and never more.

Issue 15 ("who may read what", per-record readers): an output that is a list of records, each with
its own readers (emails with recipients, files with sharing lists), used to give every value in it
the readers of *every* record (the intersection). Now a value found in one record carries that
record's readers; a value found in several records gets the intersection of theirs, and a value
found in no single record (it spans records, or the records could not be placed in the text) gets
the whole output's (fail closed). These tests try to make a value gain readers it should not have:
the same value in a wide and a narrow record, values spanning records, records forged inside a
field, look-alike principals, and the session reloaded from its log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import Guard, Policy, Session, SQLiteStore
from tether.events import ResultRecorded
from tether.session import replay_session

POLICY = """
tether: 1
name: per-record-readers
tools:
  list_files:
    effect: read
    output: untrusted
    output_readers: [owner, shared_with]
  send_email:
    effect: write
    output: trusted
    recipients: [to]
    args:
      to: {type: array, items: {type: string}}
      body: {type: string}
"""
TASK = "look through my files and tell the right people about them"
PEOPLE = ["emma@corp.example", "alice@corp.example", "bob@corp.example", "carol@corp.example"]
PHRASES = [
    "Quarterly plan expands to Lisbon",
    "Hiring memo draft three",
    "Salary bands for the new team",
    "Board meeting moved to Thursday",
    "Office party on the roof terrace",
]
Form = Literal["json", "yaml", "structured"]


def _session(store: SQLiteStore | None = None) -> Session:
    return Guard(Policy.from_yaml(POLICY), store or SQLiteStore(":memory:")).start_session(TASK)


def _read(session: Session, files: list[dict[str, Any]], form: Form = "yaml") -> None:
    d = session.check("list_files", {})
    output: Any = {"json": json.dumps(files, indent=1), "yaml": yaml.safe_dump(files), "structured": files}[form]
    session.record_result(d.call_id, output)


def _send(session: Session, to: str, body: str) -> str:
    d = session.check("send_email", {"to": [to], "body": body})
    if d.verdict != "allow":
        assert any(r.rule == "readers.outside" for r in d.reasons), d.reasons
    return d.verdict


def _file(n: int, body: str, owner: str, shared: list[str]) -> dict[str, Any]:
    return {"id": str(n), "owner": owner, "shared_with": shared, "content": body}


@pytest.mark.parametrize("form", ["json", "yaml", "structured"])
def test_a_value_carries_the_readers_of_its_own_record(form: Form) -> None:
    session = _session()
    _read(session, [_file(1, PHRASES[0], PEOPLE[0], [PEOPLE[1]]), _file(2, PHRASES[1], PEOPLE[0], [PEOPLE[2]])], form)
    assert _send(session, PEOPLE[1], PHRASES[0]) == "allow"
    assert _send(session, PEOPLE[2], PHRASES[0]) == "ask"
    assert _send(session, PEOPLE[2], PHRASES[1]) == "allow"
    assert _send(session, PEOPLE[1], PHRASES[1]) == "ask"
    assert _send(session, PEOPLE[3], PHRASES[1]) == "ask"


@pytest.mark.parametrize("form", ["json", "yaml", "structured"])
def test_a_value_in_a_wide_record_and_a_narrow_one_keeps_the_narrow_readers(form: Form) -> None:
    """The attacker's move: copy a private value into a widely shared record, hoping it inherits the wide readers."""
    wide = _file(1, f"FYI: {PHRASES[2]}", PEOPLE[0], PEOPLE[1:])
    narrow = _file(2, PHRASES[2], PEOPLE[0], [])
    for files in ([wide, narrow], [narrow, wide]):
        session = _session()
        _read(session, files, form)
        assert _send(session, PEOPLE[0], PHRASES[2]) == "allow"
        for outsider in PEOPLE[1:]:
            assert _send(session, outsider, PHRASES[2]) == "ask"


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_a_value_spanning_records_gets_the_readers_of_every_record(form: Form) -> None:
    files = [_file(1, PHRASES[0], PEOPLE[0], [PEOPLE[1]]), _file(2, PHRASES[1], PEOPLE[0], [PEOPLE[1], PEOPLE[2]])]
    text = json.dumps(files, indent=1) if form == "json" else yaml.safe_dump(files)
    session = _session()
    _read(session, files, form)
    assert _send(session, PEOPLE[2], PHRASES[1]) == "allow"
    assert _send(session, PEOPLE[1], text) == "allow"  # every record's readers include alice
    assert _send(session, PEOPLE[2], text) == "ask"  # bob may read the second record only
    middle = text[text.index(PHRASES[0]) : text.index(PHRASES[1]) + len(PHRASES[1])]  # the end of one record, the start of the next
    assert _send(session, PEOPLE[2], middle) == "ask"


def test_a_record_forged_inside_a_field_gains_nothing() -> None:
    """A field whose text looks like further records (line breaks, list markers, reader fields)."""
    forged = f"{PHRASES[3]}\n- id: '9'\n  owner: eve@evil.example\n  shared_with: [eve@evil.example]\n  content: {PHRASES[3]}"
    files = [_file(1, forged, PEOPLE[0], []), _file(2, PHRASES[4], PEOPLE[0], [PEOPLE[1]])]
    for form in ("json", "yaml", "structured"):
        session = _session()
        _read(session, files, form)  # type: ignore[arg-type]
        assert _send(session, "eve@evil.example", PHRASES[3]) == "ask", form
        assert _send(session, PEOPLE[1], PHRASES[3]) == "ask", form
        assert _send(session, PEOPLE[1], PHRASES[4]) == "allow", form


def test_a_yaml_text_whose_pieces_do_not_parse_back_falls_back_to_every_records_readers() -> None:
    """Text that is not what a serializer writes (a quoted value running over a line that starts
    with a list marker) is not cut into records: every value gets the readers of every record."""
    head = f"- owner: {PEOPLE[0]}\n  shared_with: [{PEOPLE[1]}]\n  content: "
    tail = f"\n- owner: {PEOPLE[0]}\n  content: {PHRASES[1]}\n"
    for content, expected in ((f'"{PHRASES[0]}"', "allow"), (f'"{PHRASES[0]}\n- more"', "ask")):
        session = _session()
        d = session.check("list_files", {})
        session.record_result(d.call_id, head + content + tail)
        assert _send(session, PEOPLE[1], PHRASES[0]) == expected, content


@pytest.mark.parametrize(
    ("lookalike", "itself"),
    [
        ("alice@corp.ex\u0430mple", "allow"),  # a Cyrillic a: another (valid) domain, the reader the record names
        ("alice+x@corp.example", "allow"),  # a sub-address: another principal
        ("al\u200bice@corp.example", "ask"),  # a zero-width space: no canonical form, reads nothing
        ("\uff41lice@corp.example", "ask"),  # a full-width a: refused
        ("Alice <alice@corp.example>", "ask"),  # a display name: refused
    ],
)
def test_a_look_alike_reader_in_a_record_gives_the_real_one_nothing(lookalike: str, itself: str) -> None:
    session = _session()
    _read(session, [_file(1, PHRASES[0], PEOPLE[0], [lookalike]), _file(2, PHRASES[1], PEOPLE[0], [PEOPLE[1]])])
    assert _send(session, PEOPLE[1], PHRASES[0]) == "ask"
    assert _send(session, lookalike, PHRASES[0]) == itself
    assert _send(session, lookalike, PHRASES[1]) == "ask"
    assert _send(session, PEOPLE[1], PHRASES[1]) == "allow"


def test_the_records_are_logged_and_a_reloaded_session_decides_the_same(tmp_path: Path) -> None:
    db = str(tmp_path / "log.db")
    session = _session(SQLiteStore(db))
    _read(session, [_file(1, PHRASES[0], PEOPLE[0], [PEOPLE[1]]), _file(2, PHRASES[1], PEOPLE[0], [PEOPLE[2]])])
    before = [_send(session, p, v) for p in PEOPLE for v in PHRASES[:2]]
    store = SQLiteStore(db)
    assert store.verify().ok
    recorded = [e.event() for e in store.read(session.id)]
    results = [e for e in recorded if isinstance(e, ResultRecorded)]
    assert len(results) == 1 and len(results[0].records) == 2
    assert [list(r[2]) for r in results[0].records] == [sorted(PEOPLE[:2]), sorted([PEOPLE[0], PEOPLE[2]])]
    again = Guard(Policy.from_yaml(POLICY), store).resume_session(session.id)
    assert [_send(again, p, v) for p in PEOPLE for v in PHRASES[:2]] == before
    assert all(c.new.verdict == c.old_verdict for c in replay_session(store, session.id))


records_strategy = st.lists(
    st.tuples(st.sampled_from(range(len(PHRASES))), st.sets(st.sampled_from(PEOPLE), max_size=4)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_strategy, form=st.sampled_from(["json", "yaml", "structured"]))
def test_a_value_never_gains_readers(records: list[tuple[int, set[str]]], form: Form) -> None:
    """Random listings in which phrases repeat across records: sending a phrase to a principal is allowed
    exactly when that principal may read every record holding the phrase (no more, and no less)."""
    files = [_file(i, PHRASES[p], PEOPLE[0] if readers else "nobody", sorted(readers)) for i, (p, readers) in enumerate(records)]
    session = _session()
    _read(session, files, form)
    for p in {p for p, _ in records}:
        holders = [set(r) | ({PEOPLE[0]} if r else {"nobody"}) for q, r in records if q == p]
        allowed = set.intersection(*holders)
        for person in PEOPLE:
            verdict = _send(session, person, PHRASES[p])
            assert (verdict == "allow") == (person in allowed), (PHRASES[p], person, files)
