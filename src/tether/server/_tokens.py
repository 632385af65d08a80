"""Access tokens of the oversight service, kept hashed in the event store it serves.

A token is shown once, when it is created; the store holds only its SHA-256, so reading
the database does not give access. Tokens are named (the name is who answered, in the log)
and revocable; every worker of the service reads them from the store at each request, so a
revocation holds at every worker, on every machine, from its next request. Services before
schema 5 (SQLite) / 3 (PostgreSQL) kept them in a file (:func:`tokens_path`):
:func:`import_token_file` moves such a file's tokens into the store once.

A token has a role. An ``overseer`` may do everything the UI can (read every session, answer
approvals, pause, resume, kill); an ``agent`` may only run sessions through the guard API
(begin, check, record, add untrusted sources, end, read its own sessions), optionally only for
one principal, so an agent can never approve its own asks. Tokens written before roles
existed are overseers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from tether.errors import StoreError
from tether.store import EventStore, TokenRecord, is_postgres_url

Role = Literal["agent", "overseer"]
"""What a token may do: run sessions through the guard API (``agent``), or everything (``overseer``)."""

ROLES: tuple[Role, ...] = get_args(Role)

_PREFIX = "tth_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class TokenError(Exception):
    """A token file that cannot be read or written, or a bad token name."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as the file lists it (never the token itself)."""

    name: str
    """Who holds it (logged as who answered or stopped)."""
    created: float
    """When it was created (UTC Unix time)."""
    digest: str
    """SHA-256 of the token, hex."""
    role: Role = "overseer"
    """What it may do (see :data:`Role`)."""
    principal: str | None = None
    """For an agent token: the only principal whose sessions it may begin and use (None: any)."""


def tokens_path(db: str) -> Path:
    """Where services before tokens were kept in the store kept the tokens of the store at ``db``:
    ``tether.db`` -> ``tether.db.tokens``; for a PostgreSQL URL, ``tether-<digest of the URL
    without its password>.tokens`` in the working directory. Read once, by :func:`import_token_file`."""
    if is_postgres_url(db):
        shown = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", db.strip())
        return Path(f"tether-{hashlib.sha256(shown.encode()).hexdigest()[:16]}.tokens")
    return Path(f"{db}.tokens")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenBook:
    """The service's tokens, in its event store (``EventStore.tokens`` and friends). Nothing is
    cached: every check reads the store, so a token revoked from the CLI, or by another worker,
    stops working in every running worker at its next request."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        """The store that keeps the tokens (the one the service serves)."""

    def list(self) -> list[TokenInfo]:
        """Every live token, oldest first."""
        try:
            return [_info(t) for t in self.store.tokens()]
        except (StoreError, ValueError) as exc:
            raise TokenError(f"cannot read the tokens of {_where(self.store)}: {exc}") from None

    def create(self, name: str, *, role: Role = "overseer", principal: str | None = None) -> str:
        """A new token named ``name`` (unique among live tokens) with a ``role`` (an agent token may
        be bound to one ``principal``); returns the token, which is never shown again."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TokenError(f"a token name is 1 to 64 letters, digits or _.@- (starting with a letter or digit), got {name!r}")
        if role not in ROLES:
            raise TokenError(f"a token's role is one of {', '.join(ROLES)}, got {role!r}")
        if principal is not None and (
            role != "agent" or not isinstance(principal, str) or not principal.isprintable() or not 0 < len(principal) <= 256
        ):
            raise TokenError(f"only an agent token is bound to a principal (1 to 256 printable characters), got {principal!r}")
        token = _PREFIX + secrets.token_urlsafe(32)
        self._add(TokenInfo(name, time.time(), _digest(token), role, principal))
        return token

    def _add(self, info: TokenInfo) -> None:
        try:
            added = self.store.add_token(TokenRecord(info.digest, info.name, info.role, info.principal, info.created))
        except StoreError as exc:
            raise TokenError(f"cannot write a token to {_where(self.store)}: {exc}") from None
        if not added:
            raise TokenError(f"a token named {info.name!r} exists: revoke it first")

    def revoke(self, name: str) -> bool:
        """Revoke the token named ``name``; False when there is none."""
        try:
            return self.store.revoke_token(name, time.time())
        except StoreError as exc:
            raise TokenError(f"cannot revoke a token in {_where(self.store)}: {exc}") from None

    def check(self, token: str) -> str | None:
        """The name of the live token ``token``, or None."""
        found = self.holder(token)
        return None if found is None else found.name

    def holder(self, token: str) -> TokenInfo | None:
        """The live token ``token`` (its name, role and principal), or None. The store is asked for
        the token's SHA-256 (an index lookup): its timing can tell nothing about the token but
        whether a digest is held. A store that cannot be read admits nobody (fail closed)."""
        if not isinstance(token, str) or not token.startswith(_PREFIX) or len(token) > 256:
            return None
        digest = _digest(token)
        try:
            found = self.store.find_token(digest)
            return None if found is None or not hmac.compare_digest(found.digest, digest) else _info(found)
        except (StoreError, ValueError):
            return None

    def live(self, digest: str) -> bool:
        """Whether the token with this SHA-256 is still live (False when the store cannot be read)."""
        try:
            return self.store.find_token(digest) is not None
        except StoreError:
            return False


def import_token_file(book: TokenBook, path: str | Path) -> int | None:
    """Move the tokens of a token file (:func:`tokens_path`, written by services before tokens were
    kept in the store) into ``book``'s store, once: only into a store that never held a token.
    Returns how many were imported, or None when there was nothing to do (no file, or the store
    already has tokens, live or revoked: a token revoked in the store is never brought back from
    an old file). Raises TokenError for a file that cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        if book.store.tokens(revoked=True):
            return None
    except StoreError as exc:
        raise TokenError(f"cannot read the tokens of {_where(book.store)}: {exc}") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = [_file_info(t) for t in data["tokens"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenError(f"cannot read the token file {str(path)!r}: {exc}") from None
    for info in found:
        book._add(info)
    return len(found)


def _where(store: EventStore) -> str:
    return repr(getattr(store, "display", None) or getattr(store, "path", None) or "the event store")


def _info(record: TokenRecord) -> TokenInfo:
    if record.role not in ROLES:
        raise ValueError(f"unknown token role {record.role!r}")
    role: Role = "agent" if record.role == "agent" else "overseer"
    return TokenInfo(record.name, record.created, record.digest, role, record.principal)


def _file_info(entry: dict[str, Any]) -> TokenInfo:
    role = entry.get("role", "overseer")  # written before roles existed: an overseer
    if role not in ROLES:
        raise ValueError(f"unknown token role {role!r}")
    principal = entry.get("principal")
    return TokenInfo(
        str(entry["name"]),
        float(entry["created"]),
        str(entry["digest"]),
        role,
        None if principal is None else str(principal),
    )
