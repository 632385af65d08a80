"""``tether run --guard-url``: the agent loop's checks, records, messages and asks go through the
guard service (a real server on loopback); the log lands in the service's store; an ask waits for
an overseer's answer given through the API; resuming reads the conversation back from the service."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from test_resume import SCRIPT
from tests.server.guard_fixtures import make_tokens, thread_server

from tether import Policy
from tether.agent import ScriptedCall, ScriptedModelServer, Turn
from tether.cli import main
from tether.client import RemoteGuard
from tether.events import MessageAdded
from tether.store import SQLiteStore


def _run(server: ScriptedModelServer, url: str, token: str, *args: str) -> Any:
    base = ["run", "--tools", "agent_tools:TOOLS", "--base-url", server.base_url, "--model", "m", "--json", *args]
    return CliRunner().invoke(main, base, env={"TETHER_GUARD_URL": url, "TETHER_GUARD_TOKEN": token}, catch_exceptions=False)


def _result(output: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return next(d for d in lines if d["type"] == "result")


def test_a_run_through_the_service(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    db = str(tmp_path / "service.db")
    tokens = make_tokens(db, Policy.from_file(policy_path))
    with thread_server(db) as url, ScriptedModelServer(SCRIPT) as server:
        result = _run(server, url, tokens.agent, "--policy", str(policy_path), "--task", "Write three notes.", "--principal", "ana")
        assert result.exit_code == 0, result.output
        doc = _result(result.output)
        assert doc["stop"] == "completed" and doc["answer"] == "three notes written"
        assert doc["audit"]["allowed"] == 3 and doc["audit"]["chain_verified"]
        # Resuming a finished run reads its conversation back from the service and does nothing more.
        again = _run(server, url, tokens.agent, "--resume", doc["session_id"])
        assert again.exit_code == 0 and _result(again.output)["answer"] == "three notes written"
    assert effects.read_text(encoding="utf-8").count("write_note") == 3
    store = SQLiteStore(db)
    events = [item.event() for item in store.read(doc["session_id"])]
    assert store.verify().ok
    store.close()
    assert sum(isinstance(e, MessageAdded) for e in events) == 8  # system, task, 3 model turns, 3 tool results
    assert events[0].principal == "ana"  # type: ignore[union-attr]


def test_an_ask_waits_for_an_overseer_through_the_service(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    db = str(tmp_path / "service.db")
    tokens = make_tokens(db, Policy.from_file(policy_path))
    script = [Turn(tool_calls=(ScriptedCall("pay", {"to": "bob@example.com", "amount": 5}),)), Turn(content="paid")]
    with thread_server(db) as url, ScriptedModelServer(script) as server:
        answered: list[bool] = []

        def overseer() -> None:
            store = SQLiteStore(db)
            deadline = time.monotonic() + 30
            while not store.pending_approvals():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            pending = store.pending_approvals()[0]
            store.close()
            with RemoteGuard(url, tokens.overseer) as human:
                answered.append(human.resume(pending.session_id).answer(pending.call_id, True, note="ok"))

        thread = threading.Thread(target=overseer)
        thread.start()
        result = _run(server, url, tokens.agent, "--policy", str(policy_path), "--task", "Pay bob@example.com 5.", "--approver", "store")
        thread.join(30)
    assert result.exit_code == 0, result.output
    assert answered == [True]
    doc = _result(result.output)
    assert doc["audit"]["asked"] == 1 and doc["audit"]["approved"] == 1
    assert effects.read_text(encoding="utf-8").count("pay") == 1


def test_the_terminal_cannot_approve_through_the_service(policy_path: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "service.db")
    tokens = make_tokens(db, Policy.from_file(policy_path))
    with thread_server(db) as url, ScriptedModelServer(SCRIPT) as server:
        result = _run(server, url, tokens.agent, "--policy", str(policy_path), "--task", "t", "--approver", "terminal")
        assert result.exit_code == 2 and "cannot answer through the guard service" in result.output
        no_token = CliRunner().invoke(
            main,
            [
                "run",
                "--tools",
                "agent_tools:TOOLS",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--guard-url",
                url,
                "--policy",
                str(policy_path),
                "--task",
                "t",
            ],
        )
        assert no_token.exit_code == 2 and "--guard-token" in no_token.output
