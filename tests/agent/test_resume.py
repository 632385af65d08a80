"""Resume: the conversation and the session state are rebuilt from the log, and no tool call is
executed twice. A call admitted before a crash whose result was never recorded is reported and
answered "result unknown", never run again.

The crash is real in the last tests: a ``tether run`` process is SIGKILLed mid-run (inside a tool,
after its side effect; and while it waits for the model), then ``tether run --resume`` finishes the
task. Side effects are counted in a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import agent_tools
import pytest
from test_loop import effects_of, messages, run, start

from tether.agent import RESULT_UNKNOWN, Agent, ChatClient, FunctionToolset, ModelConfig, ScriptedCall, ScriptedModelServer, Turn
from tether.events import ResultRecorded
from tether.session import Guard
from tether.store import SQLiteStore

ROOT = Path(__file__).parents[2]

SCRIPT = [
    Turn(tool_calls=(ScriptedCall("write_note", {"text": "first"}),)),
    Turn(tool_calls=(ScriptedCall("write_note", {"text": "second"}), ScriptedCall("write_note", {"text": "third"}))),
    Turn(content="three notes written"),
]


class Crash(BaseException):
    """Stands for the process dying (not an error the gate would record)."""


def test_a_call_whose_result_was_lost_is_reported_and_not_run_again(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    def crash_on_second(text: str) -> str:
        agent_tools.write_note(text)
        if text == "second":
            raise Crash  # dies after the side effect, before the result is recorded
        return f"noted: {text}"

    crash_on_second.__name__ = "write_note"
    session = start(policy_path, tmp_path)
    with ScriptedModelServer(SCRIPT) as server:
        agent = Agent(ChatClient(ModelConfig(base_url=server.base_url, model="m")), FunctionToolset([crash_on_second]))
        with pytest.raises(Crash):
            asyncio.run(agent.run(session))
        # Another process picks the session up from the log.
        store = SQLiteStore(str(tmp_path / "t.db"))
        resumed = Guard.for_session(store, session.id).resume_session(session.id)
        result = run(server, resumed)
    assert effects_of(effects) == ["write_note first", "write_note second", "write_note third"]
    assert [(c.tool, c.fate, c.resumed) for c in result.calls] == [("write_note", "unknown", True), ("write_note", "ran", False)]
    assert result.calls[0].reply == RESULT_UNKNOWN
    assert (result.stop, result.answer) == ("completed", "three notes written")
    # The model saw the same conversation, continued: the unknown result, then the third note's.
    final_request = server.requests[-1]["messages"]
    assert [m["content"] for m in final_request if m["role"] == "tool"] == ["noted: first", RESULT_UNKNOWN, "noted: third"]
    # The log closes the lost call as an error result, and the chain verifies.
    errors = [e for e in (s.event() for s in store.read(session.id)) if isinstance(e, ResultRecorded) and e.error]
    assert [e.output for e in errors] == [RESULT_UNKNOWN]
    assert store.verify([session.id]).ok


def test_a_recorded_result_not_yet_given_to_the_model_is_given_from_the_log(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    session = start(policy_path, tmp_path)
    with ScriptedModelServer(SCRIPT) as server:
        run(server, session)
    # Cut the log back to just after the second note's result was recorded (a crash right there):
    # the rebuilt conversation must give the model that recorded output, not run the note again.
    store = session.store
    events = store.read(session.id)
    cut = next(s.seq for s in events if isinstance(s.event(), ResultRecorded) and s.event().output == "noted: second")  # type: ignore[union-attr]
    copy = SQLiteStore(str(tmp_path / "copy.db"))
    copy.put_policy(session.policy.hash, session.policy.name, store.get_policy(session.policy.hash) or "")
    copy.append(session.id, [s.event() for s in events[:cut]])
    effects.write_text("", encoding="utf-8")
    resumed = Guard.for_session(copy, session.id).resume_session(session.id)
    with ScriptedModelServer(SCRIPT) as server:
        result = run(server, resumed)
    assert [(c.fate, c.resumed) for c in result.calls] == [("ran", True), ("ran", False)]
    assert effects_of(effects) == ["write_note third"]
    assert result.answer == "three notes written"
    assert [m.role for m in messages(resumed)].count("tool") == 3


def test_resuming_a_finished_run_runs_nothing(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    session = start(policy_path, tmp_path)
    with ScriptedModelServer(SCRIPT) as server:
        run(server, session)
        before = len(server.requests)
        again = run(server, Guard.for_session(session.store, session.id).resume_session(session.id))
        assert len(server.requests) == before
    assert (again.stop, again.answer, again.calls) == ("completed", "three notes written", [])
    assert len(effects_of(effects)) == 3


# ---------------------------------------------------------------- a real process, SIGKILLed


def _tether_run(server: ScriptedModelServer, db: Path, effects: Path, hold: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(Path(__file__).parent)]),
        "AGENT_TEST_EFFECTS": str(effects),
        "AGENT_TEST_HOLD": str(hold),
    }
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TETHER_MODEL", "TETHER_DB"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "tether", "run", "--model", "scripted", "--base-url", server.base_url, "--tools", "agent_tools:TOOLS"]
    cmd += ["--db", str(db), "--approver", "refuse", "--json", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))


def _wait_for(predicate: Any, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"tether run exited ({proc.returncode}) before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _only_session(db: Path) -> str:
    (summary,) = SQLiteStore(str(db)).sessions()
    return summary.session_id


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_sigkill_inside_a_tool_then_resume_runs_no_call_twice(policy_path: Path, tmp_path: Path) -> None:
    db, effects, hold = tmp_path / "run.db", tmp_path / "effects.txt", tmp_path / "hold.txt"
    effects.touch()
    hold.write_text("second", encoding="utf-8")  # write_note("second") blocks after its side effect
    with ScriptedModelServer(SCRIPT) as server:
        proc = _tether_run(server, db, effects, hold, "--policy", str(policy_path), "--task", "Write three notes.")
        _wait_for(lambda: "write_note second" in effects.read_text(encoding="utf-8"), proc, "the second note")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        hold.unlink()
        sid = _only_session(db)
        resumed = _tether_run(server, db, effects, hold, "--resume", sid[:12])
        out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert effects_of(effects) == ["write_note first", "write_note second", "write_note third"]
    lines = _lines(out)
    calls = [(d["tool"], d["fate"], d["resumed"]) for d in lines if d["type"] == "call"]
    assert calls == [("write_note", "unknown", True), ("write_note", "ran", False)]
    assert "may or may not have run" in err and "NOT run again" in err
    result = lines[-1]
    assert (result["stop"], result["answer"]) == ("completed", "three notes written")
    assert result["audit"]["chain_verified"] is True
    assert result["audit"]["result_unknown"] == 1


def test_sigkill_while_waiting_for_the_model_then_resume(policy_path: Path, tmp_path: Path) -> None:
    db, effects, hold = tmp_path / "run.db", tmp_path / "effects.txt", tmp_path / "hold.txt"
    effects.touch()
    script = [*SCRIPT[:2], Turn(content="three notes written", failures=("hang",))]
    with ScriptedModelServer(script, hang_s=60) as server:
        proc = _tether_run(server, db, effects, hold, "--policy", str(policy_path), "--task", "Write three notes.")
        _wait_for(lambda: len(server.requests) >= 3, proc, "the third model request")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        resumed = _tether_run(server, db, effects, hold, "--resume", _only_session(db))
        out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert effects_of(effects) == ["write_note first", "write_note second", "write_note third"]
    result = _lines(out)[-1]
    assert (result["stop"], result["answer"]) == ("completed", "three notes written")
    assert [d for d in _lines(out) if d["type"] == "call"] == []
