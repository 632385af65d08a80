"""``tether run`` from the command line: progress, the final answer and the audit summary; a queue
of tasks; an ask answered by ``tether approvals approve`` from another shell; the environment read
at the CLI edge; the tools' JSON Schemas built from signatures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner
from test_resume import ROOT, SCRIPT, _lines, _only_session, _tether_run, _wait_for

from tether.agent import ScriptedCall, ScriptedModelServer, Turn, function_tool
from tether.cli import main
from tether.store import SQLiteStore


def _invoke(server: ScriptedModelServer, *args: str, env: dict[str, str] | None = None) -> Any:
    base = ["run", "--tools", "agent_tools:TOOLS", "--approver", "refuse", *args]
    return CliRunner().invoke(main, base, env=env, catch_exceptions=False)


def test_run_prints_progress_the_answer_and_the_audit_summary(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    db = tmp_path / "t.db"
    with ScriptedModelServer(SCRIPT) as server:
        result = _invoke(
            server,
            "--policy",
            str(policy_path),
            "--task",
            "Write three notes.",
            "--db",
            str(db),
            env={"OPENAI_BASE_URL": server.base_url, "TETHER_MODEL": "scripted", "OPENAI_API_KEY": "sk-test"},
        )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count("ALLOW") == 3 and "write_note" in out
    assert "answer: three notes written" in out
    assert "3 allowed, 0 denied, 0 asked" in out and "chain verified" in out
    assert server.requests and all(r["model"] == "scripted" for r in server.requests)


def test_a_queue_of_tasks_runs_one_session_each_under_one_principal(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("# two tasks\nWrite a note.\n\nWrite another note.\n", encoding="utf-8")
    script = [Turn(tool_calls=(ScriptedCall("write_note", {"text": "x"}),)), Turn(content="done")]
    db = tmp_path / "t.db"
    with ScriptedModelServer(script) as server:
        result = _invoke(
            server, "--policy", str(policy_path), "--tasks", str(tasks), "--db", str(db), "--base-url", server.base_url, "--model", "m",
            "--principal", "ana", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = [d for d in _lines(result.output) if d["type"] == "result"]
    assert [r["stop"] for r in results] == ["completed", "completed"]
    store = SQLiteStore(str(db))
    starts = [store.read(s.session_id, 0, limit=1)[0].event() for s in store.sessions()]
    assert sorted(e.task for e in starts) == ["Write a note.", "Write another note."]  # type: ignore[union-attr]
    assert {e.principal for e in starts} == {"ana"}  # type: ignore[union-attr]
    assert effects.read_text(encoding="utf-8").count("write_note x") == 2


def test_an_ask_is_answered_by_tether_approvals_from_another_shell(policy_path: Path, tmp_path: Path) -> None:
    db, effects, hold = tmp_path / "run.db", tmp_path / "effects.txt", tmp_path / "hold.txt"
    effects.touch()
    script = [Turn(tool_calls=(ScriptedCall("pay", {"to": "bob@example.com", "amount": 5}),)), Turn(content="paid")]
    with ScriptedModelServer(script) as server:
        # ``--approver store`` given after the helper's ``--approver refuse`` wins (click keeps the last).
        proc = _tether_run(
            server, db, effects, hold, "--policy", str(policy_path), "--task", "Pay bob@example.com 5.", "--approver", "store",
            "--approve-timeout", "60",
        )  # fmt: skip

        def pending() -> list[Any]:
            return SQLiteStore(str(db)).pending_approvals() if db.exists() else []

        _wait_for(lambda: bool(pending()), proc, "the approval request")
        call_id = pending()[0].call_id
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        approve = subprocess.run(
            [sys.executable, "-m", "tether", "approvals", "approve", call_id[:10], "--db", str(db), "--by", "ana"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert approve.returncode == 0, approve.stderr
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"tether approvals approve|deny {call_id[:12]}" in err
    calls = [d for d in _lines(out) if d["type"] == "call"]
    assert [(c["verdict"], c["approved"], c["fate"]) for c in calls] == [("ask", True, "ran")]
    assert effects.read_text(encoding="utf-8").splitlines() == ["pay bob@example.com 5"]
    assert _lines(out)[-1]["audit"]["approved"] == 1
    assert _only_session(db)


def test_run_needs_a_task_and_a_model(policy_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing_model = runner.invoke(main, ["run", "--policy", str(policy_path), "--task", "x", "--base-url", "http://127.0.0.1:9/v1"], env={})
    assert missing_model.exit_code == 2 and "--model" in missing_model.output
    no_task = runner.invoke(
        main, ["run", "--policy", str(policy_path), "--model", "m", "--base-url", "http://x/v1", "--db", str(tmp_path / "d")]
    )
    assert no_task.exit_code == 2 and "exactly one of --task" in no_task.output


def test_schemas_come_from_signatures_and_docstrings() -> None:
    def search(query: str, limit: int = 10, kinds: list[Literal["mail", "file"]] | None = None, exact: bool = False) -> str:
        """Search the user's data.

        Args:
            query: What to look for.
            limit: Most results.
        """
        return ""

    spec = function_tool(search).spec
    assert spec.description == "Search the user's data."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "limit": {"type": "integer", "description": "Most results."},
            "kinds": {"type": "array", "items": {"enum": ["mail", "file"]}},
            "exact": {"type": "boolean"},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    explicit = function_tool(search, name="find", parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    assert (explicit.spec.name, explicit.spec.parameters["properties"]) == ("find", {"q": {"type": "string"}})


@pytest.mark.parametrize("bad", ["no colon", "agent_tools:MISSING", "no_such_module_xyz:X"])
def test_bad_tools_option_is_a_usage_error(policy_path: Path, tmp_path: Path, bad: str) -> None:
    result = CliRunner().invoke(
        main, ["run", "--policy", str(policy_path), "--task", "x", "--model", "m", "--base-url", "http://x/v1", "--tools", bad]
    )
    assert result.exit_code == 2 and "--tools" in result.output
