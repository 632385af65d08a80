"""What ``auth: oauth`` on a gateway server says, and where its tokens are kept (no SDK import: stdio proxies load none).

The flow itself is in :mod:`._oauth`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tether.errors import ConfigError

DEFAULT_CLIENT_NAME = "Tether MCP gateway"


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """How Tether authorizes itself towards one remote server (``auth: oauth`` in a gateway file)."""

    scopes: str | None = None
    """Scopes to ask for, space-separated (default: what the server's metadata or challenge names)."""
    client_id: str | None = None
    """A client registered beforehand with the authorization server (default: dynamic client registration)."""
    client_secret: str | None = field(default=None, repr=False)
    """That client's secret, if it has one (never logged)."""
    redirect_port: int = 0
    """Loopback port of the redirect URI at ``tether mcp auth`` (0: any free port; a pre-registered client
    needs the port it was registered with)."""
    client_name: str = DEFAULT_CLIENT_NAME
    """The name shown to the user on the authorization server's consent page."""


def oauth_settings(value: Any, name: str, where: str) -> OAuthSettings | None:
    """``auth`` of a gateway entry: ``oauth``, or a mapping (``type: oauth``, ``scopes``, ``client_id``,
    ``client_secret``, ``redirect_port``, ``client_name``; Cursor's ``CLIENT_ID``/``CLIENT_SECRET`` too).
    None for a value that names no OAuth (a client's own ``auth`` shape Tether does not use)."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        if value.lower() == "oauth":
            return OAuthSettings()
        raise ConfigError(f"{where}: server {name!r}: `auth: {value}` is not one Tether speaks (oauth)")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: server {name!r}: `auth` must be `oauth` or a mapping")
    kind = str(value.get("type", "oauth")).lower()
    if kind != "oauth":
        raise ConfigError(f"{where}: server {name!r}: auth type {kind!r} is not one Tether speaks (oauth)")
    scopes = value.get("scopes", value.get("scope"))
    if isinstance(scopes, list):
        scopes = " ".join(str(s) for s in scopes)
    port = value.get("redirect_port", 0)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(f"{where}: server {name!r}: `auth.redirect_port` must be a port number")
    client_id = value.get("client_id", value.get("CLIENT_ID"))
    secret = value.get("client_secret", value.get("CLIENT_SECRET"))
    unknown = set(value) - {"type", "scopes", "scope", "client_id", "CLIENT_ID", "client_secret", "CLIENT_SECRET",
                            "redirect_port", "client_name"}  # fmt: skip
    if unknown:
        raise ConfigError(f"{where}: server {name!r}: unknown `auth` key(s) {', '.join(sorted(unknown))}")
    return OAuthSettings(
        scopes=str(scopes) if scopes else None,
        client_id=str(client_id) if client_id else None,
        client_secret=str(secret) if secret else None,
        redirect_port=port,
        client_name=str(value.get("client_name") or DEFAULT_CLIENT_NAME),
    )


def oauth_folder(db_path: str) -> Path | None:
    """Where the OAuth tokens of proxies on the store at ``db_path`` are kept (None for an in-memory store)."""
    return None if db_path == ":memory:" else Path(f"{os.path.abspath(db_path)}-mcp-oauth")


def token_path(folder: Path, url: str) -> Path:
    """The file of one server URL's tokens: a readable stem and a hash of the whole URL."""
    parts = urlsplit(url)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{parts.hostname or 'server'}-{parts.port or ''}{parts.path}").strip("-")[:48]
    return folder / f"{stem}-{hashlib.sha256(url.encode('utf-8')).hexdigest()[:12]}.json"
