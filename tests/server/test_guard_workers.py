"""Many agents at once through several ``tether serve`` worker processes, one of them killed
mid-run: budgets hold per session, nothing acknowledged is lost, no event lands in the wrong
session, every chain verifies."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.server.guard_fixtures import POLICY, make_tokens, open_target, serve_process

from tether import ToolCall
from tether.client import RemoteGuard
from tether.events import CallProposed, DecisionMade, ResultRecorded

SESSIONS = 64
PAYMENTS = 8  # of 15 each against a spend budget of 100: 6 allowed, 2 denied, whatever the workers
WORKERS = 4


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the service keeps its log: a SQLite file, or a fresh PostgreSQL database on the test
    cluster (tokens are kept in the store itself)."""
    if request.param == "postgres":
        monkeypatch.chdir(tmp_path)
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "guard.db")


@dataclass
class Acked:
    """What the agents were told (the service acknowledged it)."""

    decisions: dict[tuple[str, str], str] = field(default_factory=dict)
    records: set[tuple[str, str]] = field(default_factory=set)
    sent: dict[str, set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _agent(url: str | list[str], token: str, index: int, acked: Acked, go: threading.Event) -> None:
    try:
        with RemoteGuard(url, token, attempts=10, backoff_s=0.05) as guard:
            go.wait(30)
            session = guard.start(f"Pay alice 15, {PAYMENTS} times", policy=POLICY, principal=f"team-{index % 4}")
            with acked.lock:
                acked.sent[session.id] = set()
            for _ in range(PAYMENTS):
                call = ToolCall("pay", {"to": "alice", "amount": 15})
                with acked.lock:
                    acked.sent[session.id].add(call.id)
                decision = session.check(call)
                assert decision.call_id == call.id, decision
                with acked.lock:
                    acked.decisions[(session.id, call.id)] = decision.verdict
                if decision.verdict == "allow":
                    session.record_result(call.id, f"paid 15 ({call.id[:6]})")
                    with acked.lock:
                        acked.records.add((session.id, call.id))
            session.end()
    except Exception as exc:  # reported by the test, with the others
        with acked.lock:
            acked.errors.append(f"agent {index}: {type(exc).__name__}: {exc}")


def test_64_sessions_through_4_workers_one_killed_mid_run(store_target: str) -> None:
    tokens = make_tokens(store_target)
    acked = Acked()
    go = threading.Event()
    with serve_process(store_target, tokens.overseer, workers=WORKERS) as served:
        before = served.workers()
        assert len(before) == WORKERS
        agents = [threading.Thread(target=_agent, args=(served.url, tokens.agent, i, acked, go)) for i in range(SESSIONS)]
        for t in agents:
            t.start()
        started = time.monotonic()
        go.set()
        # Kill one worker once a third of the decisions are in (requests are in flight on every worker).
        while len(acked.decisions) < SESSIONS * PAYMENTS // 3 and time.monotonic() - started < 60:
            time.sleep(0.01)
        victim = before[1]
        os.kill(victim, signal.SIGKILL)
        assert len(acked.decisions) < SESSIONS * PAYMENTS * 2 // 3  # mid-run
        for t in agents:
            t.join(120)
        elapsed = time.monotonic() - started
        assert not acked.errors, acked.errors[:5]
        assert not any(t.is_alive() for t in agents)
        # uvicorn's supervisor replaced the dead worker.
        deadline = time.monotonic() + 20
        while victim in served.workers() or len(served.workers()) < WORKERS:
            assert time.monotonic() < deadline, served.workers()
            time.sleep(0.1)
    _verify(store_target, acked, SESSIONS)
    print(f"{SESSIONS} sessions x {PAYMENTS} checks through {WORKERS} workers (one killed) in {elapsed:.1f} s")


def _verify(store_target: str, acked: Acked, sessions_run: int) -> None:
    """Everything the agents were told is in the log, in the right session, once; budgets held; chains verify."""
    assert len(acked.decisions) == sessions_run * PAYMENTS, len(acked.decisions)
    store = open_target(store_target)
    try:
        assert store.verify().ok
        sessions = [s.session_id for s in store.sessions()]
        assert sorted(sessions) == sorted(acked.sent)
        for sid in sessions:
            events = [item.event() for item in store.read(sid)]
            assert all(e.session_id == sid for e in events)
            proposed = [e.call_id for e in events if isinstance(e, CallProposed)]
            assert set(proposed) == acked.sent[sid]  # nothing from another session, nothing missing
            decided = [e for e in events if isinstance(e, DecisionMade)]
            per_call = Counter(e.call_id for e in decided)
            assert max(per_call.values()) == 1  # a retried check was answered from the log, not decided again
            logged = {e.call_id: e.verdict for e in decided}
            for call_id in acked.sent[sid]:
                assert logged[call_id] == acked.decisions[(sid, call_id)]  # what the agent was told is what the log says
            verdicts = Counter(logged.values())
            assert verdicts == Counter({"allow": 6, "deny": 2}), (sid, verdicts)  # the budget held: 90 of 100 spent
            recorded = {e.call_id for e in events if isinstance(e, ResultRecorded)}
            assert {c for (s, c) in acked.records if s == sid} <= recorded
            assert recorded == {c for c, v in logged.items() if v == "allow"}
    finally:
        store.close()


def test_two_servers_one_killed_the_agents_go_on_through_the_other(store_target: str) -> None:
    """Two separate ``tether serve`` processes over one store; the client knows both URLs. One
    server is SIGKILLed mid-run (its whole process: no supervisor brings it back)."""
    tokens = make_tokens(store_target)
    acked = Acked()
    go = threading.Event()
    sessions = 32
    with serve_process(store_target, tokens.overseer) as one, serve_process(store_target, tokens.overseer) as two:
        urls = [one.url, two.url]
        agents = [
            threading.Thread(target=_agent, args=(urls[i % 2 :] + urls[: i % 2], tokens.agent, i, acked, go)) for i in range(sessions)
        ]
        for t in agents:
            t.start()
        go.set()
        deadline = time.monotonic() + 60
        while len(acked.decisions) < sessions * PAYMENTS // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(one.proc.pid, signal.SIGKILL)
        assert len(acked.decisions) < sessions * PAYMENTS * 2 // 3  # mid-run
        for t in agents:
            t.join(120)
    assert not acked.errors, acked.errors[:5]
    _verify(store_target, acked, sessions)
