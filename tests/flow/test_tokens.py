"""Whole-token matching: a number is written whole (digit groups and signs), and the token map agrees
with the substring search."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import contains_word, normalize, occurs_in
from tether.flow._tokens import TOKEN_SPLIT, core_of, find_bounded, is_core, token_cores


def test_digit_groups_and_signs_stay_in_their_number() -> None:
    cores = token_cores(normalize("Pay 1,250.00 EUR, refund -250.00, 1'000 CHF, 1\u2009250,5 and 1_000 (-7) --3 5-7."))
    assert {"1,250.00", "-250.00", "1'000", "1'250,5", "1_000", "-7", "-3", "5-7", "eur"} <= cores
    assert not cores & {"1", "250", "250.00", "000", "7", "3", "250,5"}
    assert token_cores("a,b b,1 1,2 3,") == {"a", "b", "1", "1,2", "3"}  # a separator joins digits only


def test_is_core_accepts_a_signed_or_grouped_number() -> None:
    assert is_core("-250.00") and is_core("1,250.00") and is_core("1'250")
    assert not is_core("-abc") and not is_core("1,") and not is_core(",250") and not is_core("-")


def test_occurs_in_needs_the_whole_number() -> None:
    text = normalize("the Q3 invoice of 1,250.00 EUR and the refund of -99 EUR")
    assert occurs_in(text, "1,250.00") and occurs_in(text, "-99")
    for piece in ("1", "250.00", "250", "99", "1,250", "invoice of 1", "of -9"):
        assert not occurs_in(text, piece), piece


def test_contains_word_for_numbers_needs_the_whole_number() -> None:
    text = normalize("pay 1,250.00 or -250 or 1\u202f000 or 7")
    assert contains_word(text, "1,250.00", number=True) and contains_word(text, "-250", number=True)
    assert contains_word(text, "7", number=True)
    for piece in ("1", "250", "250.00", "000", "1,250"):
        assert not contains_word(text, piece, number=True), piece


_CHARS = "ab19 ,.'_-:"


@settings(max_examples=400, deadline=None)
@given(st.text(_CHARS, min_size=1, max_size=30), st.text(_CHARS, min_size=1, max_size=8))
def test_token_map_and_substring_search_agree(text: str, value: str) -> None:
    """A single token core occurs bounded exactly where it is a token's core (the index relies on it)."""
    text, value = " ".join(text.split()), " ".join(value.split())
    if not is_core(value):
        return
    assert (value in token_cores(text)) == (find_bounded(text.encode(), value.encode()) >= 0), (text, value)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text("0123456789", min_size=1, max_size=3), min_size=2, max_size=4),
    st.sampled_from([",", ".", "'", "_", "\u2009", "\u202f", "\u00a0"]),
    st.sampled_from(["", "-", "--"]),
    st.sampled_from([" ", "(", ": ", "="]),
)
def test_no_digit_group_of_a_written_number_is_grounded(groups: list[str], sep: str, sign: str, before: str) -> None:
    written = sign + sep.join(groups)
    text = normalize(f"pay{before}{written} now")
    whole = core_of(next(raw for raw in TOKEN_SPLIT.findall(text) if any(c.isdigit() for c in raw)))
    for i in range(len(groups)):
        for j in range(i + 1, len(groups) + 1):
            if (i, j) == (0, len(groups)) and not sign:
                continue
            piece = normalize(sep.join(groups[i:j]))
            assert piece == whole or not occurs_in(text, piece), (text, piece)
            assert piece == whole or not contains_word(text, piece, number=True), (text, piece)
