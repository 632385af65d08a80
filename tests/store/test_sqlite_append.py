"""The SQLite store's append path: one writer at a time across connections, a head hint that
is always checked, unique call ids, and losers that learn they lost without waiting."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tether.errors import DuplicateCall, StaleSession, StoreError
from tether.events import CallProposed, DecisionMade, Event
from tether.store import SQLiteStore

SID = "s"


def check(call_id: str) -> list[Event]:
    return [
        CallProposed(session_id=SID, call_id=call_id, tool="t", args={"a": 1}, call_hash="h"),
        DecisionMade(session_id=SID, call_id=call_id, verdict="allow", policy_hash="p"),
    ]


def test_a_waiting_writer_whose_session_moved_gives_up_at_once(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    a, b, slow = SQLiteStore(path, timeout_s=5), SQLiteStore(path), SQLiteStore(path, timeout_s=0.05)
    a.append(SID, check("c1"), expect_seq=0)
    b.append(SID, check("c2"), expect_seq=2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StaleSession):
            a.append(SID, check("c3"), expect_seq=2)
        assert time.monotonic() - started < 1.0, "the loser waited for the lock it could not use"
        # A writer whose head is current waits for the lock, and fails closed when it stays taken.
        with pytest.raises(StoreError, match="locked"):
            slow.append(SID, check("c3"), expect_seq=4)
    finally:
        holder.execute("ROLLBACK")
    assert a.append(SID, check("c3"), expect_seq=4)[-1].seq == 6 and a.verify().ok


def test_a_turn_holds_the_head_until_the_append(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    a, b = SQLiteStore(path), SQLiteStore(path, timeout_s=0.05)
    a.append(SID, check("c1"), expect_seq=0)
    with a.turn():
        # Nobody else can write while a holds its turn...
        with pytest.raises(StoreError, match="locked"):
            b.append(SID, check("b1"), expect_seq=2)
        seen = a.read(SID, 0)
        # ...so an append on what was read cannot be stale; it commits and ends the turn.
        assert a.append(SID, check("c2"), expect_seq=seen[-1].seq)[-1].seq == 4
        assert b.append(SID, check("b1"), expect_seq=4)[-1].seq == 6
    # A turn that writes nothing gives the lock back at the end of its block.
    with a.turn():
        pass
    assert b.append(SID, check("b2"), expect_seq=6)[-1].seq == 8
    # A turn whose append fails still gives the lock back, and nothing was written.
    with a.turn(), pytest.raises(DuplicateCall):
        a.append(SID, check("b2"), expect_seq=8)
    assert b.append(SID, check("b3"), expect_seq=8)[-1].seq == 10 and b.verify().ok


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_refused_not_a_temporary_database(path: str) -> None:
    with pytest.raises(StoreError, match="path is empty"):
        SQLiteStore(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)
