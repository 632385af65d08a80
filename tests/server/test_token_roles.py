"""Token roles: an agent token (maybe bound to a principal) or an overseer; a role the code does not
know admits nobody; the CLI creates and lists them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether import SQLiteStore
from tether.cli import main
from tether.server import TokenBook, TokenError


def test_roles_and_principals(tmp_path: Path) -> None:
    book = TokenBook(SQLiteStore(tmp_path / "t.db"))
    ops, bot, ana = book.create("ops"), book.create("bot", role="agent"), book.create("ana-bot", role="agent", principal="ana")
    found = {t: book.holder(t) for t in (ops, bot, ana)}
    assert [(h.name, h.role, h.principal) for h in found.values() if h is not None] == [
        ("ops", "overseer", None),
        ("bot", "agent", None),
        ("ana-bot", "agent", "ana"),
    ]
    assert book.check(ana) == "ana-bot" and book.holder("tth_nope") is None
    with pytest.raises(TokenError, match="role"):
        book.create("x", role="admin")  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="only an agent token"):
        book.create("y", principal="ana")
    with pytest.raises(TokenError, match="principal"):
        book.create("z", role="agent", principal="a\u202eb")
    book.store.close()


def test_an_unknown_role_in_the_store_admits_nobody(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    book = TokenBook(SQLiteStore(db))
    token = book.create("old")
    edit = sqlite3.connect(db)
    edit.execute("UPDATE tokens SET role = 'root'")
    edit.commit()
    edit.close()
    assert book.holder(token) is None
    book.store.close()


def test_the_cli_creates_agent_tokens(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    made = runner.invoke(main, ["serve", "token", "create", "--db", db, "bot", "--role", "agent", "--principal", "ana"])
    assert made.exit_code == 0 and made.output.startswith("tth_")
    with SQLiteStore(db) as store:
        holder = TokenBook(store).holder(made.output.strip())
    assert holder is not None and (holder.role, holder.principal) == ("agent", "ana")
    listed = runner.invoke(main, ["serve", "token", "list", "--db", db], env={"COLUMNS": "200"})
    assert "bot  agent for 'ana'" in listed.output
    refused = runner.invoke(main, ["serve", "token", "create", "--db", db, "ops", "--principal", "ana"])
    assert refused.exit_code == 2 and "only an agent token" in refused.output
