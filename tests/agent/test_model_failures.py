"""Whatever the model server sends, the loop neither crashes nor runs anything unchecked:
malformed tool-call JSON, unknown tools, refusals, HTTP errors, hangs, replies that are not JSON,
streams cut short. Each case runs against the scripted server (a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_loop import effects_of, messages, run, start

from tether.agent import ChatClient, ModelConfig, ModelError, ScriptedCall, ScriptedModelServer, Turn


@pytest.mark.parametrize(
    "arguments",
    ['{"text": "unterminated', "[1, 2]", '"just a string"', "null", "{'text': 'python repr'}", '{"text": "x"} trailing'],
)
def test_malformed_tool_call_json_is_denied_logged_and_told_to_the_model(
    policy_path: Path, tmp_path: Path, effects: Path, arguments: str
) -> None:
    script = [Turn(tool_calls=(ScriptedCall("write_note", arguments),)), Turn(content="gave up")]
    session = start(policy_path, tmp_path, "Write a note.")
    with ScriptedModelServer(script) as server:
        result = run(server, session)
    assert result.stop == "completed"
    (call,) = result.calls
    assert (call.verdict, call.fate) == ("deny", "denied")
    assert call.arguments == arguments  # logged exactly as sent
    assert "arguments" in call.reply
    assert effects_of(effects) == []
    assert session.store.verify([session.id]).ok


def test_unknown_and_misnamed_tools_are_denied(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    calls = (ScriptedCall("rm_rf", {"path": "/"}), ScriptedCall("", {}), ScriptedCall("write\u202enote", {"text": "x"}))
    script = [Turn(tool_calls=calls), Turn(content="ok")]
    session = start(policy_path, tmp_path, "Do something.")
    with ScriptedModelServer(script) as server:
        result = run(server, session)
    assert [c.fate for c in result.calls] == ["denied"] * 3
    assert effects_of(effects) == []


def test_a_refusal_ends_the_run_with_the_refusal(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    session = start(policy_path, tmp_path, "Do something bad.")
    with ScriptedModelServer([Turn(refusal="I can't help with that.")]) as server:
        result = run(server, session, stream=True)
    assert (result.stop, result.answer) == ("refused", "I can't help with that.")
    assert messages(session)[-1].refusal == "I can't help with that."
    assert session.state.status == "ended"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
@pytest.mark.parametrize("failure", ["http_500", "http_503", "http_429", "not_json", "hang", "cut_stream"])
def test_transient_failures_are_retried(policy_path: Path, tmp_path: Path, effects: Path, failure: Any, stream: bool) -> None:
    script = [
        Turn(tool_calls=(ScriptedCall("write_note", {"text": "once"}),), failures=(failure,)),
        Turn(content="done", failures=(failure,)),
    ]
    session = start(policy_path, tmp_path, "Write a note.")
    with ScriptedModelServer(script, hang_s=5) as server:
        result = run(server, session, stream=stream, timeout_s=0.5)
    assert result.stop == "completed", result.detail
    assert effects_of(effects) == ["write_note once"]
    assert len(server.requests) == 4


def test_a_model_that_keeps_failing_stops_the_run_cleanly_and_it_resumes(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    failing = [Turn(tool_calls=(ScriptedCall("write_note", {"text": "once"}),)), Turn(content="done", failures=("http_500",) * 3)]
    session = start(policy_path, tmp_path, "Write a note.")
    with ScriptedModelServer(failing) as server:
        result = run(server, session, max_retries=2)
    assert result.stop == "model_error" and "HTTP 500" in result.detail
    assert session.state.status == "active"
    with ScriptedModelServer([*failing[:1], Turn(content="done")]) as server:
        again = run(server, session)
    assert (again.stop, again.answer) == ("completed", "done")
    assert effects_of(effects) == ["write_note once"]


def test_a_request_the_server_refuses_is_not_retried(tmp_path: Path) -> None:
    with ScriptedModelServer([Turn(failures=("http_400",))]) as server:
        client = ChatClient(ModelConfig(base_url=server.base_url, model="m", backoff_s=0.01))
        with pytest.raises(ModelError, match="HTTP 400"):
            asyncio.run(client.complete([{"role": "user", "content": "hi"}], []))
        assert len(server.requests) == 1


def test_nothing_listening_is_a_model_error(tmp_path: Path) -> None:
    client = ChatClient(ModelConfig(base_url="http://127.0.0.1:9/v1", model="m", backoff_s=0.01, max_retries=1, timeout_s=2))
    with pytest.raises(ModelError, match="could not talk"):
        asyncio.run(client.complete([{"role": "user", "content": "hi"}], []))


def test_a_tool_that_raises_is_recorded_as_an_error_and_the_run_goes_on(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    script = [Turn(tool_calls=(ScriptedCall("lookup_contact", {"name": "mallory"}),)), Turn(content="done")]
    session = start(policy_path, tmp_path, "Read mail.")
    with ScriptedModelServer(script) as server:
        result = run(server, session)
    (call,) = result.calls
    assert call.fate == "failed" and call.reply == "error: KeyError: 'mallory'"
    assert result.stop == "completed"
    assert session.state.context.integrity == "untrusted"  # error text is untrusted data
