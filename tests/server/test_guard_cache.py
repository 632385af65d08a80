"""Workers' session caches: a worker skips reading the log only when its store vouches that the
cached session is current, and a cache that is stale anyway (a notification not arrived yet, or
never) never decides on old state: the append that logs a decision expects the cached head, so
a budget spent through another worker is never spent twice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from tests.server.guard_fixtures import POLICY, open_target

from tether import Policy, SQLiteStore
from tether.events import Event
from tether.server import GuardService
from tether.session import policy_document
from tether.store import EventStore, StoredEvent, open_store

PAY = {"to": "alice", "amount": 15}  # against a spend budget of 100: 6 payments, never a 7th
THIRTY = {"to": "alice", "amount": 30}
ROUNDS = 12


class DeafStore(SQLiteStore):
    """A SQLite store whose ``known_head`` never hears of other connections' commits: it vouches
    for its own last append to a session whatever happened since (a listener that lost every
    notification, the worst a stale cache can be)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.heard: dict[str, int] = {}

    def append(self, session_id: str, events: Sequence[Event], *, expect_seq: int | None = None) -> list[StoredEvent]:
        stored = super().append(session_id, events, expect_seq=expect_seq)
        if stored:
            self.heard[session_id] = stored[-1].seq
        return stored

    def known_head(self, session_id: str) -> int | None:
        return self.heard.get(session_id)


@pytest.fixture(params=["sqlite", "deaf", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[EventStore, EventStore]]:
    """Two workers' stores (each its own connection) over one log."""
    if request.param == "postgres":
        target = str(request.getfixturevalue("postgres_url"))
        pair: tuple[EventStore, EventStore] = (open_store(target), open_store(target))
    else:
        target = str(tmp_path / "cache.db")
        pair = (DeafStore(target), DeafStore(target)) if request.param == "deaf" else (open_target(target), open_target(target))
    policy = Policy.from_yaml(POLICY)
    pair[0].put_policy(policy.hash, policy.name, policy_document(policy))
    try:
        yield pair
    finally:
        for store in pair:
            store.close()


def test_two_workers_alternating_on_one_session_never_overspend(stores: tuple[EventStore, EventStore]) -> None:
    a, b = GuardService(stores[0]), GuardService(stores[1])
    sid = a.begin("Pay alice 15 a dozen times", principal="ana", policy_text=POLICY)["session_id"]
    allowed = []
    for n in range(ROUNDS):
        # Two calls in a row through one worker (its cache is current for the second), then two
        # through the other, whose cache missed what the first did; each result is recorded
        # through the worker that did not admit the call.
        worker, other = (a, b) if n % 4 < 2 else (b, a)
        decision = worker.check(sid, "pay", PAY, f"pay-{n}").decision
        if decision.verdict == "allow":
            allowed.append(n)
            label, replayed = other.record(sid, f"pay-{n}", "paid")
            assert label.integrity == "trusted" and not replayed
        else:
            assert any(r.rule == "budgets.max_spend" for r in decision.reasons), decision.explain()
    assert len(allowed) == 6, allowed
    for service in (a, b):
        summary = service.summary(sid)
        assert summary["budgets"]["spend"] == {"used": 90.0, "limit": 100.0}
        assert summary["budgets"]["calls"]["used"] == len(allowed)
    assert stores[0].verify().ok
    if isinstance(stores[0], SQLiteStore):  # PostgreSQL: whether the listener was up yet is timing
        assert a.reads_skipped + b.reads_skipped > 0


def test_sqlite_vouches_for_its_own_appends_until_another_connection_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "heads.db")
    first, second = SQLiteStore(path), SQLiteStore(path)
    policy = Policy.from_yaml(POLICY)
    first.put_policy(policy.hash, policy.name, policy_document(policy))
    a, b = GuardService(first), GuardService(second)
    sid = a.begin("Pay alice", principal="ana", policy_text=POLICY)["session_id"]
    assert first.known_head(sid) is None  # the first look: nothing vouched for yet
    a.check(sid, "pay", THIRTY, "c1")
    head = first.head(sid)
    assert head is not None and first.known_head(sid) == head.seq
    skipped = a.reads_skipped
    a.check(sid, "pay", THIRTY, "c2")
    assert a.reads_skipped == skipped + 1  # nothing changed: no read of the log
    b.check(sid, "pay", THIRTY, "c3")  # another connection commits
    assert first.known_head(sid) is None
    # The next check through the first worker reads the log and sees the third payment's spend.
    assert a.check(sid, "pay", PAY, "c4").decision.verdict == "deny"
    assert a.summary(sid)["budgets"]["spend"]["used"] == 90.0
    for store in (first, second):
        store.close()


def test_a_call_asked_again_after_it_ran_elsewhere_is_not_admitted_again(stores: tuple[EventStore, EventStore]) -> None:
    a, b = GuardService(stores[0]), GuardService(stores[1])
    sid = a.begin("Pay alice once", principal="ana", policy_text=POLICY)["session_id"]
    assert a.check(sid, "pay", PAY, "once").decision.verdict == "allow"
    b.record(sid, "once", "paid")  # it ran, and its result is logged through the other worker
    # Asked again through the first worker (whose cache, on the deaf store, never heard of the
    # record): not a lost reply to answer with the logged allow, but a reused call id.
    again = a.check(sid, "pay", PAY, "once")
    assert not again.replayed and again.decision.verdict == "deny", again.decision.explain()
    assert a.summary(sid)["budgets"]["spend"]["used"] == 15.0
