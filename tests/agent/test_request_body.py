"""What ``tether run`` asks the model server for: the tools with ``tool_choice: auto`` (the API's
default, made explicit because llama-cpp-python's server offers no tool call without it), and the
sampling temperature given on the command line; an assistant turn of tool calls only is sent back
with ``content: ""``, which llama-cpp-python's server takes (it rejects null)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from test_loop import run, start

from tether.agent import ScriptedCall, ScriptedModelServer, Turn
from tether.cli import main


def test_tools_are_offered_with_tool_choice_auto_unless_told_otherwise(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    script = [Turn(tool_calls=(ScriptedCall("write_note", {"text": "x"}),)), Turn(content="done")]
    with ScriptedModelServer(script) as server:
        run(server, start(policy_path, tmp_path))
    first = server.requests[0]
    assert first["tool_choice"] == "auto" and first["tools"]
    (turn,) = [m for m in server.requests[1]["messages"] if m["role"] == "assistant"]
    assert turn["content"] == "" and turn["tool_calls"][0]["function"]["name"] == "write_note"
    assert "temperature" not in first  # the server's default unless one is given
    with ScriptedModelServer(script) as server:
        run(server, start(policy_path, tmp_path / "again"), tool_choice=None)
    assert "tool_choice" not in server.requests[0]


def test_the_temperature_option_reaches_the_server(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    with ScriptedModelServer([Turn(content="done")]) as server:
        args = ["run", "--policy", str(policy_path), "--task", "x", "--model", "m", "--base-url", server.base_url]
        args += ["--tools", "agent_tools:TOOLS", "--db", str(tmp_path / "t.db"), "--temperature", "0", "--approver", "refuse"]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server.requests[0]["temperature"] == 0
