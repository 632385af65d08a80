"""Lattice laws of labels, checked by hypothesis."""

from hypothesis import given
from hypothesis import strategies as st

from tether.flow import TRUSTED, UNTRUSTED, Label, join_all, label

labels = st.builds(
    label,
    st.sampled_from(["trusted", "untrusted"]),
    st.frozensets(st.sampled_from(["secret", "pii", "finance", "health"]), max_size=4),
)


@given(labels, labels)
def test_join_commutative(a: Label, b: Label) -> None:
    assert a.join(b) == b.join(a)


@given(labels, labels, labels)
def test_join_associative(a: Label, b: Label, c: Label) -> None:
    assert a.join(b).join(c) == a.join(b.join(c))


@given(labels)
def test_join_idempotent(a: Label) -> None:
    assert a.join(a) == a


@given(labels, labels)
def test_join_is_least_upper_bound(a: Label, b: Label) -> None:
    j = a.join(b)
    assert a <= j and b <= j


@given(labels, labels, labels)
def test_join_least(a: Label, b: Label, c: Label) -> None:
    if a <= c and b <= c:
        assert a.join(b) <= c


@given(labels, labels)
def test_meet_is_greatest_lower_bound(a: Label, b: Label) -> None:
    m = a.meet(b)
    assert m <= a and m <= b


@given(labels, labels, labels)
def test_meet_greatest(a: Label, b: Label, c: Label) -> None:
    if c <= a and c <= b:
        assert c <= a.meet(b)


@given(labels, labels)
def test_absorption(a: Label, b: Label) -> None:
    assert a.join(a.meet(b)) == a
    assert a.meet(a.join(b)) == a


@given(labels, labels)
def test_order_antisymmetric(a: Label, b: Label) -> None:
    if a <= b and b <= a:
        assert a == b


@given(labels, labels, labels)
def test_order_transitive(a: Label, b: Label, c: Label) -> None:
    if a <= b and b <= c:
        assert a <= c


@given(labels)
def test_bottom(a: Label) -> None:
    assert a >= TRUSTED
    assert TRUSTED.join(a) == a


@given(labels)
def test_json_round_trip(a: Label) -> None:
    assert Label.from_json(a.to_json()) == a


@given(st.lists(labels, max_size=6))
def test_join_all_bounds_every_element(items: list[Label]) -> None:
    top = join_all(items)
    assert all(x <= top for x in items)


def test_untrusted_is_above_trusted() -> None:
    assert TRUSTED < UNTRUSTED
    assert not UNTRUSTED <= TRUSTED
    assert label("trusted", ["secret"]).join(UNTRUSTED).describe() == "untrusted+secret"
