"""Normalisation: the invisible-character table is complete, and the function is idempotent."""

import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from tether.flow import normalize
from tether.flow._normalize import is_format_char


def test_format_table_matches_unicodedata() -> None:
    missing = [hex(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf" and not is_format_char(chr(cp))]
    assert missing == []


@given(st.text(max_size=200))
def test_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


def test_equivalences() -> None:
    base = normalize("attacker@evil.com")
    for variant in [
        "ATTACKER@EVIL.COM",
        "attacker%40evil.com",
        "attacker%2540evil.com",
        "attacker&#64;evil.com",
        "ａｔｔａｃｋｅｒ＠ｅｖｉｌ．ｃｏｍ",
        "att\u200backer@ev\u00adil.com",
        "  attacker@evil.com\n",
    ]:
        assert normalize(variant) == base, variant


def test_whitespace_collapses() -> None:
    assert normalize("a \t\n b\u00a0c") == "a b c"
