"""Readers on labels: lattice laws with the readers dimension, propagation through the tracker, canonical principals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tether.flow import TRUSTED, FlowTracker, Label, canonical_principal, canonical_readers, label

PEOPLE = ["a@x.com", "b@x.com", "c@y.org", "dave"]
labels = st.builds(
    label,
    st.sampled_from(["trusted", "untrusted"]),
    st.frozensets(st.sampled_from(["secret", "pii"]), max_size=2),
    st.one_of(st.none(), st.frozensets(st.sampled_from(PEOPLE), max_size=4)),
)


@given(labels, labels, labels)
def test_join_and_meet_laws(a: Label, b: Label, c: Label) -> None:
    assert a.join(b) == b.join(a) and a.meet(b) == b.meet(a)
    assert a.join(b).join(c) == a.join(b.join(c))
    assert a.meet(b).meet(c) == a.meet(b.meet(c))
    assert a <= a.join(b) and b <= a.join(b)
    assert a.meet(b) <= a and a.meet(b) <= b
    if a <= c and b <= c:
        assert a.join(b) <= c
    if c <= a and c <= b:
        assert c <= a.meet(b)
    assert a.join(a.meet(b)) == a  # absorption
    assert a >= TRUSTED


@given(labels)
def test_json_round_trip(a: Label) -> None:
    assert Label.from_json(a.to_json()) == a


def test_join_intersects_readers_and_none_is_anyone() -> None:
    ab = label("trusted", (), ["a@x.com", "b@x.com"])
    bc = label("trusted", (), ["b@x.com", "c@y.org"])
    assert ab.join(bc).readers == frozenset({"b@x.com"})
    assert ab.meet(bc).readers == frozenset({"a@x.com", "b@x.com", "c@y.org"})
    assert ab.join(TRUSTED) == ab and ab.meet(TRUSTED) == TRUSTED
    assert label("trusted", (), []) > ab  # nobody may read: the most restrictive
    assert "readers(a@x.com,b@x.com)" in ab.describe()
    assert TRUSTED.to_json() == {"integrity": "trusted", "tags": []}  # old events read the same


def test_a_value_in_two_sources_gets_common_readers_and_the_context_holds_them() -> None:
    tracker = FlowTracker()
    tracker.pin("send the plan to ops@partner.example", TRUSTED, "task")
    tracker.add_source("plan: expand-to-lisbon-2027", label("trusted", (), ["a@x.com", "b@x.com"]), "e1")
    tracker.add_source("copy: expand-to-lisbon-2027", label("trusted", (), ["b@x.com", "c@y.org"]), "e2")
    origin = tracker.origin("expand-to-lisbon-2027")
    assert origin.label.readers == frozenset({"b@x.com"}) and origin.sources
    assert tracker.context.readers == frozenset({"b@x.com"})
    assert tracker.origin("made up text").label.readers == frozenset({"b@x.com"})  # inherited
    named = tracker.origin("ops@partner.example")
    assert named.pinned and named.label.readers is None  # the user's own words restrict nobody


def test_untrusted_copies_do_not_widen_or_narrow_a_trusted_value() -> None:
    tracker = FlowTracker()
    tracker.add_source("key: expand-to-lisbon-2027", label("trusted", (), ["a@x.com"]), "e1")
    tracker.add_source("spam: expand-to-lisbon-2027", label("untrusted", (), ["eve@evil.example"]), "e2")
    assert tracker.origin("expand-to-lisbon-2027").label.readers == frozenset({"a@x.com"})


@given(st.text(max_size=40))
def test_canonical_form_is_idempotent_and_plain(text: str) -> None:
    canon = canonical_principal(text)
    if canon is not None:
        assert canonical_principal(canon) == canon
        assert canon.isascii() and canon == canon.lower() and canon.isprintable()


@given(st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]@[a-z]{1,8}\.(com|org|de)", fullmatch=True), st.data())
def test_case_and_trailing_dot_are_one_reader(address: str, data: st.DataObject) -> None:
    if ".." in address:
        return
    flips = data.draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    shown = "".join(ch.upper() if f else ch for ch, f in zip(address, flips, strict=True))
    assert canonical_principal(shown) == canonical_principal(address + ".") == address


def test_idna_forms_are_one_reader_and_lookalikes_are_not() -> None:
    assert canonical_principal("Bob@Bücher.DE") == canonical_principal("bob@xn--bcher-kva.de") == "bob@xn--bcher-kva.de"
    assert canonical_principal("bob@exаmple.com") != canonical_principal("bob@example.com")  # Cyrillic а
    for refused in ["ｂｏｂ@x.com", "bob\u200b@x.com", "bob@x\u3002com", "Bob <bob@x.com>", "", "a@b@c", "bob@xn--zz.com", "é@x.com"]:
        assert canonical_principal(refused) is None, refused
    assert canonical_principal("bob+tag@x.com") == "bob+tag@x.com" != canonical_principal("bob@x.com")


def test_canonical_readers_drops_refused_and_is_bounded() -> None:
    assert canonical_readers(["A@x.com", "a@X.com", "bob\u200b@x.com", 3, None]) == frozenset({"a@x.com"})
    many = canonical_readers(f"user{i:05d}@x.com" for i in range(5000))
    assert len(many) == 1024
