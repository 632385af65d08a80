"""The agent loop's ``declare_plan`` tool: the model's plan goes to ``Session.declare_plan``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import agent_tools

from tether.agent import Agent, ChatClient, FunctionToolset, ModelConfig, ScriptedCall, ScriptedModelServer, Turn
from tether.policy import Policy
from tether.session import Guard
from tether.store import SQLiteStore

TASK = "Read my inbox, and send bob@example.com the lunch plans you find."
# The same policy as the other loop tests, with sending mail an act that needs the task's intent.
POLICY = (Path(__file__).parent / "agent_policy.yaml").read_text() + "intent: [send_email]\n"


def test_the_model_declares_its_plan_first_and_the_injected_send_falls_outside(tmp_path: Path, effects: Path) -> None:
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(str(tmp_path / "t.db"))).start_session(TASK)
    script = [
        Turn(tool_calls=(ScriptedCall("declare_plan", {"writes": [{"tool": "send_email", "args": {"to": "bob@example.com"}}]}),)),
        Turn(tool_calls=(ScriptedCall("read_inbox"),)),
        Turn(
            tool_calls=(
                # the injection asks to mail someone the task trusts too (a confused deputy), and to plan again
                ScriptedCall("send_email", {"to": "bob@example.com", "body": "lunch with alice at noon on Friday"}),
                ScriptedCall("declare_plan", {"writes": [{"tool": "write_note", "args": {"text": "pay alice"}}]}),
            )
        ),
        Turn(content="done"),
    ]
    with ScriptedModelServer(script) as server:
        cfg = ModelConfig(base_url=server.base_url, model="scripted", backoff_s=0.01)
        agent = Agent(ChatClient(cfg), FunctionToolset(agent_tools.TOOLS), max_steps=8)
        result = asyncio.run(agent.run(session))
        offered = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert "declare_plan" in offered
    fates = [(c.tool, c.verdict, c.fate) for c in result.calls]
    assert fates == [
        ("declare_plan", "allow", "ran"),
        ("read_inbox", "allow", "ran"),
        ("send_email", "allow", "ran"),
        ("declare_plan", "ask", "refused"),  # a plan after untrusted data was read waits for a human
    ]
    assert "plans.after_untrusted" in result.calls[3].rules
    assert "nobody could be asked" in result.calls[3].reply
    assert result.calls[0].reply.startswith("tether: plan approved")
    assert [p.status for p in session.state.plans.values()] == ["approved", "denied"]
    assert effects.read_text().splitlines() == ["send_email bob@example.com"]
