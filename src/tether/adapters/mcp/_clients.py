"""The MCP configs users already have: where each client keeps them, and putting Tether in front of their servers.

``tether mcp install --client NAME`` moves the client's enabled servers
into a gateway file beside its config (``<config>.tether.json``, in the
client's own format, which the gateway reads as it is) and puts one entry
in their place that runs ``tether mcp`` over all of them: one Tether
session, so a value read through one server keeps its labels when it goes
to another (per-server proxies could not see that). The config is backed
up first (``<config>.tether-backup-<time>``); running it again moves only
servers added since; ``tether mcp uninstall`` puts the servers back and
removes the entry. Disabled servers stay where they are.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tether.errors import ConfigError

ClientName = Literal["claude", "cursor", "vscode", "windsurf", "cline"]
"""The MCP clients whose config files Tether reads and rewrites."""

ENTRY = "tether"
"""Name of the entry ``install`` adds (``tether-gateway`` when a server of the client already has that name)."""


@dataclass(frozen=True, slots=True)
class Client:
    """One MCP client's config file format."""

    name: ClientName
    """Short name (``--client``)."""
    title: str
    """The product's name."""
    key: Literal["mcpServers", "servers"]
    """The member that maps server names to servers."""
    typed: bool = False
    """Its stdio entries carry ``"type": "stdio"`` (VS Code)."""
    paths: dict[str, list[str]] = field(default_factory=dict)
    """Default config file per platform (``darwin``, ``win32``, ``linux``); ``~`` and ``%APPDATA%`` expanded."""

    def default_path(self) -> Path:
        """The client's user-level config file on this platform (the first that exists, else the first)."""
        platform = "darwin" if sys.platform == "darwin" else "win32" if sys.platform.startswith("win") else "linux"
        candidates = [Path(os.path.expandvars(os.path.expanduser(p))) for p in self.paths.get(platform, [])]
        if not candidates:
            raise ConfigError(f"{self.title} keeps no MCP config on {platform}; give --config PATH")
        return next((p for p in candidates if p.exists()), candidates[0])


_VSCODE_USER = {"darwin": "~/Library/Application Support/Code/User", "win32": "%APPDATA%/Code/User", "linux": "~/.config/Code/User"}
_CLINE = "globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"

CLIENTS: dict[str, Client] = {
    "claude": Client("claude", "Claude Desktop", "mcpServers", paths={
        "darwin": ["~/Library/Application Support/Claude/claude_desktop_config.json"],
        "win32": ["%APPDATA%/Claude/claude_desktop_config.json"],
        "linux": ["~/.config/Claude/claude_desktop_config.json"],
    }),
    "cursor": Client("cursor", "Cursor", "mcpServers", paths={p: ["~/.cursor/mcp.json"] for p in ("darwin", "win32", "linux")}),
    "vscode": Client("vscode", "VS Code", "servers", typed=True, paths={p: [f"{d}/mcp.json"] for p, d in _VSCODE_USER.items()}),
    "windsurf": Client("windsurf", "Windsurf", "mcpServers",
                       paths={p: ["~/.codeium/windsurf/mcp_config.json"] for p in ("darwin", "win32", "linux")}),
    "cline": Client("cline", "Cline", "mcpServers", paths={
        p: [f"{d}/{_CLINE}", "~/.cline/data/settings/cline_mcp_settings.json"] for p, d in _VSCODE_USER.items()
    }),
}  # fmt: skip
"""Every client ``install`` knows, by ``--client`` name."""


def find_client(name: str) -> Client:
    """The client called ``name`` (a clear error naming the known ones otherwise)."""
    found = CLIENTS.get(name.lower())
    if found is None:
        raise ConfigError(f"unknown MCP client {name!r}; known: {', '.join(CLIENTS)}")
    return found


def read_config(path: Path) -> dict[str, Any]:
    """A client config as JSON (VS Code's may hold comments and trailing commas: they are read, not kept)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(strip_jsonc(text))
    except ValueError as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r}: expected a JSON object")
    return data


def strip_jsonc(text: str) -> str:
    """JSON with ``//`` and ``/* */`` comments and trailing commas made plain (strings left alone)."""
    pattern = r'(?P<s>"(?:\\.|[^"\\])*")|(?P<c>//[^\n]*|/\*.*?\*/)|(?P<t>,(?=\s*[}\]]))|(?P<o>[^"/,]+|.)'
    return "".join(m.group(0) for m in re.finditer(pattern, text, re.S) if m.lastgroup in ("s", "o"))


def is_tether(entry: Any) -> bool:
    """Whether a server entry runs ``tether mcp`` (one ``install`` wrote, or one written by hand)."""
    if not isinstance(entry, Mapping):
        return False
    words = [str(entry.get("command", "")), *(str(a) for a in entry.get("args") or [])]
    base = [Path(w).name for w in words[:3]]
    return "mcp" in words[:5] and ("tether" in base or ("-m" in words[:3] and "tether" in words[:4]))


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What ``install`` or ``uninstall`` does to one config: the new texts, and what it says about them."""

    config: Path
    """The client's config file."""
    before: str
    """Its text now."""
    after: str
    """Its text after the change (equal to ``before``: nothing to do)."""
    sidecar: Path
    """The gateway file that holds the servers Tether runs."""
    sidecar_after: str | None
    """The gateway file's new text (None: it is removed)."""
    notes: list[str]
    """One line per server moved, kept or skipped."""

    @property
    def changed(self) -> bool:
        """Whether anything would be written."""
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff of the config (what ``--dry-run`` shows)."""
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True), str(self.config), f"{self.config} (after)"
        )
        return "".join(lines)


def sidecar_of(config: Path) -> Path:
    """The gateway file beside a client's config."""
    return config.with_name(config.name + ".tether.json")


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def plan_install(kind: Client, config: Path, *, policy: Path, db: Path, tether: list[str] | None = None) -> ConfigChange:
    """What ``install`` would write: the client's enabled servers moved into the gateway file, one entry in their place."""
    data = read_config(config)
    before = config.read_text(encoding="utf-8") if config.exists() else ""
    servers = data.get(kind.key)
    if servers is None:
        servers = {}
    if not isinstance(servers, dict):
        raise ConfigError(f"{str(config)!r}: `{kind.key}` must map server names to servers")
    sidecar = sidecar_of(config)
    kept = read_config(sidecar).get(kind.key, {}) if sidecar.exists() else {}
    moved = dict(kept) if isinstance(kept, dict) else {}
    notes: list[str] = []
    stay: dict[str, Any] = {}
    for name, entry in servers.items():
        if is_tether(entry):
            stay[name] = entry
        elif isinstance(entry, dict) and entry.get("disabled") is True:
            stay[name] = entry
            notes.append(f"{name}: disabled; left as it is")
        elif name in moved:
            raise ConfigError(f"{str(config)!r}: server {name!r} is in the config and in {str(sidecar)!r}; rename one")
        else:
            moved[name] = entry
            notes.append(f"{name}: now runs behind Tether")
    if not moved:
        raise ConfigError(f"{str(config)!r} has no enabled MCP server to put Tether in front of")
    entry_name = next((n for n in (ENTRY, f"{ENTRY}-gateway") if n not in moved and (n not in stay or is_tether(stay[n]))), None)
    if entry_name is None:
        raise ConfigError(f"{str(config)!r}: the names {ENTRY!r} and {ENTRY + '-gateway'!r} are both taken")
    command = tether or [sys.executable, "-m", "tether"]
    args = [*command[1:], "mcp", "--policy", str(policy), "--db", str(db), "--config", str(sidecar)]
    gateway: dict[str, Any] = {"type": "stdio"} if kind.typed else {}
    gateway.update({"command": command[0], "args": args})
    stay = {n: e for n, e in stay.items() if not (is_tether(e) and n in (ENTRY, f"{ENTRY}-gateway"))}
    after_data = {**data, kind.key: {**stay, entry_name: gateway}}
    side_data = {"note": f"Servers of {kind.title} run behind Tether (tether mcp install); tether mcp uninstall puts them back.",
                 "client": kind.name, kind.key: moved}  # fmt: skip
    after = _dump(after_data)
    if after.strip() == before.strip() and sidecar.exists() and json.loads(sidecar.read_text(encoding="utf-8")).get(kind.key) == moved:
        after = before
    return ConfigChange(config, before, after, sidecar, _dump(side_data), notes)


def plan_uninstall(kind: Client, config: Path) -> ConfigChange:
    """What ``uninstall`` would write: the servers back in the config, Tether's entry gone, the gateway file removed."""
    sidecar = sidecar_of(config)
    if not sidecar.exists():
        raise ConfigError(f"Tether is not installed in {str(config)!r} (no {str(sidecar)!r})")
    data = read_config(config)
    before = config.read_text(encoding="utf-8") if config.exists() else ""
    servers = data.get(kind.key) or {}
    moved = read_config(sidecar).get(kind.key) or {}
    if not isinstance(servers, dict) or not isinstance(moved, dict):
        raise ConfigError(f"{str(config)!r}: `{kind.key}` must map server names to servers")
    notes: list[str] = []
    restored = {n: e for n, e in servers.items() if not (is_tether(e) and n in (ENTRY, f"{ENTRY}-gateway"))}
    for name, entry in moved.items():
        if name in restored:
            notes.append(f"{name}: the config has a server of this name now; the moved one is left in the backup")
            continue
        restored[name] = entry
        notes.append(f"{name}: back in the config")
    return ConfigChange(config, before, _dump({**data, kind.key: restored}), sidecar, None, notes)


def apply_change(change: ConfigChange) -> Path | None:
    """Write a change: the config is backed up first and replaced atomically. Returns the backup (None: nothing done)."""
    if not change.changed and change.sidecar_after is not None:
        return None
    backup = None
    if change.config.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        backup = change.config.with_name(f"{change.config.name}.tether-backup-{stamp}")
        shutil.copy2(change.config, backup)
    change.config.parent.mkdir(parents=True, exist_ok=True)
    if change.sidecar_after is not None:
        _write(change.sidecar, change.sidecar_after)
    _write(change.config, change.after)
    if change.sidecar_after is None:
        change.sidecar.unlink(missing_ok=True)
    return backup


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tether-tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        shutil.copymode(path, tmp)
    os.replace(tmp, path)
