"""What a new user meets: start-up failures in one line, an approval hint that works as printed,
asks that keep the client informed and end before its own timeout, and ``--hide-denied``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mcp_helpers import HERE, POLICIES, TETHER, RawClient, env, run_tether

from tether import SQLiteStore
from tether.cli._approvals import pending_approvals

RAW = HERE / "servers" / "raw_server.py"


def _raw(policy: str, db: Path, *extra: str) -> list[str]:
    return ["--policy", str(POLICIES / policy), "--db", str(db), *extra, "--", sys.executable, str(RAW)]


def _call(rid: object, text: str, token: object = None) -> dict[str, object]:
    params: dict[str, object] = {"name": "echo", "arguments": {"text": text}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


def test_a_server_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    done = run_tether("mcp", "--policy", str(POLICIES / "raw.yaml"), "--db", str(tmp_path / "t.db"), "--", str(tmp_path / "no-such-server"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not start the MCP server" in lines[0] and "no-such-server" in lines[0], done.stderr


def test_a_server_that_exits_at_once_is_one_line_and_an_answer(tmp_path: Path) -> None:
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        client = RawClient(
            ["--policy", str(POLICIES / "raw.yaml"), "--db", str(tmp_path / "t.db"), "--", sys.executable, "-c", "raise SystemExit(3)"],
            stderr=err,
        )
        client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}})
        error = client.answer(1)["error"]
        assert client.close() == 0
    assert "did not initialise" in error["message"] and "status 3" in error["message"]
    text = log.read_text()
    assert "Traceback" not in text and "did not initialise" in text


def test_the_approval_hint_works_as_printed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        client = RawClient(_raw("ask.yaml", Path("rel.db"), "--no-elicit"), stderr=err, cwd=work)
        try:
            client.initialize()
            client.send(_call(1, "hello", token="tok-1"))
            progress = client.read()  # the client hears about the wait at once
            assert progress["method"] == "notifications/progress" and progress["params"]["progressToken"] == "tok-1"
            assert "tether approvals approve" in progress["params"]["message"]
            hint = _wait_for_line(log, "tether approvals approve")
            command = shlex.split(hint[hint.index("tether approvals") :])
            assert command[command.index("--db") + 1] == str(work / "rel.db")  # absolute: works from anywhere
            shell = {k: v for k, v in {**os.environ, **env()}.items() if k not in ("TETHER_POLICY", "TETHER_DB")}
            ran = subprocess.run([*TETHER, *command[1:]], env=shell, capture_output=True, text=True, cwd=tmp_path, timeout=60)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            answer = client.answer(1)
            assert answer["result"]["content"][0]["text"] == "hello"
        finally:
            assert client.close() == 0


def test_an_unanswered_ask_ends_before_the_client_gives_up(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    client = RawClient(_raw("ask.yaml", db, "--ask-timeout", "1.5"))
    try:
        client.initialize()
        started = time.monotonic()
        client.send(_call(1, "hello"))
        result = client.answer(1)["result"]
        took = time.monotonic() - started
        assert result["isError"] and "did not approve" in result["content"][0]["text"] and 1.4 < took < 10
        client.send(_call(2, "again"))  # the proxy exits while this ask waits
    finally:
        assert client.close() == 0
    with SQLiteStore(db) as store:
        assert pending_approvals(store) == []  # no approval outlives the proxy
        sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
        notes = [e.note for e in (i.event() for i in store.read(sid)) if e.kind == "approval_answered"]
    assert len(notes) == 2 and "no answer within 2 s" in notes[0] and ("stopped" in notes[1] or "cancelled" in notes[1]), notes


def test_hide_denied_leaves_out_tools_the_policy_never_allows(tmp_path: Path) -> None:
    listings = []
    for extra in ((), ("--hide-denied",)):
        client = RawClient(_raw("ask.yaml", tmp_path / "t.db", *extra))
        try:
            client.initialize()
            client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            listings.append(sorted(t["name"] for t in client.answer(1)["result"]["tools"]))
            client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "big", "arguments": {"size": 1}}})
            assert "Tether denied" in client.answer(2)["result"]["content"][0]["text"]  # hidden or not, still checked
        finally:
            assert client.close() == 0
    assert listings == [["big", "echo", "garbage", "noise"], ["echo"]]


def _wait_for_line(path: Path, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line with {needle!r} in {path.read_text()!r}")


def _form_message(client: RawClient) -> str | None:
    """The approval form the proxy sends the client (None: it sent none before answering)."""
    while True:
        msg = client.read()
        if msg.get("method") == "elicitation/create":
            message = msg["params"]["message"]
            client.send({"jsonrpc": "2.0", "id": msg["id"], "result": {"action": "decline"}})
            return str(message)
        if msg.get("id") == 1:
            return None


def test_the_approval_form_shows_the_whole_call_with_marks_or_is_not_shown(tmp_path: Path) -> None:
    """The human approves what the tool will receive: an argument with a link after character 1,500
    is shown whole, a right-to-left override as a mark; a call too long for a form is not shown cut."""
    caps = {"elicitation": {"form": {}}}
    long_text = "x" * 1_600 + " then open https://evil.example/\u202egnp.exe"
    client = RawClient(_raw("ask.yaml", tmp_path / "t.db", "--ask-timeout", "3"))
    try:
        client.initialize(caps)
        client.send(_call(1, long_text))
        message = _form_message(client)
        assert message is not None and "https://evil.example/" in message
        assert "\u202e" not in message and "U+202E" in message
        client.answer(1)
    finally:
        assert client.close() == 0
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        client = RawClient(_raw("ask.yaml", tmp_path / "t2.db", "--ask-timeout", "2"), stderr=err)
        try:
            client.initialize(caps)
            client.send(_call(1, "y" * 20_000))
            assert _form_message(client) is None  # refused when nobody answered elsewhere in time
        finally:
            assert client.close() == 0
    assert "too long to show whole" in log.read_text()
