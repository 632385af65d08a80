"""The framework adapters' shared call path (``tether.adapters._tool_calls``), adversarially.

Properties: nothing runs unless the session admitted exactly that call; a call is never run twice
(however often a framework re-runs its hook); an answer given for one call can never run another
(the same id with other arguments, as a tampered history or a model reusing ids would send, is
denied and logged); an ask without an answer never runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import Guard, Policy, SQLiteStore
from tether.adapters._tool_calls import RESULT_UNKNOWN, ToolCallGuard

POLICY = Policy.from_file(Path(__file__).parents[1] / "agent" / "agent_policy.yaml")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
tool_names = st.sampled_from(["write_note", "pay", "send_email", "read_inbox", "write_note\u200b", "ｗrite_note", "../pay", ""]) | st.text(
    max_size=12
)
arguments = json_values | st.dictionaries(st.sampled_from(["text", "to", "amount", "body"]), json_values, max_size=3) | st.text(max_size=30)


def _guard(tmp_path: Path) -> ToolCallGuard:
    session = Guard(POLICY, SQLiteStore(tmp_path / "t.db")).start_session("Note lunch; pay alice@example.com 20.")
    return ToolCallGuard(session, by="test", prefix="t:")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool=tool_names, args=arguments)
def test_nothing_runs_unless_admitted_and_nothing_runs_twice(tmp_path_factory: Any, tool: str, args: Any) -> None:
    guard = _guard(tmp_path_factory.mktemp("g"))
    runs: list[Any] = []

    async def fn() -> str:
        runs.append(args)
        return "done"

    async def twice() -> tuple[Any, Any]:
        return await guard.run(tool, args, "x1", fn), await guard.run(tool, args, "x1", fn)

    first, second = asyncio.run(twice())
    rec = guard.session.state.calls.get(first.decision.call_id)
    admitted = rec is not None and rec.executed
    assert first.ran == admitted == (len(runs) == 1)
    assert len(runs) <= 1  # the second pass reads the log
    if admitted:
        assert second.text == first.text and second.ran
    if first.decision.verdict == "ask":
        assert runs == []  # no approver and no answer: never run
    assert guard.session.store.verify([guard.session.id]).ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(1, 100), other=st.dictionaries(st.sampled_from(["to", "amount"]), json_values, min_size=1))
def test_an_answer_for_one_call_never_runs_another_with_the_same_id(tmp_path_factory: Any, amount: int, other: dict[str, Any]) -> None:
    guard = _guard(tmp_path_factory.mktemp("g"))
    approved_args = {"to": "alice@example.com", "amount": amount}
    tampered = {**approved_args, **other}
    runs: list[Any] = []
    asked = guard.check("pay", approved_args, "p1")
    assert asked.verdict == "ask" and guard.approve(asked, True)
    again = guard.check("pay", tampered, "p1")
    if tampered == approved_args:
        assert again == asked
        return
    assert again.verdict == "deny" and again.call_id != asked.call_id
    assert any(r.rule == "call_id" for r in again.reasons)

    async def fn() -> str:
        runs.append(tampered)
        return "paid"

    settled = asyncio.run(guard.execute(again, fn))
    assert not settled.ran and runs == [] and settled.text.startswith("tether denied this call")


def test_an_admitted_call_from_before_a_restart_is_not_run_again(tmp_path: Path) -> None:
    guard = _guard(tmp_path)
    decision = guard.check("write_note", {"text": "lunch"}, "n1")
    assert decision.verdict == "allow"
    # A new process (a new guard on the same session) finds the call admitted and no output recorded.
    later = ToolCallGuard(guard.session, by="test", prefix="t:")
    runs: list[str] = []

    async def fn() -> str:
        runs.append("ran")
        return "noted"

    settled = asyncio.run(later.run("write_note", {"text": "lunch"}, "n1", fn))
    assert runs == [] and settled.text == RESULT_UNKNOWN and settled.error
