"""Other client implementations through the proxy against ``server-everything``: the official
TypeScript SDK (a small node script) and the MCP Inspector's CLI mode.

The Inspector is run from its ``@modelcontextprotocol/inspector-cli`` package
(what ``npx @modelcontextprotocol/inspector --cli`` starts): the current 2.x
launcher needs Node.js 22, the CLI itself runs on Node.js 18+.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mcp_helpers import HERE, POLICIES, TETHER, env, npm_cache

from tether import SQLiteStore

TS_CLIENT = HERE / "clients" / "ts_client.mjs"


def _proxy(db: Path, everything_cmd: list[str]) -> list[str]:
    return [*TETHER, "mcp", "--policy", str(POLICIES / "everything.yaml"), "--db", str(db), "--", *everything_cmd]


def test_typescript_sdk_client(tmp_path: Path, everything_cmd: list[str]) -> None:
    db = tmp_path / "t.db"
    sdk = npm_cache() / "node_modules" / "@modelcontextprotocol" / "sdk"
    done = subprocess.run(
        ["node", str(TS_CLIENT), *_proxy(db, everything_cmd)],
        env={**os.environ, **env(), "MCP_SDK_DIR": str(sdk)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["server"] == {"name": "mcp-servers/everything", "title": "Everything Reference Server", "version": "2.0.0"}
    assert len(out["tools"]) == 16 and "trigger-sampling-request" in out["tools"]  # form elicitation only: no URL tool
    assert out["sum"] == "The sum of 2 and 3 is 5." and len(out["progress"]) >= 2
    assert out["sampled"] and "forty-two" in out["sampling"]
    assert out["elicited"] and "Ana" in out["elicitation"] and "ts-roots" in out["roots"]
    assert set(out["structured"]) == {"temperature", "conditions", "humidity"}
    assert out["denied"].startswith("Tether denied this call")
    assert out["complete"] == ["Sales", "Support"] and out["logs"] >= 1
    assert out["task"][0] == "taskCreated" and out["task"][-1] == "result" and "Research Report" in out["taskResult"]
    with SQLiteStore(db) as store:
        sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
        events = [i.event() for i in store.read(sid)]
    task_call = next(e.call_id for e in events if e.kind == "call_proposed" and e.tool == "simulate-research-query")
    recorded = [e for e in events if e.kind == "result_recorded" and e.call_id == task_call]
    assert len(recorded) == 1 and "Research Report" in recorded[0].output  # the task's result, recorded when fetched


def _inspector(target: list[str], *method: str) -> object:
    cli = npm_cache() / "node_modules" / "@modelcontextprotocol" / "inspector-cli" / "build"
    # The CLI finds its package.json relative to the working directory.
    done = subprocess.run(
        ["node", "cli.js", "--cli", *target, *method],
        cwd=cli,
        env={**os.environ, **env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "method",
    [
        ("--method", "tools/list"),
        ("--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=2", "--tool-arg", "b=3"),
        ("--method", "prompts/get", "--prompt-name", "args-prompt", "--prompt-args", "city=Paris"),
        ("--method", "resources/read", "--uri", "demo://resource/static/document/features.md"),
    ],
)
def test_inspector_cli_sees_the_same_as_direct(tmp_path: Path, everything_cmd: list[str], method: tuple[str, ...]) -> None:
    direct = _inspector(everything_cmd, *method)
    assert _inspector(_proxy(tmp_path / "t.db", everything_cmd), *method) == direct


def test_inspector_cli_is_told_why_a_call_is_denied(tmp_path: Path, everything_cmd: list[str]) -> None:
    denied = _inspector(_proxy(tmp_path / "t.db", everything_cmd), "--method", "tools/call", "--tool-name", "gzip-file-as-resource")
    assert isinstance(denied, dict) and denied["isError"] is True
    assert "not named in policy 'everything'" in denied["content"][0]["text"]
