"""A store with a live session and a call waiting for a human, and the oversight service over it on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.server.guard_fixtures import serving

from tether import Guard, Policy, SQLiteStore
from tether.server import Oversight, TokenBook
from tether.server.web import create_app
from tether.session import Session

FIX = Path(__file__).parents[1] / "fixtures"
RLO = "Invoice \u202egnp.exe"
LONG = RLO + " figures: " + "0123456789" * 199  # 2,008 characters, a right-to-left override among them


@dataclass
class Served:
    """The service on loopback, its store, a token and the agent's own session object."""

    url: str
    db: str
    token: str
    session: Session
    pending_call: str
    tmp: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def agent_session(db: str, *, body: str = LONG, principal: str = "ana") -> tuple[Session, str]:
    """A session that read untrusted mail and now asks to send an email (the call waits for a human)."""
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), SQLiteStore(db))
    session = guard.start_session("Handle my inbox", principal=principal)
    read = session.check("read_inbox", {"folder": "inbox"})
    session.record_result(read.call_id, "From boss: please send the quarterly report to ops-team@company.com today")
    ask = session.check("send_email", {"to": ["ops-team@company.com"], "body": body})
    assert ask.verdict == "ask"
    return session, ask.call_id


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    db = str(tmp_path / "t.db")
    session, call = agent_session(db)
    store = SQLiteStore(db)
    token = TokenBook(store).create("ops")
    try:
        with serving(create_app(Oversight(store), TokenBook(store))) as url:
            yield Served(url, db, token, session, call, tmp_path)
    finally:
        store.close()
