"""The service's tokens: shown once, kept hashed in the store, named, revocable; a token file of an
older Tether is imported once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tether import SQLiteStore
from tether.server import TokenBook, TokenError, import_token_file, tokens_path


def test_create_check_revoke(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    book = TokenBook(SQLiteStore(db))
    assert book.list() == []
    token = book.create("ops")
    assert book.check(token) == "ops"
    assert book.check(token + "x") is None and book.check("") is None and book.check("tth_" + "a" * 500) is None
    book.store.close()
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert token not in dump and token[4:20] not in dump  # only the digest is kept
    book = TokenBook(SQLiteStore(db))
    assert [t.name for t in book.list()] == ["ops"]
    with pytest.raises(TokenError, match="exists"):
        book.create("ops")
    assert book.revoke("ops") and not book.revoke("ops")
    assert book.check(token) is None
    again = book.create("ops")  # a revoked token's name can be given again; the old token stays dead
    assert book.check(again) == "ops" and book.check(token) is None
    assert [(t.name, t.revoked is None) for t in book.store.tokens(revoked=True)] == [("ops", False), ("ops", True)]
    book.store.close()


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../etc", "-flag", "ok\u202e"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(TokenError):
        TokenBook(SQLiteStore(tmp_path / "t.db")).create(name)


def test_an_unreadable_store_admits_nobody(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    book = TokenBook(store)
    token = book.create("ops")
    store.close()  # every read now fails
    assert book.check(token) is None and not book.live("0" * 64)
    with pytest.raises(TokenError, match="cannot read"):
        book.list()


def _old_file(path: Path, book_db: Path) -> dict[str, str]:
    """A token file as Tether wrote it before tokens were kept in the store (two tokens, one from
    before roles existed)."""
    scratch = TokenBook(SQLiteStore(book_db))
    tokens = {"old": scratch.create("old"), "bot": scratch.create("bot", role="agent", principal="ana")}
    entries = []
    for t in scratch.list():
        entry: dict[str, object] = {"name": t.name, "created": t.created, "digest": t.digest}
        if t.name == "bot":
            entry |= {"role": "agent", "principal": "ana"}
        entries.append(entry)
    path.write_text(json.dumps({"tokens": entries}))
    scratch.store.close()
    return tokens


def test_a_token_file_is_imported_once(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    path = tokens_path(db)
    assert path == Path(f"{db}.tokens")
    tokens = _old_file(path, tmp_path / "scratch.db")
    book = TokenBook(SQLiteStore(db))
    assert import_token_file(book, path) == 2
    old, bot = book.holder(tokens["old"]), book.holder(tokens["bot"])
    assert old is not None and (old.name, old.role, old.principal) == ("old", "overseer", None)
    assert bot is not None and (bot.name, bot.role, bot.principal) == ("bot", "agent", "ana")
    assert book.revoke("old")
    assert import_token_file(book, path) is None  # once: a token revoked in the store never comes back
    assert book.holder(tokens["old"]) is None
    assert import_token_file(book, tmp_path / "missing.tokens") is None
    book.store.close()


def test_a_broken_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db.tokens"
    path.write_text("{not json")
    book = TokenBook(SQLiteStore(tmp_path / "t.db"))
    with pytest.raises(TokenError, match="cannot read the token file"):
        import_token_file(book, path)
    assert book.list() == []
    book.store.close()
