"""Tamper evidence: any change, deletion, insertion or reordering of stored events is caught."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import Guard, Policy, SQLiteStore
from tether.store import chain_hash

FIX = Path(__file__).parents[1] / "fixtures"


def populated(path: Path, sessions: int = 2) -> list[str]:
    store = SQLiteStore(path)
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), store)
    ids = []
    for n in range(sessions):
        s = guard.start_session(f"Pay rent to GB29NWBK60161331926819 ({n})")
        for i in range(3):
            d = s.check("read_inbox", {"folder": "inbox"})
            s.record_result(d.call_id, f"mail {i}")
        s.end()
        ids.append(s.id)
    store.close()
    return ids


def sql(path: Path, statement: str, *params: object) -> None:
    db = sqlite3.connect(path)
    db.execute(statement, params)
    db.commit()
    db.close()


def test_clean_store_verifies(tmp_path: Path) -> None:
    populated(tmp_path / "a.db")
    report = SQLiteStore(tmp_path / "a.db").verify()
    assert report.ok and report.sessions == 2 and report.events == 2 * 11


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 11), st.integers(0, 10_000), st.integers(1, 255))
def test_any_flipped_byte_is_detected(seq: int, offset: int, xor: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.db"
        sid = populated(path, 1)[0]
        db = sqlite3.connect(path)
        body = bytearray(db.execute("SELECT body FROM events WHERE session_id=? AND seq=?", (sid, seq)).fetchone()[0])
        body[offset % len(body)] ^= xor
        db.execute("UPDATE events SET body=? WHERE session_id=? AND seq=?", (bytes(body), sid, seq))
        db.commit()
        db.close()
        report = SQLiteStore(path).verify()
        assert not report.ok and report.problem is not None
        assert report.problem.seq == seq and "modified" in report.problem.message


def test_deleted_middle_event(tmp_path: Path) -> None:
    sid = populated(tmp_path / "a.db")[0]
    sql(tmp_path / "a.db", "DELETE FROM events WHERE session_id=? AND seq=4", sid)
    p = SQLiteStore(tmp_path / "a.db").verify().problem
    assert p is not None and p.session_id == sid and p.seq == 4 and "missing" in p.message


def test_reordered_events(tmp_path: Path) -> None:
    sid = populated(tmp_path / "a.db")[0]
    db = sqlite3.connect(tmp_path / "a.db")
    db.execute("UPDATE events SET seq = -1 WHERE session_id=? AND seq=3", (sid,))
    db.execute("UPDATE events SET seq = 3 WHERE session_id=? AND seq=4", (sid,))
    db.execute("UPDATE events SET seq = 4 WHERE session_id=? AND seq=-1", (sid,))
    db.commit()
    p = SQLiteStore(tmp_path / "a.db").verify().problem
    assert p is not None and p.seq == 3


def test_rehashed_forgery_breaks_the_next_link(tmp_path: Path) -> None:
    """An attacker who edits an event and recomputes its hash still breaks the chain after it."""
    sid = populated(tmp_path / "a.db")[0]
    db = sqlite3.connect(tmp_path / "a.db")
    body, prev = db.execute("SELECT body, prev_hash FROM events WHERE session_id=? AND seq=7", (sid,)).fetchone()
    forged = bytes(body).replace(b"mail", b"MAIL")
    db.execute("UPDATE events SET body=?, hash=? WHERE session_id=? AND seq=7", (forged, chain_hash(prev, 7, forged), sid))
    db.commit()
    p = SQLiteStore(tmp_path / "a.db").verify().problem
    assert p is not None and p.seq == 8 and "prev_hash" in p.message


def test_truncated_tail(tmp_path: Path) -> None:
    sid = populated(tmp_path / "a.db")[1]
    sql(tmp_path / "a.db", "DELETE FROM events WHERE session_id=? AND seq=11", sid)
    p = SQLiteStore(tmp_path / "a.db").verify().problem
    assert p is not None and "head" in p.message


def test_whole_session_deleted(tmp_path: Path) -> None:
    sid = populated(tmp_path / "a.db")[0]
    sql(tmp_path / "a.db", "DELETE FROM events WHERE session_id=?", sid)
    p = SQLiteStore(tmp_path / "a.db").verify().problem
    assert p is not None and p.session_id == sid


def test_resume_refuses_tampered_session(tmp_path: Path) -> None:
    from tether import SessionError

    sid = populated(tmp_path / "a.db")[0]
    sql(tmp_path / "a.db", "UPDATE events SET body = replace(body, 'mail', 'MAIL') WHERE session_id=? AND seq=7", sid)
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), SQLiteStore(tmp_path / "a.db"))
    with pytest.raises(SessionError, match="fails verification"):
        guard.resume_session(sid)


@pytest.mark.parametrize("column", ["first_time", "last_time"])
def test_edited_head_times_are_detected_and_never_listed(tmp_path: Path, column: str) -> None:
    """The heads table's times are checked against the chain: a forged time fails ``verify``,
    and session listings show the chained events' times, never the forged copy."""
    path = tmp_path / "a.db"
    sid = populated(path, 1)[0]
    store = SQLiteStore(path)
    (before,) = [s for s in store.sessions() if s.session_id == sid]
    store.close()
    sql(path, f"UPDATE heads SET {column} = {column} - 86400 WHERE session_id = ?", sid)
    store = SQLiteStore(path)
    report = store.verify()
    assert not report.ok and report.problem is not None
    assert report.problem.session_id == sid and "times" in report.problem.message
    assert not store.verify([sid]).ok
    (after,) = [s for s in store.sessions() if s.session_id == sid]
    assert (after.first_time, after.last_time) == (before.first_time, before.last_time)
    first, last = store.read(sid)[0].event(), store.read(sid)[-1].event()
    assert (after.first_time, after.last_time) == (first.time, last.time)
