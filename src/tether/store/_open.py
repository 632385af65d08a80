"""One place that turns what a user names (``--db``, ``TETHER_DB``) into an event store."""

from __future__ import annotations

import os

from tether.errors import StoreError
from tether.store._chain import Durability, EventStore
from tether.store._sqlite_store import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that name a PostgreSQL database; anything else is a SQLite file."""


def is_postgres_url(target: str) -> bool:
    """Whether ``target`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return target.strip().lower().startswith(POSTGRES_SCHEMES)


def open_store(target: str, *, must_exist: bool = False, read_only: bool = False, durability: Durability = "normal") -> EventStore:
    """Open the event store ``target`` names: a PostgreSQL URL (``postgresql://user@host/db``)
    opens a :class:`~tether.store.PostgresStore`, anything else is a SQLite file.

    ``must_exist``: refuse a SQLite file that does not exist, or a database without Tether's
    tables, instead of creating one. ``read_only`` (commands that only read: verify, listings):
    a SQLite file is opened read-only (a read-only file or mount works and is never changed); a
    PostgreSQL database must already hold a store (nothing is created). Every failure (no such store, psycopg not installed, a
    server that cannot be reached) raises :class:`~tether.errors.StoreError` with a message
    that says which.
    """
    if is_postgres_url(target):
        try:
            from tether.store._postgres_store import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"{target.split('://', 1)[0]}:// stores need psycopg 3: pip install 'tether-guard[postgres]' ({exc})"
            ) from None
        return PostgresStore(target.strip(), durability=durability, create=not (must_exist or read_only))
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise StoreError(f"unknown event store URL scheme {scheme!r}: use a SQLite file path or a postgresql:// URL")
    if (must_exist or read_only) and target != ":memory:" and not os.path.exists(target):
        raise StoreError(f"no event store at {target!r}")
    return SQLiteStore(target, durability=durability, read_only=read_only)
