"""The canonical JSON helpers: the fast path for flat arguments gives exactly what the full conversion gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tether._json import _convert, jsonsafe_exact

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="ascii"), max_size=20),
    st.binary(max_size=4),
)


@given(st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), SCALARS, max_size=6))
def test_the_flat_fast_path_agrees_with_the_full_conversion(args: dict[Any, Any]) -> None:
    lost: list[str] = []
    expected = _convert(args, 64, set(), lost)
    safe, what = jsonsafe_exact(args)
    assert safe == expected
    assert what == (lost[0] if lost else None)


def test_the_fast_path_copies() -> None:
    args = {"to": "a@b.example", "n": 3}
    safe, lost = jsonsafe_exact(args)
    assert safe == args and safe is not args and lost is None
    args["to"] = "changed later"
    assert safe["to"] == "a@b.example"


def test_lone_surrogates_and_str_subclasses_take_the_full_path() -> None:
    class Sneaky(str):
        pass

    assert jsonsafe_exact({"x": "\ud800"})[1] is not None
    value = Sneaky("v")
    assert jsonsafe_exact({"x": value}) == (_convert({"x": value}, 64, set(), []), None)
