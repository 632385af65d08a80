"""Tamper evidence: any change, deletion, insertion or reordering of stored events is caught,
on both back ends (the edits go straight to the database's tables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store.conftest import Backend

from tether import Guard, Policy
from tether.store import chain_hash

FIX = Path(__file__).parents[1] / "fixtures"


def populated(backend: Backend, sessions: int = 2) -> list[str]:
    store = backend.open()
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


def body_of(backend: Backend, sid: str, seq: int) -> bytes:
    return bytes(backend.sql("SELECT body FROM events WHERE session_id=? AND seq=?", sid, seq)[0][0])


def test_clean_store_verifies(backend: Backend) -> None:
    populated(backend)
    report = backend.open().verify()
    assert report.ok and report.sessions == 2 and report.events == 2 * 11


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, 11), offset=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_any_flipped_byte_is_detected(new_backend: Callable[[str], Backend], kind: str, seq: int, offset: int, xor: int) -> None:
    backend = new_backend(kind)
    sid = populated(backend, 1)[0]
    body = bytearray(body_of(backend, sid, seq))
    body[offset % len(body)] ^= xor
    backend.sql("UPDATE events SET body=? WHERE session_id=? AND seq=?", bytes(body), sid, seq)
    report = backend.open().verify()
    assert not report.ok and report.problem is not None
    assert report.problem.seq == seq and "modified" in report.problem.message


def test_deleted_middle_event(backend: Backend) -> None:
    sid = populated(backend)[0]
    backend.sql("DELETE FROM events WHERE session_id=? AND seq=4", sid)
    p = backend.open().verify().problem
    assert p is not None and p.session_id == sid and p.seq == 4 and "missing" in p.message


def test_reordered_events(backend: Backend) -> None:
    sid = populated(backend)[0]
    backend.sql("UPDATE events SET seq = -1 WHERE session_id=? AND seq=3", sid)
    backend.sql("UPDATE events SET seq = 3 WHERE session_id=? AND seq=4", sid)
    backend.sql("UPDATE events SET seq = 4 WHERE session_id=? AND seq=-1", sid)
    p = backend.open().verify().problem
    assert p is not None and p.seq == 3


def test_rehashed_forgery_breaks_the_next_link(backend: Backend) -> None:
    """An attacker who edits an event and recomputes its hash still breaks the chain after it."""
    sid = populated(backend)[0]
    ((body, prev),) = backend.sql("SELECT body, prev_hash FROM events WHERE session_id=? AND seq=7", sid)
    forged = bytes(body).replace(b"mail", b"MAIL")
    backend.sql("UPDATE events SET body=?, hash=? WHERE session_id=? AND seq=7", forged, chain_hash(prev, 7, forged), sid)
    p = backend.open().verify().problem
    assert p is not None and p.seq == 8 and "prev_hash" in p.message


def test_truncated_tail(backend: Backend) -> None:
    sid = populated(backend)[1]
    backend.sql("DELETE FROM events WHERE session_id=? AND seq=11", sid)
    p = backend.open().verify().problem
    assert p is not None and "head" in p.message


def test_whole_session_deleted(backend: Backend) -> None:
    sid = populated(backend)[0]
    backend.sql("DELETE FROM events WHERE session_id=?", sid)
    p = backend.open().verify().problem
    assert p is not None and p.session_id == sid


def test_resume_refuses_tampered_session(backend: Backend) -> None:
    from tether import SessionError

    sid = populated(backend)[0]
    forged = body_of(backend, sid, 7).replace(b"mail", b"MAIL")
    backend.sql("UPDATE events SET body = ? WHERE session_id=? AND seq=7", forged, sid)
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), backend.open())
    with pytest.raises(SessionError, match="fails verification"):
        guard.resume_session(sid)


@pytest.mark.parametrize("column", ["first_time", "last_time"])
def test_edited_head_times_are_detected_and_never_listed(backend: Backend, column: str) -> None:
    """The heads table's times are checked against the chain: a forged time fails ``verify``,
    and session listings show the chained events' times, never the forged copy."""
    sid = populated(backend, 1)[0]
    store = backend.open()
    (before,) = [s for s in store.sessions() if s.session_id == sid]
    store.close()
    backend.sql(f"UPDATE heads SET {column} = {column} - 86400 WHERE session_id = ?", sid)
    store = backend.open()
    report = store.verify()
    assert not report.ok and report.problem is not None
    assert report.problem.session_id == sid and "times" in report.problem.message
    assert not store.verify([sid]).ok
    (after,) = [s for s in store.sessions() if s.session_id == sid]
    assert (after.first_time, after.last_time) == (before.first_time, before.last_time)
    first, last = store.read(sid)[0].event(), store.read(sid)[-1].event()
    assert (after.first_time, after.last_time) == (first.time, last.time)
