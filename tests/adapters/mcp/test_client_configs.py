"""The configs users already have: each client's format read as a gateway file, and ``tether mcp install``/``uninstall``.

The configs are written in each client's own format (Claude Desktop, Cursor,
VS Code with comments and ``inputs``, Windsurf's ``serverUrl``, Cline's
``autoApprove``/``alwaysAllow``/``timeout``); the servers are real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_helpers import HERE, POLICIES, env, run_tether

from tether.adapters.mcp import load_gateway
from tether.adapters.mcp._catalog import MAX_TOOL_NAME, gateway_tool_names
from tether.adapters.mcp._clients import CLIENTS, is_tether
from tether.errors import ConfigError

PAIR = str(HERE / "servers" / "pair_server.py")


def _pair(role: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [PAIR, "--role", role], **extra}


def _load(tmp_path: Path, name: str, text: str) -> tuple[list[Any], list[str]]:
    path = tmp_path / name
    path.write_text(text)
    warnings: list[str] = []
    return load_gateway(path, warn=warnings.append), warnings


def test_each_clients_format_is_read_as_a_gateway_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TEST_TOKEN", "t0ken")
    (tmp_path / ".env").write_text("# keys\nexport API_KEY='k1'\nOTHER=2\n")
    cline = {
        "mcpServers": {
            "vault_server": _pair("vault", autoApprove=["read_secret"], alwaysAllow=[], timeout=60, disabled=False),
            "old": {**_pair("calc"), "disabled": True},
        }
    }
    servers, warnings = _load(tmp_path, "cline_mcp_settings.json", json.dumps(cline))
    assert [s.name for s in servers] == ["vault-server"]  # underscores mapped to a valid prefix, the disabled one skipped
    assert any("'old' is disabled" in w for w in warnings) and any("alwaysAllow, autoApprove, timeout" in w for w in warnings)
    assert any("'vault_server' is named 'vault-server'" in w for w in warnings)

    cursor = {"mcpServers": {"c": {**_pair("calc"), "envFile": "${workspaceFolder}/.env", "env": {"OTHER": "${env:TETHER_TEST_TOKEN}"}},
                             "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${env:TETHER_TEST_TOKEN}"}}}}  # fmt: skip
    (tmp_path / ".cursor").mkdir()
    servers, _ = _load(tmp_path / ".cursor", "mcp.json", json.dumps(cursor))
    assert servers[0].env == {"API_KEY": "k1", "OTHER": "t0ken"}
    assert servers[1].url == "https://mcp.example.com/mcp" and servers[1].headers == {"Authorization": "Bearer t0ken"}
    assert "t0ken" not in repr(servers[1])  # credentials stay out of reprs and logs

    windsurf = {"mcpServers": {"legacy": {"serverUrl": "http://127.0.0.1:9/sse", "type": "sse"}, "v": _pair("vault")}}
    servers, _ = _load(tmp_path, "mcp_config.json", json.dumps(windsurf))
    assert (servers[0].url, servers[0].transport) == ("http://127.0.0.1:9/sse", "sse")

    vscode = """{
      // VS Code's own file: comments, inputs, trailing commas
      "inputs": [{"type": "promptString", "id": "key", "description": "API key", "password": true}],
      "servers": {
        "v": {"type": "stdio", "command": "PYTHON", "args": ["PAIR", "--role", "vault"],},
        "api": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"X-Key": "${input:key}"}},
      },
    }""".replace("PYTHON", sys.executable).replace("PAIR", PAIR)
    with pytest.raises(ConfigError, match=r"server 'api' uses \$\{input:key\}, a value the client asks the user for"):
        _load(tmp_path, "vscode.json", vscode)
    servers, _ = _load(tmp_path, "vscode.json", vscode.replace("${input:key}", "${env:TETHER_TEST_TOKEN}"))
    assert [s.name for s in servers] == ["v", "api"] and servers[1].headers == {"X-Key": "t0ken"}


def test_bad_client_configs_get_one_line_errors(tmp_path: Path) -> None:
    cases = {
        '{"mcpServers": {"a": {"url": "http://x/", "type": "websocket"}}}': "transport type 'websocket'",
        '{"mcpServers": {"a": {"command": "x", "env": {"K": "${env:TETHER_SURELY_UNSET}"}}}}': "TETHER_SURELY_UNSET is not set",
        '{"mcpServers": {"a": {"command": "x", "frobnicate": 1}}}': "unknown key(s) frobnicate",
        '{"mcpServers": {"a": {"command": "x", "disabled": true}}}': "every server is disabled",
    }
    for text, expected in cases.items():
        path = tmp_path / "c.json"
        path.write_text(text)
        out = run_tether("mcp", "--policy", str(POLICIES / "gateway.yaml"), "--db", str(tmp_path / "t.db"), "--config", str(path))
        assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr, (text, out.stderr)
        assert expected in out.stderr.strip().splitlines()[-1], out.stderr  # one line says what is wrong (warnings before it)


def _session(entry: dict[str, Any]) -> StdioServerParameters:
    return StdioServerParameters(command=entry["command"], args=entry["args"], env={**env(), **entry.get("env", {})})


async def _tools(entry: dict[str, Any]) -> list[str]:
    async with stdio_client(_session(entry)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return sorted(t.name for t in (await session.list_tools()).tools)


@pytest.mark.parametrize("client", ["claude", "vscode"])
def test_install_puts_tether_in_front_and_uninstall_puts_things_back(tmp_path: Path, client: str) -> None:
    key = CLIENTS[client].key
    original = {
        "other": {"keep": True},
        key: {"vault": _pair("vault"), "calc_tools": _pair("calc"), "off": {**_pair("calc"), "disabled": True}},
    }
    if client == "vscode":
        original[key]["vault"]["type"] = "stdio"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(original, indent=2))
    db = tmp_path / "t.db"
    base = ["mcp", "install", "--client", client, "--config", str(config), "--policy", str(POLICIES / "gateway.yaml"), "--db", str(db)]

    dry = run_tether(*base, "--dry-run")
    assert dry.returncode == 0 and '+    "tether": {' in dry.stdout and '-    "vault": {' in dry.stdout, dry.stdout
    assert json.loads(config.read_text()) == original  # nothing written

    done = run_tether(*base)
    assert done.returncode == 0, done.stderr
    installed = json.loads(config.read_text())
    assert installed["other"] == {"keep": True} and sorted(installed[key]) == ["off", "tether"]
    assert is_tether(installed[key]["tether"]) and (installed[key]["tether"].get("type") == "stdio") == (client == "vscode")
    assert len(list(tmp_path.glob("config.json.tether-backup-*"))) == 1
    assert run_tether(*base).stdout.count("nothing to do") == 1  # idempotent: nothing moves twice
    assert len(list(tmp_path.glob("config.json.tether-backup-*"))) == 1

    # The client starts the entry as written: the gateway runs both servers, names mapped to valid prefixes.
    assert anyio.run(_tools, installed[key]["tether"]) == ["calc-tools__add", "vault__read_secret"]

    undo = run_tether("mcp", "uninstall", "--client", client, "--config", str(config))
    assert undo.returncode == 0, undo.stderr
    assert json.loads(config.read_text()) == original and not (tmp_path / "config.json.tether.json").exists()
    again = run_tether("mcp", "uninstall", "--client", client, "--config", str(config))
    assert again.returncode == 2 and "Tether is not installed" in again.stderr


def test_every_client_has_a_default_location() -> None:
    for kind in CLIENTS.values():
        assert kind.default_path().name.endswith(".json")


NAMES = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_-0123456789"), min_size=1, max_size=90)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["files", "a", "x" * 32]), st.lists(NAMES, min_size=1, max_size=12, unique=True))
def test_gateway_tool_names_fit_clients_and_stay_distinct(server: str, names: list[str]) -> None:
    mapped = gateway_tool_names(server, names)
    assert set(mapped) == set(names) and len(set(mapped.values())) == len(names)  # collision-free, reversible
    for name, shown in mapped.items():
        assert len(shown) <= MAX_TOOL_NAME and shown.startswith(f"{server}__")
        assert shown == f"{server}__{name}" or len(f"{server}__{name}") > MAX_TOOL_NAME
    assert gateway_tool_names(server, list(reversed(names))) == mapped  # deterministic


def test_install_without_a_policy_writes_a_starting_one_with_the_lints_rules(tmp_path: Path) -> None:
    config = tmp_path / "mcp_config.json"
    config.write_text(json.dumps({"mcpServers": {"vault": _pair("vault"), "calc": _pair("calc")}}))
    done = run_tether("mcp", "install", "--client", "windsurf", "--config", str(config), "--db", str(tmp_path / "t.db"))
    assert done.returncode == 0, done.stderr
    policy = tmp_path / "mcp_config.json.tether-policy.yaml"
    text = policy.read_text()
    assert "vault__read_secret:" in text and "calc__add:" in text and "name: lint-sidenote" in text
    entry = json.loads(config.read_text())["mcpServers"]["tether"]
    assert entry["args"][entry["args"].index("--policy") + 1] == str(policy)
