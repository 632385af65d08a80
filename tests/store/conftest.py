"""Store tests run against both back ends: ``backend`` is a SQLite file or a PostgreSQL database.

A :class:`Backend` opens stores on one database (as many as a test wants, like separate
processes would) and edits its tables behind the store's back with plain SQL (``?``
placeholders on both), the way an attacker with access to the database would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.postgres_cluster import PostgresCluster

from tether.store import EventStore, PostgresStore, SQLiteStore


class Backend:
    """One empty event store database and a way to open stores on it."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        """``sqlite`` or ``postgres``."""
        self.target = target
        """The file or URL (what ``--db`` takes)."""
        self._opened: list[EventStore] = []

    def open(self, **options: Any) -> EventStore:
        """A new store on this database (another connection, as another process would have)."""
        store: EventStore = PostgresStore(self.target, **options) if self.name == "postgres" else SQLiteStore(self.target, **options)
        self._opened.append(store)
        return store

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement on the database directly (``?`` placeholders) and commit it."""
        if self.name == "postgres":
            with psycopg.connect(self.target, autocommit=True) as conn:
                cursor = conn.execute(statement.replace("?", "%s").encode(), params)
                return cursor.fetchall() if cursor.description else []
        db = sqlite3.connect(self.target)
        try:
            rows = db.execute(statement, params).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def close(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture
def new_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Backend]]:
    """Make empty databases of a back end (``sqlite`` or ``postgres``), closed at the end."""
    made: list[Backend] = []
    count = iter(range(1_000_000))

    def make(name: str) -> Backend:
        if name == "postgres":
            cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
            backend = Backend(name, cluster.new_database())
        else:
            backend = Backend(name, str(tmp_path / f"store{next(count)}.db"))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, new_backend: Callable[[str], Backend]) -> Backend:
    """An empty event store database on each back end in turn."""
    return new_backend(str(request.param))
