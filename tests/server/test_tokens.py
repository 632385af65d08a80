"""The service's tokens: shown once, kept hashed, named, revocable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tether.server import TokenBook, TokenError, tokens_path


def test_create_check_revoke(tmp_path: Path) -> None:
    book = TokenBook(tokens_path(str(tmp_path / "t.db")))
    assert book.path == tmp_path / "t.db.tokens" and book.list() == []
    token = book.create("ops")
    assert book.check(token) == "ops"
    assert book.check(token + "x") is None and book.check("") is None and book.check("tth_" + "a" * 500) is None
    text = book.path.read_text()
    assert token not in text and token[4:20] not in text  # only the digest is kept
    assert stat.S_IMODE(os.stat(book.path).st_mode) == 0o600
    assert [t.name for t in book.list()] == ["ops"]
    with pytest.raises(TokenError, match="exists"):
        book.create("ops")
    assert book.revoke("ops") and not book.revoke("ops")
    assert book.check(token) is None


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../etc", "-flag", "ok\u202e"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(TokenError):
        TokenBook(tmp_path / "t.tokens").create(name)


def test_an_unreadable_file_admits_nobody(tmp_path: Path) -> None:
    path = tmp_path / "t.tokens"
    path.write_text("{not json")
    assert TokenBook(path).check("tth_anything") is None
    with pytest.raises(TokenError, match="cannot read"):
        TokenBook(path).list()
