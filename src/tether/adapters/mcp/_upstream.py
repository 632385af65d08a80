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
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tether.adapters.mcp._clients import strip_jsonc
from tether.adapters.mcp._oauth_config import OAuthSettings, oauth_settings
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
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """HTTP headers sent to a URL server (credentials: never logged, never in the event log)."""
    transport: Literal["http", "sse"] = "http"
    """A URL server's transport: streamable HTTP, or the legacy HTTP+SSE transport."""
    oauth: OAuthSettings | None = None
    """A URL server reached with the MCP authorization flow (OAuth 2.1; tokens from ``tether mcp auth``)."""

    def __post_init__(self) -> None:
        if bool(self.command) == (self.url is not None):
            raise ConfigError("give the upstream MCP server as a command or as a URL (exactly one)")
        if self.oauth is not None and self.url is None:
            raise ConfigError(f"server {self.name or self.describe()!r}: OAuth (`auth: oauth`) is for URL servers only")
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


def load_gateway(path: str | Path, *, warn: Callable[[str], None] | None = None) -> list[Upstream]:
    """The servers of a gateway file (YAML or JSON): this project's ``servers:`` form, or an MCP client's own
    config file (Claude Desktop, Cursor, Windsurf, Cline: ``mcpServers``; VS Code: ``servers``).

    Disabled servers are skipped; keys only a client uses (``autoApprove``, ``timeout`` ...) are
    ignored with a warning; names are mapped to valid gateway prefixes; ``${env:NAME}``,
    ``${NAME}``, ``${userHome}`` and ``${workspaceFolder}`` are expanded, and a value only the
    client can supply (``${input:...}``) is refused with the reason.
    """
    say = warn or (lambda text: print(f"tether-mcp: {text}", file=sys.stderr, flush=True))
    try:
        text = Path(path).read_text(encoding="utf-8")
        # A client's JSON (VS Code's may hold comments and trailing commas), else YAML.
        data = json.loads(strip_jsonc(text)) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read gateway file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"gateway file {str(path)!r}: expected a mapping with `servers:` (or `mcpServers:`)")
    servers = data.get("servers", data.get("mcpServers"))
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(f"gateway file {str(path)!r}: `servers:` must map names to servers")
    where = str(path)
    folder = _workspace(Path(path))
    out: list[Upstream] = []
    taken: set[str] = set()
    for name, spec in servers.items():
        if isinstance(spec, dict) and spec.get("disabled") is True:
            say(f"{where}: server {name!r} is disabled; skipped")
            continue
        prefix = gateway_name(str(name), taken)
        if prefix != name:
            say(f"{where}: server {name!r} is named {prefix!r} in the gateway (its tools: {prefix}__TOOL)")
        taken.add(prefix)
        out.append(_entry(prefix, str(name), spec, where, folder, say))
    if not out:
        raise ConfigError(f"gateway file {where!r}: every server is disabled")
    return out


def gateway_name(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A valid gateway prefix for a client's server name (letters, digits, inner hyphens, at most 32),
    made unique among ``taken`` with a short hash of the original name."""
    if SERVER_NAME.fullmatch(name) and name not in taken:
        return name
    base = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", name)).strip("-")[:32].strip("-") or "server"
    if base not in taken and SERVER_NAME.fullmatch(base):
        return base
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    for size in range(6, 65):
        candidate = f"{base[: 31 - size].strip('-') or 's'}-{digest[:size]}"
        if candidate not in taken:
            return candidate
    raise ConfigError(f"no gateway name left for server {name!r}")  # pragma: no cover - 59 hash lengths all taken


_KNOWN = {"command", "args", "env", "url", "serverUrl", "type", "transport", "pins", "description", "headers", "envFile", "disabled",
          "auth"}  # fmt: skip
_CLIENT_ONLY = {"autoApprove", "alwaysAllow", "timeout", "disabledTools", "cwd", "dev", "gallery", "version", "enabled", "trust",
                "includeTools", "excludeTools", "oauth", "name", "icon", "tools", "capabilities"}  # fmt: skip
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _workspace(path: Path) -> Path:
    """What ``${workspaceFolder}`` stands for: the folder holding ``.vscode``/``.cursor``, else the file's folder."""
    folder = path.resolve().parent
    return folder.parent if folder.name in (".vscode", ".cursor", ".windsurf") else folder


def expand_variables(value: str, name: str, where: str) -> str:
    """``${env:NAME}``, ``${NAME}`` and ``${userHome}`` in a command-line value (``${workspaceFolder}``: the current folder)."""
    return _expand(value, name, where, Path.cwd())


def _expand(value: str, name: str, where: str, folder: Path) -> str:
    import os

    def one(match: re.Match[str]) -> str:
        var = match.group(1)
        kind, sep, arg = var.partition(":")
        if (sep and kind == "env") or (
            not sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var) and var not in ("userHome", "workspaceFolder")
        ):
            key = arg if sep else var
            if key not in os.environ:
                raise ConfigError(f"{where}: server {name!r} uses ${{{var}}} but {key} is not set in the environment")
            return os.environ[key]
        if var == "userHome":
            return str(Path.home())
        if var in ("workspaceFolder", "workspaceRoot"):
            return str(folder)
        if kind == "input":
            raise ConfigError(
                f"{where}: server {name!r} uses ${{{var}}}, a value the client asks the user for; Tether cannot ask: "
                f"put the value in an environment variable and write ${{env:NAME}} instead"
            )
        raise ConfigError(f"{where}: server {name!r} uses ${{{var}}}, a variable Tether does not expand")

    return _VARIABLE.sub(one, value)


def _strings(value: Any, what: str, name: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()):
        raise ConfigError(f"{where}: server {name!r}: `{what}` must map names to strings")
    return {k: str(v) for k, v in value.items()}


def _env_file(path: str, name: str, where: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes), as VS Code's and Cursor's ``envFile`` read them."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: server {name!r}: cannot read envFile {path!r}: {exc.strerror or exc}") from None
    out: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _entry(name: str, original: str, spec: Any, where: str, folder: Path, say: Callable[[str], None]) -> Upstream:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: server {original!r} must be a mapping with `command` or `url`")
    ignored = sorted(set(spec) & _CLIENT_ONLY)
    if ignored:
        say(f"{where}: server {original!r}: {', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} the client's own; "
            "Tether ignores it (the policy decides what runs)")  # fmt: skip
    unknown = set(spec) - _KNOWN - _CLIENT_ONLY
    if unknown:
        raise ConfigError(f"{where}: server {original!r} has unknown key(s) {', '.join(sorted(unknown))}")

    def expand(value: str) -> str:
        return _expand(value, original, where, folder)

    env = {k: expand(v) for k, v in _strings(spec.get("env") or {}, "env", original, where).items()}
    if isinstance(spec.get("envFile"), str):
        env = {**_env_file(expand(spec["envFile"]), original, where), **env}
    pins = str(spec["pins"]) if spec.get("pins") else None
    kind = str(spec.get("type") or spec.get("transport") or "").lower().replace("_", "-")
    url = spec.get("url", spec.get("serverUrl"))
    if url is not None or kind in ("http", "sse", "streamable-http", "streamablehttp"):
        if not isinstance(url, str):
            raise ConfigError(f"{where}: server {original!r}: `url` must be a string")
        headers = {k: expand(v) for k, v in _strings(spec.get("headers") or {}, "headers", original, where).items()}
        if kind not in ("", "http", "sse", "streamable-http", "streamablehttp"):
            raise ConfigError(f"{where}: server {original!r}: transport type {kind!r} is not one Tether speaks (http, sse)")
        transport: Literal["http", "sse"] = "sse" if kind == "sse" else "http"
        auth = spec.get("auth")
        oauth = oauth_settings({k: expand(v) if isinstance(v, str) else v for k, v in auth.items()} if isinstance(auth, dict) else auth,
                               original, where)  # fmt: skip
        return Upstream(url=expand(url), name=name, pins=pins, headers=headers, transport=transport, oauth=oauth)
    if kind not in ("", "stdio"):
        raise ConfigError(f"{where}: server {original!r}: transport type {kind!r} is not one Tether speaks (stdio, http, sse)")
    if spec.get("auth") not in (None, False):
        raise ConfigError(f"{where}: server {original!r}: `auth` (OAuth) is for URL servers only")
    command = spec.get("command")
    if isinstance(command, str):
        words = shlex.split(command) if " " in command and "args" not in spec else [command]
    elif isinstance(command, list) and all(isinstance(w, str) for w in command):
        words = list(command)
    else:
        raise ConfigError(f"{where}: server {original!r} needs `command` (a string or a list) or `url`")
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise ConfigError(f"{where}: server {original!r}: `args` must be a list of strings")
    return Upstream(command=tuple(expand(str(w)) for w in (*words, *args)), env=env, name=name, pins=pins)


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
