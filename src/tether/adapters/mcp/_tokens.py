"""Bearer tokens for the proxy's HTTP endpoint: created at first start, shown once, kept only as hashes, revocable.

``tether mcp --http PORT`` refuses every request without ``Authorization:
Bearer <token>`` (``--no-auth`` turns this off, on loopback only). The
tokens of a store live beside it (``<db>-mcp-tokens.json``, mode 0600) as
SHA-256 hashes: a token is shown once, when it is created (at the first
start, or by ``tether mcp token new``), and ``tether mcp token revoke ID``
ends it for every proxy on that store at their next request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PREFIX = "tmcp_"
"""Every token starts with this (so a leaked one is recognisable)."""


def token_file(db_path: str) -> Path | None:
    """Where the tokens of the store at ``db_path`` are kept (None for an in-memory store: tokens live in memory)."""
    return None if db_path == ":memory:" else Path(f"{os.path.abspath(db_path)}-mcp-tokens.json")


class TokenStore:
    """The tokens of one store (or of one process, for an in-memory store)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        """The file (None: in memory)."""
        self._memory: list[dict[str, Any]] = []
        self._cache: tuple[float, list[dict[str, Any]]] | None = None

    def entries(self) -> list[dict[str, Any]]:
        """Every live token's id, hash, creation time and note (re-read when the file changes)."""
        if self.path is None:
            return list(self._memory)
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._cache is None or self._cache[0] != mtime:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = []
            self._cache = (mtime, [d for d in data if isinstance(d, dict)] if isinstance(data, list) else [])
        return list(self._cache[1])

    def create(self, note: str = "") -> tuple[str, str]:
        """A new token: its id and the token itself (shown once; only its hash is kept)."""
        token = PREFIX + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        entry = {"id": digest[:8], "sha256": digest, "created": datetime.now(UTC).isoformat(timespec="seconds"), "note": note}
        self._save([*self.entries(), entry])
        return entry["id"], token

    def revoke(self, token_id: str) -> bool:
        """End the token with this id (or unique id prefix); False when none matches."""
        entries = self.entries()
        keep = [e for e in entries if not str(e.get("id", "")).startswith(token_id)]
        if len(entries) - len(keep) != 1:
            return False
        self._save(keep)
        return True

    def check(self, token: str | None) -> bool:
        """Whether ``token`` is a live token (compared by hash, in constant time)."""
        if not token:
            return False
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        return any(hmac.compare_digest(digest, str(e.get("sha256", ""))) for e in self.entries())

    def _save(self, entries: list[dict[str, Any]]) -> None:
        if self.path is None:
            self._memory = entries
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entries, fh, indent=1)
        os.replace(tmp, self.path)
        self._cache = None
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer`` header among ASGI headers (None: none)."""
    for key, value in headers:
        if key.decode("latin-1").lower() == "authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
