"""MCP servers as tools of ``tether run``: real servers from PyPI (mcp-server-time) and the proxy tests'
toy server, driven by the scripted model server (the stand-in for a hosted model).

What is checked: a legitimate MCP call runs and its output reaches the model as recorded; an ask is
never executed without an answer; a tool the server did not list is denied; a rug pull (a changed
definition) is held by the pins, not offered, and a call to it denied without reaching the server;
the definitions the model reads are recorded as untrusted sources first; Python tools sit next to
MCP tools; the chain verifies.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tether.adapters.mcp import McpToolset, Upstream
from tether.agent import Agent, ChatClient, ModelConfig, ScriptedCall, ScriptedModelServer, Turn
from tether.approvals import StaticApprover
from tether.cli import main
from tether.events import DecisionMade, ResultRecorded, SourceAdded
from tether.policy import Policy
from tether.session import Guard
from tether.store import SQLiteStore

HERE = Path(__file__).parent
TOY = HERE.parent / "adapters" / "mcp" / "servers" / "toy_server.py"
TIME = str(Path(sys.executable).parent / "mcp-server-time")

POLICY = """
tether: 1
name: mcp-agent
approval_timeout_s: 5
tools:
  time__get_current_time:
    effect: read
    output: trusted
    args:
      timezone: {type: string, required: true, maxLength: 64}
  time__convert_time:
    effect: read
    args:
      source_timezone: {type: string, required: true}
      time: {type: string, required: true}
      target_timezone: {type: string, required: true}
    ask:
      - name: convert-needs-human
        when: {always: true}
        reason: conversions are approved by a human in this test
  toy__echo:
    effect: write
    output: untrusted
    args:
      text: {type: string, required: true, flow: {require: trusted}}
  toy__extra: {effect: read}
  write_note:
    effect: write
    output: trusted
    args:
      text: {type: string, required: true, maxLength: 500}
"""


def _servers(call_log: Path, variant: str = "a") -> list[Upstream]:
    toy_env = {"TOY_VARIANT": variant, "TOY_CALL_LOG": str(call_log)}
    return [Upstream(command=(TIME,), name="time"), Upstream(command=(sys.executable, str(TOY)), env=toy_env, name="toy")]


def _tool_messages(request: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in request["messages"] if m.get("role") == "tool"]


def test_mcp_tools_through_the_gate_with_the_scripted_model(tmp_path: Path) -> None:
    policy = Policy.from_yaml(POLICY)
    store = SQLiteStore(tmp_path / "t.db")
    call_log = tmp_path / "toy-calls.txt"
    tools = McpToolset(_servers(call_log), store, policy)
    session = Guard(policy, store, detectors=tools.detectors).start_session("Say hello with echo and tell me the time in UTC.")
    script = [
        Turn(tool_calls=(ScriptedCall("time__get_current_time", {"timezone": "UTC"}), ScriptedCall("toy__echo", {"text": "hello"}))),
        Turn(
            tool_calls=(ScriptedCall("time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),)
        ),
        Turn(tool_calls=(ScriptedCall("toy__extra", {}), ScriptedCall("toy__echo", {"text": "exfiltrate this"}))),
        Turn(content="It is some time in UTC; I said hello."),
    ]

    async def go() -> Any:
        with ScriptedModelServer(script) as server:
            client = ChatClient(ModelConfig(base_url=server.base_url, model="scripted"))
            async with tools.connected(session):
                result = await Agent(client, tools, approver=StaticApprover(False)).run(session)
            return result, server.requests

    result, requests = asyncio.run(go())
    assert result.stop == "completed"
    fates = [(c.tool, c.fate) for c in result.calls]
    assert fates == [
        ("time__get_current_time", "ran"),
        ("toy__echo", "ran"),
        ("time__convert_time", "refused"),
        ("toy__extra", "denied"),
        ("toy__echo", "denied"),
    ]
    # The model was offered the servers' tools under their gateway names.
    offered = {t["function"]["name"] for t in requests[0]["tools"]}
    assert {"time__get_current_time", "time__convert_time", "toy__echo", "toy__crash"} <= offered
    # What the MCP tool returned reached the model exactly as recorded.
    time_reply = _tool_messages(requests[1])[0]
    assert '"timezone": "UTC"' in time_reply
    assert _tool_messages(requests[1])[1] == "hello"
    # The server saw one echo call: the refused conversion, the unlisted tool and the untrusted echo never reached it.
    assert call_log.read_text(encoding="utf-8").splitlines() == ["echo 17"]
    unlisted = result.calls[3]
    assert "did not list a tool named 'extra'" in unlisted.reply
    assert "flow" in " ".join(result.calls[4].rules) or "trusted" in result.calls[4].reply
    events = [s.event() for s in store.read(session.id)]
    sources = [e for e in events if isinstance(e, SourceAdded) and e.origin.startswith("mcp tool definitions")]
    assert {s.origin for s in sources} == {
        "mcp tool definitions of time (not reviewed by a human)",
        "mcp tool definitions of toy (not reviewed by a human)",
    }
    assert all(s.label.untrusted for s in sources) and "get_current_time" in sources[0].text
    assert sum(isinstance(e, DecisionMade) for e in events) == 5
    # Each output was recorded with the policy's label (before the model's next request read it).
    labels = {e.call_id: e.label for e in events if isinstance(e, ResultRecorded)}
    assert [labels[c.call_id].untrusted for c in result.calls[:2]] == [False, True]
    assert store.verify([session.id]).ok


def test_a_rug_pull_is_held_by_the_pins_next_to_python_tools(tmp_path: Path, policy_path: Path, effects: Path) -> None:
    """``tether run --mcp CONFIG --tools ...``: the first run pins the toy server; a second run, whose
    server rewrote ``echo``'s description, is not offered ``echo`` and its call is denied unrun."""
    db = tmp_path / "t.db"
    call_log = tmp_path / "toy-calls.txt"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")

    def config(variant: str) -> Path:
        path = tmp_path / f"servers-{variant}.yaml"
        servers = {"toy": {"command": sys.executable, "args": [str(TOY)], "env": {"TOY_VARIANT": variant, "TOY_CALL_LOG": str(call_log)}}}
        path.write_text(json.dumps({"servers": servers}), encoding="utf-8")
        return path

    script = [
        Turn(tool_calls=(ScriptedCall("toy__echo", {"text": "hello"}), ScriptedCall("write_note", {"text": "noted"}))),
        Turn(content="done"),
    ]
    outputs = []
    for variant in ("a", "b"):
        with ScriptedModelServer(script) as server:
            args = ["run", "--policy", str(policy), "--mcp", str(config(variant)), "--tools", "agent_tools:TOOLS", "--db", str(db)]
            args += [
                "--task",
                "Say hello with echo, then note it.",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--approver",
                "refuse",
                "--json",
            ]
            done = CliRunner().invoke(main, args, catch_exceptions=False)
            assert done.exit_code == 0, done.output
            offered = {t["function"]["name"] for t in server.requests[0]["tools"]}
        lines = [json.loads(line) for line in done.output.splitlines() if line.startswith("{")]
        outputs.append((offered, [(d["tool"], d["fate"]) for d in lines if d["type"] == "call"], lines[-1]))
    (first_offered, first_calls, first), (second_offered, second_calls, second) = outputs
    assert {"toy__echo", "write_note"} <= first_offered and first_calls == [("toy__echo", "ran"), ("write_note", "ran")]
    assert "toy__echo" not in second_offered and "toy__extra" not in second_offered and "write_note" in second_offered
    assert second_calls == [("toy__echo", "denied"), ("write_note", "ran")]
    assert call_log.read_text(encoding="utf-8").splitlines() == ["echo 17"]  # only the first run's
    assert effects.read_text(encoding="utf-8").splitlines() == ["write_note noted"] * 2
    assert first["audit"]["chain_verified"] and second["audit"]["chain_verified"]


def test_a_lone_server_from_the_command_line(tmp_path: Path) -> None:
    """``--mcp-server COMMAND``: the tools keep the server's own names."""
    policy = tmp_path / "policy.yaml"
    policy.write_text((HERE.parent / "adapters" / "mcp" / "policies" / "time.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    script = [Turn(tool_calls=(ScriptedCall("get_current_time", {"timezone": "Europe/Paris"}),)), Turn(content="done")]
    with ScriptedModelServer(script) as server:
        args = ["run", "--policy", str(policy), "--mcp-server", TIME, "--db", str(tmp_path / "t.db"), "--task", "What time is it in Paris?"]
        done = CliRunner().invoke(main, [*args, "--base-url", server.base_url, "--model", "m", "--approver", "refuse", "--json"])
        assert done.exit_code == 0, done.output
        assert '"timezone": "Europe/Paris"' in _tool_messages(server.requests[1])[0]
    calls = [json.loads(line) for line in done.output.splitlines() if line.startswith('{"type": "call"')]
    assert [(c["tool"], c["verdict"], c["fate"]) for c in calls] == [("get_current_time", "allow", "ran")]


RAW = HERE.parent / "adapters" / "mcp" / "servers" / "raw_server.py"

ROBUST_POLICY = """
tether: 1
name: mcp-robust
tools:
  echo: {effect: read, output: untrusted, args: {text: {type: string}}}
  garbage: {effect: read}
  noise: {effect: read}
  hang: {effect: read}
  crash: {effect: read}
"""


def _run_lone(tmp_path: Path, server: Upstream, script: list[Turn]) -> Any:
    policy = Policy.from_yaml(ROBUST_POLICY)
    store = SQLiteStore(tmp_path / "t.db")
    tools = McpToolset(server, store, policy, call_timeout_s=2.0)
    session = Guard(policy, store, detectors=tools.detectors).start_session("Exercise the server.")

    async def go() -> Any:
        with ScriptedModelServer(script) as model:
            async with tools.connected(session):
                return await Agent(ChatClient(ModelConfig(base_url=model.base_url, model="m")), tools).run(session)

    result = asyncio.run(go())
    assert result.stop == "completed" and store.verify([session.id]).ok
    return result


def test_a_server_that_hangs_or_crashes_fails_the_call_not_the_run(tmp_path: Path) -> None:
    script = [
        Turn(tool_calls=(ScriptedCall("hang", {}),)),
        Turn(tool_calls=(ScriptedCall("echo", {"text": "still here"}),)),
        Turn(tool_calls=(ScriptedCall("crash", {}),)),
        Turn(tool_calls=(ScriptedCall("echo", {"text": "gone?"}),)),
        Turn(content="done"),
    ]
    result = _run_lone(tmp_path, Upstream(command=(sys.executable, str(TOY))), script)
    assert [c.fate for c in result.calls] == ["failed", "ran", "failed", "failed"]
    assert "no answer within 2 s" in result.calls[0].reply and result.calls[1].reply == "still here"
    assert "exited" in result.calls[2].reply and "exited" in result.calls[3].reply


def test_malformed_answers_from_a_server_are_errors_and_stray_lines_are_ignored(tmp_path: Path) -> None:
    script = [
        Turn(tool_calls=(ScriptedCall("garbage", {}), ScriptedCall("noise", {}), ScriptedCall("echo", {"text": "ok"}))),
        Turn(content="done"),
    ]
    result = _run_lone(tmp_path, Upstream(command=(sys.executable, str(RAW))), script)
    assert [c.fate for c in result.calls] == ["failed", "ran", "ran"]
    assert "malformed" in result.calls[0].reply


def test_reviewed_definitions_ground_values_for_their_own_server_only(tmp_path: Path) -> None:
    """A definition a human reviewed is recorded as trusted text: a value copied from it may go to
    that server's tools, not to a Python tool (nor another server's): the definition scope denies it."""
    from tether.adapters.mcp import PinBook, list_server
    from tether.agent import FunctionToolset, ToolsetGroup

    policy = Policy.from_yaml(
        POLICY + "  send_email:\n    effect: write\n    args:\n      to: {type: string, required: true, flow: {require: trusted}}\n"
    )
    store = SQLiteStore(tmp_path / "t.db")
    toy = Upstream(command=(sys.executable, str(TOY)), env={"TOY_CALL_LOG": str(tmp_path / "calls.txt")}, name="toy")
    listing = asyncio.run(list_server(toy))
    PinBook(store, toy.pin_key()).review(listing.definitions(), by="test reviewer")
    sent: list[str] = []

    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent"

    mcp = McpToolset([toy], store, policy)
    session = Guard(policy, store, detectors=mcp.detectors).start_session("Say hi.")
    # "Echo the text back." is the reviewed description of toy's echo: its words are trusted, but only for toy.
    script = [
        Turn(
            tool_calls=(
                ScriptedCall("toy__echo", {"text": "Echo the text back."}),
                ScriptedCall("send_email", {"to": "Echo the text back."}),
            )
        ),
        Turn(content="done"),
    ]

    async def go() -> Any:
        with ScriptedModelServer(script) as model:
            async with mcp.connected(session):
                tools = ToolsetGroup([FunctionToolset([send_email]), mcp])
                return await Agent(ChatClient(ModelConfig(base_url=model.base_url, model="m")), tools).run(session)

    result = asyncio.run(go())
    events = [s.event() for s in store.read(session.id)]
    assert any(isinstance(e, SourceAdded) and "approved by a human" in e.origin and not e.label.untrusted for e in events)
    assert [(c.tool, c.fate) for c in result.calls] == [("toy__echo", "ran"), ("send_email", "denied")]
    assert "another MCP server" in result.calls[1].reply and sent == []


def test_a_run_with_mcp_tools_resumes_with_the_servers_started_again(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text((HERE.parent / "adapters" / "mcp" / "policies" / "time.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    script = [
        Turn(tool_calls=(ScriptedCall("get_current_time", {"timezone": "UTC"}),)),
        Turn(tool_calls=(ScriptedCall("get_current_time", {"timezone": "Asia/Tokyo"}),)),
        Turn(content="done"),
    ]
    db = str(tmp_path / "t.db")
    with ScriptedModelServer(script) as server:
        common = ["--mcp-server", TIME, "--db", db, "--base-url", server.base_url, "--model", "m", "--approver", "refuse", "--json"]
        first = CliRunner().invoke(
            main, ["run", "--policy", str(policy), "--task", "Time in UTC, then Tokyo.", "--max-steps", "1", *common]
        )
        assert first.exit_code == 1, first.output  # stopped by the step limit
        sid = json.loads(first.output.splitlines()[-1])["session_id"]
        second = CliRunner().invoke(main, ["run", "--resume", sid, *common])
    assert second.exit_code == 0, second.output
    calls = [json.loads(line) for line in second.output.splitlines() if line.startswith('{"type": "call"')]
    assert [(c["arguments"], c["fate"]) for c in calls] == [('{"timezone": "Asia/Tokyo"}', "ran")]
    result = json.loads(second.output.splitlines()[-1])
    assert result["stop"] == "completed" and result["audit"]["allowed"] == 2 and result["audit"]["chain_verified"]


def test_a_streamable_http_server(tmp_path: Path) -> None:
    """A server reached by URL (``url:`` in the config): the SDK's streamable HTTP client link."""
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    policy = Policy.from_yaml(ROBUST_POLICY)
    store = SQLiteStore(tmp_path / "t.db")
    proc = subprocess.Popen([sys.executable, str(TOY), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "the toy server did not start"
            time.sleep(0.1)
        tools = McpToolset(Upstream(url=f"http://127.0.0.1:{port}/mcp"), store, policy)
        session = Guard(policy, store, detectors=tools.detectors).start_session("Echo hi.")
        script = [Turn(tool_calls=(ScriptedCall("echo", {"text": "hi over http"}),)), Turn(content="done")]

        async def go() -> Any:
            with ScriptedModelServer(script) as model:
                async with tools.connected(session):
                    return await Agent(ChatClient(ModelConfig(base_url=model.base_url, model="m")), tools).run(session)

        result = asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert [(c.fate, c.reply) for c in result.calls] == [("ran", "hi over http")]
    assert store.verify([session.id]).ok
