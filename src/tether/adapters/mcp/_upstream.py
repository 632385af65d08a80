"""Where the real (upstream) MCP servers are: a command to start on stdio, or a streamable HTTP URL.

A gateway names several, from repeated ``--server NAME=COMMAND`` options or a
small YAML/JSON file: either ``servers:`` (this project's form) or
``mcpServers:`` (the shape MCP clients use), each entry a ``command`` (string
or list) with optional ``args`` and ``env``, or a ``url``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tether.errors import ConfigError

SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
"""Gateway server names: letters, digits and inner hyphens (so ``__`` splits a tool name unambiguously)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One real server: a command to start (stdio) or a streamable HTTP URL. Exactly one."""

    command: Sequence[str] = ()
    """Program and arguments of a stdio server."""
    url: str | None = None
    """Endpoint of a streamable HTTP server."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables added to the proxy's own for a stdio server."""
    name: str = ""
    """Its name in a gateway (prefixes its tools: ``<name>__<tool>``); empty for a lone server."""
    pins: str | None = None
    """Name of its pins in the store (default: derived from the command or URL)."""

    def __post_init__(self) -> None:
        if bool(self.command) == (self.url is not None):
            raise ConfigError("give the upstream MCP server as a command or as a URL (exactly one)")
        if self.name and not SERVER_NAME.fullmatch(self.name):
            raise ConfigError(f"server name {self.name!r}: use letters, digits and inner hyphens (at most 32)")

    def describe(self) -> str:
        """The command line or URL, for logs and task texts."""
        return self.url if self.url is not None else shlex.join(self.command)

    def pin_key(self) -> str:
        """A stable key naming this server's pins: readable stem plus a hash of the full command or URL."""
        if self.pins:
            return self.pins
        text = self.describe() if self.url is not None else " ".join(self.command)
        stem = self.url if self.url is not None else " ".join(part.rsplit("/", 1)[-1] for part in self.command[:2])
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-")[:48] or "server"
        return f"{slug}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def server_option(value: str) -> Upstream:
    """``NAME=COMMAND ...`` (shell words) or ``NAME=http(s)://...``: one gateway server."""
    name, sep, rest = value.partition("=")
    if not sep or not rest.strip():
        raise ConfigError(
            f"--server {value!r}: write NAME=COMMAND (for example files='npx -y @modelcontextprotocol/server-filesystem /tmp')"
        )
    rest = rest.strip()
    if re.match(r"https?://", rest):
        return Upstream(url=rest, name=name.strip())
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ConfigError(f"--server {value!r}: {exc}") from None
    return Upstream(command=tuple(words), name=name.strip())


def load_gateway(path: str | Path) -> list[Upstream]:
    """The servers of a gateway file (YAML or JSON)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read gateway file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"gateway file {str(path)!r}: expected a mapping with `servers:` (or `mcpServers:`)")
    servers = data.get("servers", data.get("mcpServers"))
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(f"gateway file {str(path)!r}: `servers:` must map names to servers")
    return [_entry(str(name), spec, str(path)) for name, spec in servers.items()]


def _entry(name: str, spec: Any, where: str) -> Upstream:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: server {name!r} must be a mapping with `command` or `url`")
    unknown = set(spec) - {"command", "args", "env", "url", "type", "pins", "description"}
    if unknown:
        raise ConfigError(f"{where}: server {name!r} has unknown key(s) {', '.join(sorted(unknown))}")
    env = spec.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str | int | float) for k, v in env.items()):
        raise ConfigError(f"{where}: server {name!r}: `env` must map names to strings")
    pins = spec.get("pins")
    if "url" in spec:
        if not isinstance(spec["url"], str):
            raise ConfigError(f"{where}: server {name!r}: `url` must be a string")
        return Upstream(url=spec["url"], name=name, pins=str(pins) if pins else None)
    command = spec.get("command")
    if isinstance(command, str):
        words = shlex.split(command) if " " in command and "args" not in spec else [command]
    elif isinstance(command, list) and all(isinstance(w, str) for w in command):
        words = list(command)
    else:
        raise ConfigError(f"{where}: server {name!r} needs `command` (a string or a list) or `url`")
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: server {name!r}: `args` must be a list of strings")
    return Upstream(command=(*words, *args), env={k: str(v) for k, v in env.items()}, name=name, pins=str(pins) if pins else None)


def check_gateway(servers: Sequence[Upstream]) -> None:
    """Refuse a gateway with unnamed or twice-named servers."""
    names = [s.name for s in servers]
    if any(not n for n in names):
        raise ConfigError("every server of a gateway needs a name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"gateway server name(s) used twice: {', '.join(dupes)}")


def describe_all(servers: Sequence[Upstream]) -> str:
    """One line naming every server."""
    if len(servers) == 1 and not servers[0].name:
        return servers[0].describe()
    return json.dumps({s.name: s.describe() for s in servers}, ensure_ascii=False)


def environment(extra: Mapping[str, str]) -> dict[str, str] | None:
    """The environment for a stdio server: the proxy's own plus ``extra`` (None: inherit as is)."""
    if not extra:
        return None
    import os

    return {**os.environ, **extra}
