"""Budgets, rates, wall time, task scopes, session control."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Guard, Policy, SQLiteStore
from tether.errors import SessionError

FIX = Path(__file__).parents[1] / "fixtures"
TASK = "Pay alice-payee-0001 and bob-payee-0002"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None) -> tuple[Guard, Clock]:
    c = clock or Clock()
    return Guard(Policy.from_file(FIX / "rules.yaml"), SQLiteStore(":memory:"), clock=c), c


def pay(session: object, amount: float = 10, to: str = "alice-payee-0001") -> str:
    d = session.check("pay", {"to": to, "amount": amount})  # type: ignore[attr-defined]
    if d.allowed:
        session.record_result(d.call_id, "ok")  # type: ignore[attr-defined]
    return d.verdict  # type: ignore[no-any-return]


def test_per_tool_budget() -> None:
    guard, _ = make()
    s = guard.start_session(TASK)
    assert [pay(s) for _ in range(4)] == ["allow", "allow", "allow", "deny"]
    assert "budget" in s.check("pay", {"to": "alice-payee-0001", "amount": 1}).explain()


def test_spend_budget() -> None:
    guard, _ = make()
    s = guard.start_session(TASK)
    assert pay(s, 45) == "allow"
    assert pay(s, 45) == "allow"
    d = s.check("pay", {"to": "alice-payee-0001", "amount": 11})
    assert d.verdict == "deny" and d.reasons[0].rule == "budgets.max_spend"
    assert s.state.spend == 90


def test_write_and_call_budgets() -> None:
    guard, _ = make()
    s = guard.start_session(TASK)
    for _ in range(3):
        assert pay(s, 1) == "allow"
    d = s.check("configure", {"mode": "safe", "level": 1})
    assert d.allowed
    d = s.check("configure", {"mode": "safe", "level": 1})
    assert d.verdict == "deny" and any(r.rule == "budgets.max_writes" for r in d.reasons)
    for _ in range(4):
        assert s.check("fetch", {"url": "https://docs.example/"}).allowed
    d = s.check("fetch", {"url": "https://docs.example/"})
    assert any(r.rule == "budgets.max_calls" for r in d.reasons)


def test_rate_window() -> None:
    guard, clock = make()
    s = guard.start_session(TASK)
    msg = {"channel": "general", "text": "hi"}
    assert s.check("post_message", msg).allowed
    clock.now += 10
    assert s.check("post_message", msg).allowed
    clock.now += 10
    d = s.check("post_message", msg)
    assert d.verdict == "deny" and d.reasons[0].kind == "rate"
    clock.now += 41  # the first call leaves the 60 s window
    assert s.check("post_message", msg).allowed


def test_wall_time() -> None:
    guard, clock = make()
    s = guard.start_session(TASK)
    clock.now += 3601
    d = s.check("fetch", {"url": "https://docs.example/"})
    assert d.verdict == "deny" and d.reasons[0].rule == "budgets.max_wall_time_s"


def test_scope_limits_writes() -> None:
    guard, _ = make()
    s = guard.start_session(TASK, scope={"writes": {"pay": {"to": ["alice-payee-0001"]}}})
    assert pay(s, to="alice-payee-0001") == "allow"
    d = s.check("pay", {"to": "bob-payee-0002", "amount": 1})
    assert d.verdict == "deny" and d.reasons[0].kind == "scope"
    d = s.check("post_message", {"channel": "general", "text": "x"})
    assert d.verdict == "deny" and "scope" in d.reasons[0].message
    assert s.check("fetch", {"url": "https://docs.example/"}).allowed  # reads are not scoped


def test_pause_resume_kill() -> None:
    guard, _ = make()
    s = guard.start_session(TASK)
    s.control("pause", by="ops")
    assert s.check("fetch", {"url": "https://docs.example/"}).reasons[0].kind == "session"
    s.control("resume", by="ops")
    assert s.check("fetch", {"url": "https://docs.example/"}).allowed
    s.control("kill", by="ops")
    with pytest.raises(SessionError, match="killed"):
        s.control("resume", by="ops")  # a kill is final
    assert s.check("fetch", {"url": "https://docs.example/"}).verdict == "deny"


def test_end() -> None:
    guard, _ = make()
    s = guard.start_session(TASK)
    s.end()
    assert s.check("fetch", {"url": "https://docs.example/"}).verdict == "deny"
