"""The service's access tokens as rows of the store, in the same SQL for both back ends.

``tether serve`` keeps its tokens in the store it serves (SQLite schema 5, PostgreSQL schema 3),
so every worker of the service, on any machine, reads the same tokens and a revocation holds
at every worker from its next request. A row holds the token's SHA-256, never the token. A
revoked token's row stays (with the time it was revoked), so the table says who held access
and when, and a name can be given to a new token once its old one is revoked (the names of
live tokens are unique: a partial unique index).

The statements use ``?`` placeholders; :func:`pg` turns them into psycopg's ``%s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TABLE = """
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    principal TEXT,
    created DOUBLE PRECISION NOT NULL,
    revoked DOUBLE PRECISION
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_live_name ON tokens (name) WHERE revoked IS NULL;
"""
"""The table (the same text runs on SQLite and PostgreSQL)."""

_COLUMNS = "digest, name, role, principal, created, revoked"
LIVE = f"SELECT {_COLUMNS} FROM tokens WHERE revoked IS NULL ORDER BY created, name"
"""Every live token, oldest first."""
EVERY = f"SELECT {_COLUMNS} FROM tokens ORDER BY created, name"
"""Every token ever added, revoked ones included."""
BY_DIGEST = f"SELECT {_COLUMNS} FROM tokens WHERE digest = ? AND revoked IS NULL"
"""The live token with a digest."""
NAME_TAKEN = "SELECT 1 FROM tokens WHERE (name = ? AND revoked IS NULL) OR digest = ?"
"""A live token has the name, or any token ever had the digest."""
INSERT = f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)"
"""A new live token."""
REVOKE = "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL"
"""Revoke the live token of a name."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One access token of the service as the store keeps it (never the token itself)."""

    digest: str
    """SHA-256 of the token, hex."""
    name: str
    """Who holds it."""
    role: str
    """What it may do (``agent`` or ``overseer``: see ``tether.server.Role``)."""
    principal: str | None
    """For an agent token: the only principal whose sessions it may use (None: any)."""
    created: float
    """When it was created (UTC Unix time)."""
    revoked: float | None = None
    """When it was revoked (None: live)."""


def records(rows: list[Any]) -> list[TokenRecord]:
    """Rows of :data:`LIVE`, :data:`EVERY` or :data:`BY_DIGEST` as records."""
    return [
        TokenRecord(
            str(r[0]), str(r[1]), str(r[2]), None if r[3] is None else str(r[3]), float(r[4]), None if r[5] is None else float(r[5])
        )
        for r in rows
    ]


def row_of(record: TokenRecord) -> tuple[object, ...]:
    """The parameters of :data:`INSERT` for a record."""
    return (record.digest, record.name, record.role, record.principal, record.created)


def pg(sql: str) -> str:
    """A statement with psycopg's placeholders."""
    return sql.replace("?", "%s")
