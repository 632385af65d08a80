"""A gateway that survives its servers: one that crashes mid-call or never starts takes only its own tools away.

Real servers (``servers/crash_server.py`` exits in the middle of its Nth call;
a command that does not exist never starts), the real ``tether mcp`` CLI,
and a client that reads every line the gateway writes, notifications
included.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from mcp_helpers import HERE, RawClient, run_tether

CRASH = HERE / "servers" / "crash_server.py"
PAIR = HERE / "servers" / "pair_server.py"
POLICY = """
tether: 1
name: supervise
tools:
  crash__count: {effect: read}
  vault__read_secret: {effect: read, args: {name: {type: string}}}
  ghost__anything: {effect: read}
"""


def _until(client: RawClient, want: Any, timeout: float = 20.0) -> tuple[dict[str, Any], list[str]]:
    """Read until the answer to ``want`` (an id) or a notification named ``want``; the notifications seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = client.read(max(0.1, deadline - time.monotonic()))
        if "method" in msg:
            seen.append(msg["method"])
            if msg["method"] == want:
                return msg, seen
        elif msg.get("id") == want:
            return msg, seen


def _call(client: RawClient, rid: int, tool: str, args: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    client.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": args or {}}})
    answer, seen = _until(client, rid)
    return answer["result"], seen


def _tools(client: RawClient, rid: int) -> list[str]:
    client.send({"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": {}})
    return sorted(t["name"] for t in _until(client, rid)[0]["result"]["tools"])


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


def test_a_server_that_crashes_mid_call_is_restarted_and_the_gateway_serves_on(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    starts = tmp_path / "starts.log"
    args = [
        "--policy", str(policy), "--db", str(db), "--restart-backoff", "1.5",
        "--server", f"crash={sys.executable} {CRASH} --exit-after 3",
        "--server", f"vault={sys.executable} {PAIR} --role vault",
    ]  # fmt: skip
    client = RawClient(args, extra_env={"CRASH_LOG": str(starts)})
    try:
        init = client.initialize()
        assert init["capabilities"]["tools"]["listChanged"] is True
        assert _tools(client, 1) == ["crash__count", "vault__read_secret"]
        assert [_text(_call(client, i, "crash__count")[0]) for i in (2, 3)] == ["1", "2"]

        crashed, _ = _call(client, 4, "crash__count")  # the server exits in the middle of this call
        assert crashed["isError"] and "exited (status 3)" in _text(crashed), crashed
        _until(client, "notifications/tools/list_changed")
        assert _tools(client, 5) == ["vault__read_secret"]  # its tools are gone, the others serve
        down, _ = _call(client, 6, "crash__count")
        assert down["isError"] and "the MCP server crash is down (exited (status 3); Tether starts it again" in _text(down), down
        assert "sk-live" in _text(_call(client, 7, "vault__read_secret", {"name": "api"})[0])

        status = json.loads(run_tether("mcp", "status", "--db", str(db), "--json").stdout)
        crash = next(s for s in status[0]["servers"] if s["name"] == "crash")
        assert status[0]["running"] and crash["state"] == "down" and crash["last_error"] == "exited (status 3)"

        _until(client, "notifications/tools/list_changed")  # restarted after the backoff
        assert _tools(client, 8) == ["crash__count", "vault__read_secret"]
        assert _text(_call(client, 9, "crash__count")[0]) == "1"  # a fresh process
        assert starts.read_text().count("start") == 2

        shown = run_tether("mcp", "status", "--db", str(db))
        assert "crash: up, restarts 1" in shown.stdout and "last error: exited (status 3)" in shown.stdout, shown.stdout
        assert "vault: up, restarts 0" in shown.stdout
    finally:
        assert client.close() == 0
    assert json.loads(run_tether("mcp", "status", "--db", str(db), "--json").stdout) == []  # the run's status file is gone
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_a_server_that_never_starts_does_not_take_the_gateway_down(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    args = [
        "--policy", str(policy), "--db", str(db), "--restart-backoff", "0.5",
        "--server", f"vault={sys.executable} {PAIR} --role vault",
        "--server", f"ghost={tmp_path / 'no-such-server'} --stdio",
    ]  # fmt: skip
    client = RawClient(args)
    try:
        client.initialize()
        assert _tools(client, 1) == ["vault__read_secret"]
        refused, _ = _call(client, 2, "ghost__anything")
        assert refused["isError"] and "the MCP server ghost is down (could not start" in _text(refused), refused
        assert "sk-live" in _text(_call(client, 3, "vault__read_secret", {"name": "api"})[0])
        time.sleep(2.0)  # a few tries, each failing
        ghost = next(
            s for s in json.loads(run_tether("mcp", "status", "--db", str(db), "--json").stdout)[0]["servers"] if s["name"] == "ghost"
        )
        assert ghost["state"] == "down" and ghost["last_error"].startswith("could not start") and ghost["restarts"] == 0
    finally:
        assert client.close() == 0


def test_a_url_server_that_goes_away_is_reconnected(tmp_path: Path) -> None:
    """The gateway reconnects to a streamable-HTTP server that stopped and came back on its address."""
    import socket
    import subprocess

    from mcp_helpers import TOY, env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, str(TOY), "--http", str(port)], env={**__import__("os").environ, **env()})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.1)
        raise AssertionError("the toy server did not start")

    policy = tmp_path / "p.yaml"
    policy.write_text("tether: 1\nname: p\ntools:\n  web__echo: {effect: read, args: {text: {type: string}}}\n")
    server = start()
    args = [
        "--policy",
        str(policy),
        "--db",
        str(tmp_path / "t.db"),
        "--restart-backoff",
        "0.2",
        "--server",
        f"web=http://127.0.0.1:{port}/mcp",
    ]
    log = tmp_path / "gateway.log"
    errors = log.open("w")
    client = RawClient(args, stderr=errors)
    try:
        client.initialize()
        assert _text(_call(client, 1, "web__echo", {"text": "one"})[0]) == "one"
        server.terminate()
        server.wait(timeout=20)
        started = time.monotonic()
        failed, _ = _call(client, 2, "web__echo", {"text": "gone"})  # noticed at the next request, answered at once
        assert failed["isError"] and time.monotonic() - started < 30, failed
        _until(client, "notifications/tools/list_changed", timeout=60)
        assert _tools(client, 3) == []
        server = start()
        deadline, rid = time.monotonic() + 90, 10  # tries at 0.2, 0.4, 0.8 ... s while it was away
        while "web__echo" not in _tools(client, rid):  # reconnected and initialised again, after a backoff
            assert time.monotonic() < deadline, log.read_text()
            rid += 1
            time.sleep(0.5)
        assert _text(_call(client, 4, "web__echo", {"text": "two"})[0]) == "two"
    finally:
        server.terminate()
        server.wait(timeout=20)
        assert client.close() == 0
        errors.close()
