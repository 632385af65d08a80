"""Access tokens of the oversight service, kept hashed in a file beside the event store.

A token is shown once, when it is created; the file holds only its SHA-256, so reading
the file does not give access. The file is written atomically and readable by its owner
only. Tokens are named (the name is who answered, in the log) and revocable.

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
import os
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from tether.store import is_postgres_url

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
    """Where the tokens of the store at ``db`` are kept: ``tether.db`` -> ``tether.db.tokens``;
    for a PostgreSQL URL, ``tether-<digest of the URL without its password>.tokens`` in the
    working directory (services on several machines share that file, or each keeps its own
    tokens: docs/store.md)."""
    if is_postgres_url(db):
        shown = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", db.strip())
        return Path(f"tether-{hashlib.sha256(shown.encode()).hexdigest()[:16]}.tokens")
    return Path(f"{db}.tokens")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenBook:
    """The tokens in one file. Every call reads the file again, so a token revoked from the
    CLI stops working in a running server at its next request."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        """The token file."""

    def list(self) -> list[TokenInfo]:
        """Every live token."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [_info(t) for t in data["tokens"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"cannot read the token file {str(self.path)!r}: {exc}") from None

    def create(self, name: str, *, role: Role = "overseer", principal: str | None = None) -> str:
        """A new token named ``name`` (unique) with a ``role`` (an agent token may be bound to one
        ``principal``); returns the token, which is never shown again."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TokenError(f"a token name is 1 to 64 letters, digits or _.@- (starting with a letter or digit), got {name!r}")
        if role not in ROLES:
            raise TokenError(f"a token's role is one of {', '.join(ROLES)}, got {role!r}")
        if principal is not None and (
            role != "agent" or not isinstance(principal, str) or not principal.isprintable() or not 0 < len(principal) <= 256
        ):
            raise TokenError(f"only an agent token is bound to a principal (1 to 256 printable characters), got {principal!r}")
        tokens = self.list()
        if any(t.name == name for t in tokens):
            raise TokenError(f"a token named {name!r} exists: revoke it first")
        token = _PREFIX + secrets.token_urlsafe(32)
        self._write([*tokens, TokenInfo(name, time.time(), _digest(token), role, principal)])
        return token

    def revoke(self, name: str) -> bool:
        """Remove the token named ``name``; False when there is none."""
        tokens = self.list()
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            return False
        self._write(kept)
        return True

    def check(self, token: str) -> str | None:
        """The name of the live token ``token``, or None. Compares digests in constant time."""
        found = self.holder(token)
        return None if found is None else found.name

    def holder(self, token: str) -> TokenInfo | None:
        """The live token ``token`` (its name, role and principal), or None. Compares digests in constant time."""
        if not isinstance(token, str) or not token.startswith(_PREFIX) or len(token) > 256:
            return None
        digest = _digest(token)
        try:
            tokens = self.list()
        except TokenError:
            return None  # fail closed: an unreadable file admits nobody
        found = None
        for t in tokens:
            if hmac.compare_digest(t.digest, digest):
                found = t
        return found

    def _write(self, tokens: Sequence[TokenInfo]) -> None:
        doc = {"tokens": [_entry(t) for t in tokens]}
        folder = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise TokenError(f"cannot write the token file {str(self.path)!r}: {exc}") from None


def _info(entry: dict[str, Any]) -> TokenInfo:
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


def _entry(t: TokenInfo) -> dict[str, object]:
    out: dict[str, object] = {"name": t.name, "created": t.created, "digest": t.digest, "role": t.role}
    if t.principal is not None:
        out["principal"] = t.principal
    return out
