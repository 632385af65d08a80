"""What a person sees of tool text: every character, none that tricks the eye, long values folded with a mark."""

from __future__ import annotations

import pytest

from tether._display import fold, has_marks, pieces, visible_text


@pytest.mark.parametrize(
    ("text", "marked", "hidden"),
    [
        ("plain text, with punctuation: a-b_c.d!", [], []),
        ("multi\nline\tvalue", [], []),
        ("Invoice \u202egnp.exe", ["U+202E RIGHT-TO-LEFT OVERRIDE"], [True]),
        ("pay\u200bpal", ["U+200B ZERO WIDTH SPACE"], [True]),
        ("a\x1b[8mhidden", ["U+001B CONTROL"], [True]),
        ("line\u2028break", ["U+2028 LINE SEPARATOR"], [True]),
        ("\u2066isolate\u2069", ["U+2066 LEFT-TO-RIGHT ISOLATE", "U+2069 POP DIRECTIONAL ISOLATE"], [True, True]),
        ("p\u0430ypal", ["U+0430 CYRILLIC SMALL LETTER A"], [False]),  # mixed script in one word
        ("https://\u0440aypal.com/login", ["U+0440 CYRILLIC SMALL LETTER ER"], [False]),
        ("ops@c\u043empany.com", ["U+043E CYRILLIC SMALL LETTER O"], [False]),
        ("\uff41dmin", ["U+FF41 FULLWIDTH LATIN SMALL LETTER A"], [False]),
        ("a\u00a0b", ["U+00A0 NO-BREAK SPACE"], [False]),
        ("cafe\ufe0f", ["U+FE0F VARIATION SELECTOR-16"], [True]),
    ],
)
def test_marks(text: str, marked: list[str], hidden: list[bool]) -> None:
    got = pieces(text)
    assert "".join(p.text for p in got) == text  # nothing lost: the marks describe exactly what the tool receives
    assert [p.mark for p in got if p.mark] == marked
    assert [p.hidden for p in got if p.mark] == hidden


@pytest.mark.parametrize("text", ["Привет, мир", "日本語のテキスト", "naïve café déjà vu", "Grüße aus Köln"])
def test_ordinary_text_in_other_languages_is_not_marked(text: str) -> None:
    assert not has_marks(text)


def test_terminal_form_replaces_invisible_characters_with_their_mark() -> None:
    assert visible_text("Invoice \u202egnp.exe") == "Invoice ⟦U+202E RIGHT-TO-LEFT OVERRIDE⟧gnp.exe"
    assert visible_text("p\u0430y") == "p\u0430⟦U+0430 CYRILLIC SMALL LETTER A⟧y"
    assert "\u202e" not in visible_text("\u202e" * 3)


def test_fold_counts_what_it_hides() -> None:
    text = "x" * 1000 + "https://evil.example/"
    f = fold(text, 300)
    assert f.head + f.rest == text and f.folded == 721
    assert fold("short", 300).folded == 0
