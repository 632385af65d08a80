"""Streamable HTTP both ways: an upstream server at a URL, and the proxy served on loopback HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import POLICIES, TETHER, TOY, env, run_tether

from tether import SQLiteStore
from tether.adapters.mcp import check_loopback
from tether.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _running(cmd: list[str], port: int, log: Path, extra: dict[str, str] | None = None) -> Iterator[None]:
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env={**os.environ, **env(), **(extra or {})}, stdout=fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _token(log: Path) -> str:
    """The token a first start of ``tether mcp --http`` shows once on its log."""
    match = re.search(r"Authorization: Bearer (\S+)", log.read_text())
    assert match, log.read_text()
    return match.group(1)


def test_upstream_url_and_proxy_over_http(tmp_path: Path) -> None:
    up_port, proxy_port = _free_port(), _free_port()
    db = tmp_path / "t.db"
    proxy_cmd = [*TETHER, "mcp", "--policy", str(POLICIES / "toy.yaml"), "--db", str(db), "--http", str(proxy_port)]
    proxy_cmd += ["--url", f"http://127.0.0.1:{up_port}/mcp"]

    async def scenario() -> None:
        token = _token(tmp_path / "proxy.log")
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(f"http://127.0.0.1:{proxy_port}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            assert {t.name for t in (await client.list_tools()).tools} == {"echo", "crash", "hang"}
            echo = await client.call_tool("echo", {"text": "over http"})
            assert not echo.is_error and echo.content[0].text == "over http"
            denied = await client.call_tool("echo", {"text": 5})
            assert denied.is_error and "Tether denied" in denied.content[0].text
            readme = await client.read_resource("toy://readme")
            assert "PINEAPPLE" in readme.contents[0].text

    with (
        _running([sys.executable, str(TOY), "--http", str(up_port)], up_port, tmp_path / "up.log"),
        _running(proxy_cmd, proxy_port, tmp_path / "proxy.log"),
    ):
        anyio.run(scenario)
    with SQLiteStore(db) as store:
        events = [
            e for s in store.sessions() if not s.session_id.startswith("mcp-pins:") for e in (i.event() for i in store.read(s.session_id))
        ]
    sources = {e.origin: e for e in events if e.kind == "source_added"}
    assert set(sources) == {
        f"mcp tool definitions of http://127.0.0.1:{up_port}/mcp (not reviewed by a human)",
        "mcp resource toy://readme",
    }
    assert all(e.label.untrusted for e in sources.values())
    assert "PINEAPPLE" in sources["mcp resource toy://readme"].text
    assert [e.verdict for e in events if e.kind == "decision"] == ["allow", "deny", "allow"]  # the last: resources/read
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_proxy_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ConfigError):
        check_loopback(host)


def _status(port: int, headers: dict[str, str]) -> int:
    import httpx2

    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    return httpx2.post(f"http://127.0.0.1:{port}/mcp", json=body, headers={**accept, **headers}, timeout=10).status_code


async def _over_sse(port: int, token: str) -> str:
    from mcp.client.sse import sse_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        sse_client(f"http://127.0.0.1:{port}/sse", headers=headers, timeout=5) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        echo = await client.call_tool("echo", {"text": "over the legacy transport"})
        return str(echo.content[0].text)  # type: ignore[union-attr]


def test_the_served_endpoint_needs_its_token_and_a_revoked_one_is_refused(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "t.db"
    log = tmp_path / "proxy.log"
    cmd = [*TETHER, "mcp", "--policy", str(POLICIES / "toy.yaml"), "--db", str(db), "--http", str(port), "--", sys.executable, str(TOY)]
    with _running(cmd, port, log):
        token = _token(log)
        assert _status(port, {}) == 401
        assert _status(port, {"Authorization": "Bearer tmcp_wrong"}) == 401
        assert _status(port, {"Authorization": f"Basic {token}"}) == 401
        assert _status(port, {"Authorization": f"Bearer {token}"}) == 200
        listed = run_tether("mcp", "token", "list", "--db", str(db)).stdout
        token_id = listed.split()[0]
        assert token not in listed and token not in (tmp_path / "t.db-mcp-tokens.json").read_text()  # hashes only
        second = run_tether("mcp", "token", "new", "--db", str(db), "--note", "ci").stdout
        other = re.search(r"Bearer (\S+)", second).group(1)  # type: ignore[union-attr]
        assert run_tether("mcp", "token", "revoke", token_id, "--db", str(db)).returncode == 0
        assert _status(port, {"Authorization": f"Bearer {token}"}) == 401  # revoked: refused at the next request
        assert _status(port, {"Authorization": f"Bearer {other}"}) == 200
        assert anyio.run(_over_sse, port, other) == "over the legacy transport"
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises whatever its HTTP stack gives for a 401
            anyio.run(_over_sse, port, token)
    assert token not in db.read_bytes().decode("latin-1")  # the token never reaches the event log
    assert "Bearer" not in log.read_text().split("Clients send", 1)[1].split("\n", 1)[1]  # shown once, at creation

    open_port = _free_port()
    cmd = [*TETHER, "mcp", "--policy", str(POLICIES / "toy.yaml"), "--db", str(db), "--http", str(open_port), "--no-auth"]
    with _running([*cmd, "--", sys.executable, str(TOY)], open_port, tmp_path / "open.log"):
        assert _status(open_port, {}) == 200  # --no-auth, on loopback only
    remote = run_tether("mcp", "--policy", str(POLICIES / "toy.yaml"), "--http", "1", "--host", "0.0.0.0", "--allow-remote", "--no-auth",
                        "--", sys.executable, str(TOY))  # fmt: skip
    assert remote.returncode == 2 and "beyond loopback needs its token" in remote.stderr


def test_upstream_credentials_from_the_environment_and_sse(tmp_path: Path, everything_cmd: list[str]) -> None:
    """A gateway reaches a server that requires a bearer header (another Tether endpoint) and one that speaks SSE."""
    guarded, sse_port = _free_port(), _free_port()
    inner_db = tmp_path / "inner.db"
    inner = [
        *TETHER,
        "mcp",
        "--policy",
        str(POLICIES / "toy.yaml"),
        "--db",
        str(inner_db),
        "--http",
        str(guarded),
        "--",
        sys.executable,
        str(TOY),
    ]
    config = tmp_path / "gateway.json"
    servers = {
        "toy": {"type": "http", "url": f"http://127.0.0.1:{guarded}/mcp", "headers": {"Authorization": "Bearer ${env:UPSTREAM_TOKEN}"}},
        "everything": {"type": "sse", "url": f"http://127.0.0.1:{sse_port}/sse"},
    }
    config.write_text(json.dumps({"mcpServers": servers}))
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "tether: 1\nname: p\ntools:\n  toy__echo: {effect: read, args: {text: {type: string}}}\n  everything__echo: {effect: read, args: {message: {type: string}}}\n"
    )

    async def scenario(token: str) -> list[str]:
        from mcp import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=TETHER[0], args=[*TETHER[1:], "mcp", "--policy", str(policy), "--db", str(tmp_path / "g.db"),
                                       "--config", str(config)], env={**env(), "UPSTREAM_TOKEN": token})  # fmt: skip
        with open(tmp_path / "gateway.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                names = sorted(t.name for t in (await client.list_tools()).tools)
                a = await client.call_tool("toy__echo", {"text": "through the token"})
                b = await client.call_tool("everything__echo", {"message": "over sse"})
                assert "toy__echo" in names and "everything__echo" in names, names
                return [a.content[0].text, b.content[0].text]  # type: ignore[union-attr]

    with (
        _running(inner, guarded, tmp_path / "inner.log"),
        _running(["node", everything_cmd[0], "sse"], sse_port, tmp_path / "sse.log", extra={"PORT": str(sse_port)}),
    ):
        token = _token(tmp_path / "inner.log")
        texts = anyio.run(scenario, token)
        assert texts[0] == "through the token" and "over sse" in texts[1], texts
    log = (tmp_path / "gateway.log").read_text()
    assert token not in log and token not in (tmp_path / "g.db").read_bytes().decode("latin-1")
