"""The service without HTTP: bounded caches, sessions folded again after eviction, a store that
stops taking writes (denied, then served again from the log), unknown sessions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.server.guard_fixtures import POLICY

from tether import Policy, SQLiteStore
from tether.server import GuardService, OversightError
from tether.session import policy_document


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "svc.db")
    with SQLiteStore(path) as store:
        policy = Policy.from_yaml(POLICY)
        store.put_policy(policy.hash, policy.name, policy_document(policy))
    return path


def test_the_cache_is_bounded_and_an_evicted_session_is_folded_again(db: str) -> None:
    store = SQLiteStore(db)
    service = GuardService(store, cache_size=2)
    ids = [service.begin(f"task {i}", principal="ana", policy_text=POLICY)["session_id"] for i in range(5)]
    assert service.cached() == 2
    for sid in ids:
        assert service.check(sid, "pay", {"to": "x", "amount": 45}, f"{sid}-1").decision.verdict == "allow"
        assert service.cached() <= 2
    # Every session, evicted and folded again from its log, still knows its spend.
    for sid in ids:
        assert service.check(sid, "pay", {"to": "x", "amount": 45}, f"{sid}-2").decision.verdict == "allow"
        assert service.check(sid, "pay", {"to": "x", "amount": 45}, f"{sid}-3").decision.verdict == "deny"
    assert store.verify().ok
    with pytest.raises(ValueError):
        GuardService(store, cache_size=0)
    store.close()


def test_a_store_that_takes_no_writes_denies_then_serves_again(db: str) -> None:
    store = SQLiteStore(db, timeout_s=0.2)
    service = GuardService(store)
    sid = service.begin("pay", principal="ana", policy_text=POLICY)["session_id"]
    assert service.check(sid, "pay", {"to": "x", "amount": 10}, "a").decision.verdict == "allow"
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for good
    try:
        down = service.check(sid, "pay", {"to": "x", "amount": 10}, "b").decision
        assert down.verdict == "deny" and down.reasons[0].rule == "store"
        assert service.cached() == 0  # dropped: the next request starts from the log
        with pytest.raises(OversightError) as refused:
            service.record(sid, "a", "paid")
        assert refused.value.status == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert service.check(sid, "pay", {"to": "x", "amount": 10}, "c").decision.verdict == "allow"
    assert service.summary(sid)["budgets"]["spend"]["used"] == 20.0  # the denied call never counted
    assert store.verify().ok
    store.close()


def test_unknown_sessions_and_policies(db: str) -> None:
    with SQLiteStore(db) as store:
        service = GuardService(store)
        with pytest.raises(OversightError) as e:
            service.check("nope", "pay", {}, "x")
        assert e.value.status == 404
        with pytest.raises(OversightError) as e:
            service.begin("t", principal="ana", policy_hash="sha256:" + "1" * 64)
        assert e.value.status == 404
        with pytest.raises(OversightError) as e:
            service.begin("t", principal="ana")
        assert e.value.status == 422
        assert service.stored_hash(POLICY) == Policy.from_yaml(POLICY).hash
        assert service.stored_hash(POLICY.replace("max_calls: 40", "max_calls: 41")) is None


def test_plans_are_replayed_after_eviction_and_denied_while_the_store_is_down(db: str) -> None:
    store = SQLiteStore(db, timeout_s=0.2)
    service = GuardService(store, cache_size=1)
    sid = service.begin("pay", principal="ana", policy_text=POLICY)["session_id"]
    writes = [{"tool": "pay", "args": {"to": "x", "amount": 10}}]
    first = service.declare_plan(sid, writes, "p1")
    assert first.decision.verdict == "allow" and not first.replayed
    service.begin("other", principal="ana", policy_text=POLICY)  # evicts the first session
    again = service.declare_plan(sid, writes, "p1")  # folded again from the log, answered from it
    assert again.replayed and again.decision == first.decision
    assert service.declare_plan(sid, [], "p1").decision.reasons[0].rule == "call_id"  # other writes: not a retry
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        down = service.declare_plan(sid, writes, "p2").decision
        assert down.verdict == "deny" and down.reasons[0].rule == "store"
        assert service.cached() == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    later = service.declare_plan(sid, writes, "p2")
    assert not later.replayed and later.decision.verdict == "ask"  # a second plan asks; the denied one was never logged
    assert store.verify().ok
    store.close()
