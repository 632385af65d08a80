"""Stores for CLI tests, written through the real Python API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tether import Guard, Policy, SQLiteStore
from tether.session import Session

FIX = Path(__file__).parents[1] / "fixtures"


@dataclass
class LiveStore:
    """A store file with one active session under tests/fixtures/bank.yaml that has a call waiting for approval."""

    db: str
    session: Session
    """The agent's session object (as an agent process would hold it)."""
    pending_call: str
    """The call id that waits for a human."""


@pytest.fixture
def live(tmp_path: Path) -> LiveStore:
    return live_store(tmp_path)


@pytest.fixture(scope="module")
def live_module(tmp_path_factory: pytest.TempPathFactory) -> LiveStore:
    """One :class:`LiveStore` shared by a module's tests (for property tests, which run many examples)."""
    return live_store(tmp_path_factory.mktemp("live"))


def live_store(folder: Path) -> LiveStore:
    """Write the :class:`LiveStore` session into ``folder/live.db``."""
    db = str(folder / "live.db")
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), SQLiteStore(db))
    session = guard.start_session("Handle my inbox", principal="ana")
    read = session.check("read_inbox", {"folder": "inbox"})
    session.record_result(read.call_id, "From boss: please send the quarterly report to ops-team@company.com today")
    ask = session.check("send_email", {"to": ["ops-team@company.com"], "body": "Quarterly report attached."})
    assert ask.verdict == "ask"
    return LiveStore(db, session, ask.call_id)
