"""``tether run --guard-url``: the agent loop's checks, records, messages and asks go through the
guard service (a real server on loopback); the log lands in the service's store; an ask waits for
an overseer's answer given through the API; resuming reads the conversation back from the service."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import agent_tools
from click.testing import CliRunner
from test_resume import SCRIPT
from tests.server.guard_fixtures import make_tokens, thread_server

from tether import Policy
from tether.agent import Agent, ChatClient, FunctionToolset, ModelConfig, ScriptedCall, ScriptedModelServer, Turn
from tether.cli import main
from tether.client import RemoteGuard
from tether.events import DecisionMade, MessageAdded, MessageToolCall, PlanDeclared
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


def _intent_policy(policy_path: Path, tmp_path: Path) -> Path:
    """The loop tests' policy with sending mail an act that needs the task's intent (a plan declares it)."""
    path = tmp_path / "intent_policy.yaml"
    path.write_text(policy_path.read_text(encoding="utf-8") + "intent: [send_email]\n", encoding="utf-8")
    return path


def test_the_model_declares_its_plan_through_the_service(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    db = str(tmp_path / "service.db")
    policy = _intent_policy(policy_path, tmp_path)
    tokens = make_tokens(db, Policy.from_file(policy))
    plan = {"writes": [{"tool": "send_email", "args": {"to": "bob@example.com"}}]}
    script = [
        Turn(tool_calls=(ScriptedCall("declare_plan", plan),)),
        Turn(tool_calls=(ScriptedCall("read_inbox"),)),
        Turn(tool_calls=(ScriptedCall("send_email", {"to": "bob@example.com", "body": "lunch on Friday"}),)),
        Turn(content="sent"),
    ]
    task = "Read my inbox, and send bob@example.com the lunch plans you find."
    with thread_server(db) as url, ScriptedModelServer(script) as server:
        result = _run(server, url, tokens.agent, "--policy", str(policy), "--task", task)
        offered = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert result.exit_code == 0, result.output
    assert "declare_plan" in offered
    doc = _result(result.output)
    assert doc["stop"] == "completed" and doc["answer"] == "sent"
    store = SQLiteStore(db)
    events = [item.event() for item in store.read(doc["session_id"])]
    store.close()
    (declared,) = [e for e in events if isinstance(e, PlanDeclared)]
    assert declared.args == plan
    verdicts = {e.call_id: e.verdict for e in events if isinstance(e, DecisionMade)}
    assert verdicts[declared.call_id] == "allow"
    # After the inbox was read, the send needs the task's intent: the approved plan gives it.
    assert list(verdicts.values()) == ["allow", "allow", "allow"]
    assert effects.read_text(encoding="utf-8").splitlines() == ["send_email bob@example.com"]


def test_a_plan_left_waiting_by_a_crash_is_refused_on_resume_through_the_service(policy_path: Path, tmp_path: Path, effects: Path) -> None:
    """A run that stopped while its plan waited for a human: the resumed run refuses the ask in the
    log (nobody waits on it any more) and tells the model, without declaring the plan again."""
    db = str(tmp_path / "service.db")
    policy = _intent_policy(policy_path, tmp_path)
    tokens = make_tokens(db, Policy.from_file(policy))
    with thread_server(db) as url, RemoteGuard(url, tokens.agent) as guard, ScriptedModelServer([Turn(content="gave up")]) as server:
        session = guard.start("Send bob@example.com the lunch plans.", policy=policy.read_text(encoding="utf-8"))
        read = session.check("read_inbox", {})
        session.record_result(read.call_id, "lunch at noon")
        arguments = json.dumps({"writes": [{"tool": "send_email", "args": {"to": "bob@example.com"}}]})
        for role, content in (("system", "You are a careful assistant."), ("user", session.task)):
            session.log_message(MessageAdded(session_id=session.id, role=role, content=content))
        call = MessageToolCall(id="m1", name="declare_plan", arguments=arguments, call_id="plan-1")
        session.log_message(MessageAdded(session_id=session.id, role="assistant", tool_calls=(call,)))
        asked = session.declare_plan(json.loads(arguments)["writes"], plan_id="plan-1")
        assert asked.verdict == "ask" and session.approval_status("plan-1") == "pending"
        cfg = ModelConfig(base_url=server.base_url, model="scripted", backoff_s=0.01)
        result = asyncio.run(Agent(ChatClient(cfg), FunctionToolset(agent_tools.TOOLS), max_steps=4).run(session))
        assert result.stop == "completed"
        (report,) = result.calls
        assert report.resumed and report.fate == "refused" and report.reply.startswith("tether: plan denied")
        assert session.approval_status("plan-1") == "denied"
        assert sum(isinstance(e, PlanDeclared) for e in session.logged_events()) == 1
    assert effects.read_text(encoding="utf-8") == ""
