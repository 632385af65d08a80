"""The service's tokens kept in the store, on both back ends: hashed rows, unique live names,
revocation seen by every connection at once, and the forward migration from the layout before
(SQLite 4 -> 5, PostgreSQL 2 -> 3) that keeps every session and its chain."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest
from tests.store.conftest import Backend

from tether.errors import StoreError
from tether.events import CallProposed
from tether.store import PostgresStore, SQLiteStore, TokenRecord, _postgres_schema, _sqlite_schema


def token(digest: str, name: str, *, role: str = "overseer", principal: str | None = None, created: float = 1.0) -> TokenRecord:
    return TokenRecord(digest, name, role, principal, created)


def test_tokens_are_added_found_and_revoked(backend: Backend) -> None:
    a, b = backend.open(), backend.open()  # two workers' connections
    assert a.tokens() == [] and a.find_token("d1") is None
    assert a.add_token(token("d1", "ops"))
    assert a.add_token(token("d2", "bot", role="agent", principal="ana", created=2.0))
    assert not b.add_token(token("d3", "ops"))  # a live token has the name
    assert not b.add_token(token("d1", "other"))  # a digest is never held twice
    assert [(t.name, t.role, t.principal) for t in b.tokens()] == [("ops", "overseer", None), ("bot", "agent", "ana")]
    assert b.find_token("d2") == token("d2", "bot", role="agent", principal="ana", created=2.0)
    assert b.revoke_token("ops", 5.0) and not b.revoke_token("ops", 6.0) and not b.revoke_token("nobody", 6.0)
    assert a.find_token("d1") is None  # the other connection sees the revocation at once
    assert a.add_token(token("d4", "ops", created=7.0))  # the name is free again
    assert not a.add_token(token("d1", "ops-again"))  # a revoked digest never comes back
    every = a.tokens(revoked=True)
    assert [(t.digest, t.revoked) for t in every] == [("d1", 5.0), ("d2", None), ("d4", None)]


def test_a_revocation_wakes_a_reader_waiting_for_any_change(backend: Backend) -> None:
    """Streams of the web UI wait on the store for any change: a revocation is one, so a stream
    whose token was revoked ends at once (SQLite: any commit moves ``data_version``; PostgreSQL:
    the revocation notifies)."""
    waiter, writer = backend.open(), backend.open()
    writer.add_token(token("d1", "ops"))
    woke: list[float] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        if waiter.wait_for_change(None, 0, 20.0):
            woke.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait()
    time.sleep(0.5)  # the waiter is listening
    t0 = time.monotonic()
    writer.revoke_token("ops", time.time())
    thread.join(25)
    assert woke and woke[0] - t0 < 5.0


def test_a_store_opened_read_only_refuses_token_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    SQLiteStore(path).close()
    store = SQLiteStore(path, read_only=True)
    assert store.tokens() == []
    with pytest.raises(StoreError):
        store.add_token(token("d1", "ops"))
    store.close()


def test_a_sqlite_store_of_schema_4_migrates_to_5_keeping_its_sessions(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    store = SQLiteStore(path)
    store.append("s", [CallProposed(session_id="s", call_id="c", tool="t", args={}, call_hash="h")])
    head = store.head("s")
    store.close()
    db = sqlite3.connect(path)  # back to schema 4, as the Tether before this one wrote it
    db.execute("DROP TABLE tokens")
    db.execute("PRAGMA user_version = 4")
    db.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    db.commit()
    db.close()
    readable = SQLiteStore(path, read_only=True)  # a read-only open reads the old layout as it is
    assert readable.head("s") == head
    with pytest.raises(StoreError):
        readable.tokens()
    readable.close()
    store = SQLiteStore(path)
    assert store.head("s") == head and store.verify().ok and store.tokens() == []
    assert store.add_token(token("d1", "ops"))
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (_sqlite_schema.VERSION,) == (5,)
    db.close()


def test_a_postgres_store_of_schema_2_migrates_to_3_keeping_its_sessions(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.append("s", [CallProposed(session_id="s", call_id="c", tool="t", args={}, call_hash="h")])
    head = store.head("s")
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # back to schema 2, as the Tether before this one wrote it
        conn.execute("DROP TABLE tokens")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    store = PostgresStore(postgres_url)
    assert store.head("s") == head and store.verify().ok
    assert store.tokens() == [] and store.add_token(token("d1", "ops"))
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(_postgres_schema.VERSION),) == ("3",)
