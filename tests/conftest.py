"""Shared fixtures: policies from tests/fixtures, a guard on an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.postgres_cluster import PostgresCluster

from tether import Guard, Policy, SQLiteStore

FIXTURES = Path(__file__).parent / "fixtures"


class FakeClock:
    """A controllable clock for budget and rate tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def bank_policy() -> Policy:
    return Policy.from_file(FIXTURES / "bank.yaml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def guard(bank_policy: Policy, clock: FakeClock) -> Guard:
    return Guard(bank_policy, SQLiteStore(":memory:"), clock=clock)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL server for the whole run (see ``tests/postgres_cluster.py``)."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of a fresh, empty database on the test cluster."""
    return postgres_cluster.new_database()
