"""Streamable HTTP both ways: an upstream server at a URL, and the proxy served on loopback HTTP."""

from __future__ import annotations

import os
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
from mcp_helpers import POLICIES, TETHER, TOY, env, run_tether

from tether import SQLiteStore
from tether.adapters.mcp import check_loopback
from tether.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _running(cmd: list[str], port: int, log: Path) -> Iterator[None]:
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env={**os.environ, **env()}, stdout=fh, stderr=subprocess.STDOUT)
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


def test_upstream_url_and_proxy_over_http(tmp_path: Path) -> None:
    up_port, proxy_port = _free_port(), _free_port()
    db = tmp_path / "t.db"
    proxy_cmd = [*TETHER, "mcp", "--policy", str(POLICIES / "toy.yaml"), "--db", str(db), "--http", str(proxy_port)]
    proxy_cmd += ["--url", f"http://127.0.0.1:{up_port}/mcp"]

    async def scenario() -> None:
        async with streamable_http_client(f"http://127.0.0.1:{proxy_port}/mcp") as (read, write), ClientSession(read, write) as client:
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
