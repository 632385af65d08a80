"""The canonical form endorsements compare values by: the same equality as the policy's
``equals`` (``same_value``), and no unicode, case or encoding trick makes a different value match."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from tether.flow import normalize
from tether.policy import canonical_value, same_value

scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)


def _hidden(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)


@given(scalars, scalars)
def test_same_canonical_form_exactly_when_the_policy_says_same_value(a: object, b: object) -> None:
    ca, cb = canonical_value(a), canonical_value(b)
    if ca is None or cb is None:
        return
    assert (ca == cb) == same_value(a, b)


@given(st.text(max_size=30))
def test_text_with_hidden_characters_has_no_canonical_form(text: str) -> None:
    if _hidden(text) or not normalize(text):
        assert canonical_value(text) is None
    else:
        assert canonical_value(text) == "s:" + normalize(text)


@given(
    st.text(min_size=1, max_size=20),
    st.integers(min_value=0, max_value=20),
    st.sampled_from(["\u200b", "\u202e", "\u2066", "\x00", "\ufeff", "\u00ad"]),
)
def test_a_hidden_character_anywhere_never_matches_the_plain_value(text: str, at: int, hidden: str) -> None:
    tricked = text[:at] + hidden + text[at:]
    assert canonical_value(tricked) is None  # matches nothing, so never an endorsed value


def test_tricks_that_change_the_value_do_not_match() -> None:
    iban = "GB33BUKB20201555555555"
    assert canonical_value(iban) == canonical_value(iban.lower()) == canonical_value("%47B33BUKB20201555555555")
    for other in ("GB33BUKB2020155555555", "GB33BUKB20201555555556", "GB33BUKB2020155555555\u0405", "ＧＢ33BUKB20201555555555x"):
        assert canonical_value(other) != canonical_value(iban)
    assert canonical_value("bob@example.com") != canonical_value("bob@examp\u031e.com")
    assert canonical_value("pаypal.com") != canonical_value("paypal.com")  # Cyrillic а
    assert canonical_value("straße.de") != canonical_value("strasse.de")
    assert canonical_value(1) == canonical_value(1.0) and canonical_value(True) != canonical_value(1)
    for nothing in (None, [], {}, float("nan"), float("inf"), "", "   "):
        assert canonical_value(nothing) is None
