"""Bad input and bad servers: malformed JSON-RPC, unknown methods, oversized calls, crashes and hangs.

In every case the proxy answers with an error, the log stays intact, and no
unchecked call reaches the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp_helpers import POLICIES, TETHER, TOY, RawClient, env, proxy_session, run_tether

from tether import SQLiteStore


def _args(db: Path, *extra: str) -> list[str]:
    return ["--policy", str(POLICIES / "toy.yaml"), "--db", str(db), "--pin-key", "toy", *extra, "--", sys.executable, str(TOY)]


def _decisions(db: Path) -> list[str]:
    with SQLiteStore(db) as store:
        return [
            e.verdict
            for s in store.sessions()
            if not s.session_id.startswith("mcp-pins:")
            for e in (i.event() for i in store.read(s.session_id))
            if e.kind == "decision"
        ]


def test_malformed_json_rpc_and_unknown_methods(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    calls = tmp_path / "calls.log"
    proc = subprocess.Popen(
        [*TETHER, "mcp", *_args(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env(), "TOY_CALL_LOG": str(calls)},
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(obj: Any) -> None:
        assert proc.stdin is not None
        proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        proc.stdin.flush()

    def answer(want: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            msg = json.loads(proc.stdout.readline())
            if msg.get("id") == want:
                return dict(msg)

    try:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        assert "result" in answer(1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send("{this is not json")
        send({"jsonrpc": "2.0", "id": 2, "method": "no/such/method"})
        assert answer(2)["error"]["code"] == -32601
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": 42}})
        assert "error" in answer(3)
        send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x" * 200_000}}})
        big = answer(4)["result"]
        assert big["isError"] and "Tether denied" in big["content"][0]["text"]
        send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still alive"}}})
        assert answer(5)["result"]["content"][0]["text"] == "still alive"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
        proc.stdout.close()
    assert calls.read_text().splitlines() == ["echo 23"]  # only the checked, allowed call reached the server
    assert _decisions(db) == ["deny", "allow"]
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_server_crash_and_hang_become_tool_errors(tmp_path: Path, errlog: TextIO) -> None:
    db = tmp_path / "t.db"

    async def hang() -> tuple[str, float]:
        async with proxy_session(_args(db, "--call-timeout", "1.5"), errlog) as client:
            started = time.monotonic()
            result = await client.call_tool("hang", {})
            assert result.is_error
            return result.content[0].text, time.monotonic() - started

    text, took = anyio.run(hang)
    assert "did not answer within 1.5 s" in text and took < 5

    async def crash() -> list[str]:
        async with proxy_session(_args(db, "--call-timeout", "5"), errlog) as client:
            first = await client.call_tool("crash", {})
            second = await client.call_tool("echo", {"text": "after the crash"})
            assert first.is_error and second.is_error
            return [first.content[0].text, second.content[0].text]

    texts = anyio.run(crash)
    assert texts[0].startswith("Tether: the MCP server") and "exited (status 3)" in texts[0], texts
    # Until it is started again (after a backoff), calls to it are denied with the reason.
    assert "is down (exited (status 3); Tether starts it again with backoff)" in texts[1], texts
    assert _decisions(db) == ["allow", "allow", "deny"]
    with SQLiteStore(db) as store:
        errors = [e.error for s in store.sessions() for e in (i.event() for i in store.read(s.session_id)) if e.kind == "result_recorded"]
    assert errors == [True, True]
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_a_cancelled_call_is_passed_on_and_logged(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    client = RawClient(_args(db))
    try:
        client.initialize()
        client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
        time.sleep(0.5)
        client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "user stop"}})
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "next"}}})
        answer = client.read()
        assert answer["id"] == 2 and answer["result"]["content"][0]["text"] == "next"  # nothing came for the cancelled call
    finally:
        assert client.close() == 0
    with SQLiteStore(db) as store:
        sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
        outputs = [e.output for e in (i.event() for i in store.read(sid)) if e.kind == "result_recorded"]
    assert outputs == ["the client cancelled the call", "next"]
