"""The ``EventStore`` protocol, on both back ends: one linear chain per session whoever writes,
call ids unique for good, derived indexes that follow the chain, turns that hold the head."""

from __future__ import annotations

import time

import pytest
from tests.store.conftest import Backend

from tether.errors import DuplicateCall, StaleSession, StoreError
from tether.events import ApprovalAnswered, ApprovalRequested, CallProposed, DecisionMade, Event, SessionEnded
from tether.store import GENESIS, SnapshotRecord

SID = "s"


def check(call_id: str, sid: str = SID) -> list[Event]:
    return [
        CallProposed(session_id=sid, call_id=call_id, tool="t", args={"a": 1}, call_hash="h"),
        DecisionMade(session_id=sid, call_id=call_id, verdict="allow", policy_hash="p"),
    ]


def test_two_stores_keep_one_linear_chain(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    assert a.append(SID, check("c1"), expect_seq=0)[-1].seq == 2
    assert b.append(SID, check("c2"), expect_seq=2)[-1].seq == 4
    with pytest.raises(StaleSession) as lost:
        a.append(SID, check("c3"), expect_seq=2)
    assert (lost.value.expected, lost.value.actual) == (2, 4)
    head = b.head(SID)
    stored = a.append(SID, check("c3"))
    assert head is not None and [e.seq for e in stored] == [5, 6] and stored[0].prev_hash == head.hash
    assert b.append(SID, check("c4"), expect_seq=6)[-1].seq == 8
    with pytest.raises(StaleSession):
        b.append(SID, check("c5"), expect_seq=6)
    report = a.verify()
    assert report.ok and report.events == 8
    assert [e.seq for e in a.read(SID)] == list(range(1, 9))
    assert a.read(SID)[0].prev_hash == GENESIS


def test_duplicate_call_writes_nothing_even_from_another_store(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    a.append(SID, check("c1"), expect_seq=0)
    with pytest.raises(DuplicateCall):
        b.append(SID, check("c1"), expect_seq=2)
    with pytest.raises(DuplicateCall):
        a.append(SID, check("c1"), expect_seq=2)
    head = a.head(SID)
    assert head is not None and head.seq == 2
    assert a.append(SID, check("c2"), expect_seq=2)[-1].seq == 4 and a.verify().ok


def test_two_proposals_of_one_id_in_one_append_are_refused_and_write_nothing(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(DuplicateCall):
        store.append(SID, [*check("c"), *check("c")])
    assert store.head(SID) is None and store.read(SID) == [] and store.sessions() == []
    assert store.append(SID, check("c"), expect_seq=0)[-1].seq == 2


def test_a_call_id_stays_used_long_after_it_left_every_memory(backend: Backend) -> None:
    store = backend.open()
    store.append(SID, check("first"))
    for i in range(300):
        store.append(SID, check(f"c{i}"))
    store.close()
    with pytest.raises(DuplicateCall):
        backend.open().append(SID, check("first"))


def test_pending_approvals_index_follows_the_chain(backend: Backend) -> None:
    store = backend.open()
    ask = [
        CallProposed(session_id=SID, call_id="c1", tool="pay", args={"to": "x"}, call_hash="h1"),
        ApprovalRequested(session_id=SID, call_id="c1", call_hash="h1", expires_at=time.time() + 60, summary="why"),
    ]
    store.append(SID, ask, expect_seq=0)
    assert [(p.call_id, p.tool, p.args, p.summary) for p in backend.open().pending_approvals()] == [("c1", "pay", {"to": "x"}, "why")]
    store.append(SID, [ApprovalAnswered(session_id=SID, call_id="c1", call_hash="h1", approved=True, by="me")], expect_seq=2)
    assert store.pending_approvals() == []


def asks(sid: str, count: int, *, at: float, expires_at: float, start: int = 0) -> list[Event]:
    """``count`` calls of session ``sid`` waiting for approval, asked at ``at`` (one second apart)."""
    out: list[Event] = []
    for i in range(start, start + count):
        call_id = f"{sid}-{i:05d}"
        out.append(CallProposed(session_id=sid, time=at + i, call_id=call_id, tool="pay", args={"n": i}, call_hash=call_id))
        out.append(ApprovalRequested(session_id=sid, time=at + i, call_id=call_id, call_hash=call_id, expires_at=expires_at, summary="why"))
    return out


def test_pending_approvals_are_filtered_paged_and_counted_in_the_database(backend: Backend) -> None:
    """A week-old store: thousands of stale asks of abandoned sessions, a few live ones, a hidden
    stream. A reader that serves people gets the live ones a page at a time, and their counts."""
    store = backend.open()
    now = 1_000_000.0
    store.append("old", asks("old", 3000, at=now - 7 * 86400, expires_at=now - 86400))
    store.append("live", asks("live", 40, at=now - 100, expires_at=now + 3600))
    store.append("mcp-pins:x", asks("mcp-pins:x", 2, at=now - 50, expires_at=now + 3600))
    store.append("old", asks("old", 5, at=now - 10, expires_at=now + 60, start=3000))

    assert len(store.pending_approvals()) == 3047  # every request, as before
    assert store.pending_counts() == {"old": 3005, "live": 40, "mcp-pins:x": 2}
    assert store.pending_counts(live_at=now) == {"old": 5, "live": 40, "mcp-pins:x": 2}
    assert store.pending_counts(live_at=now, hide=("mcp-pins:", "principal:")) == {"old": 5, "live": 40}
    assert store.pending_counts(live_at=now, session_id="live") == {"live": 40}
    assert store.pending_counts(live_at=now, hide="mcp-pins:") == {"old": 5, "live": 40}  # one prefix as a string

    live = store.pending_approvals(live_at=now, hide=("mcp-pins:",))
    assert [p.call_id for p in live] == [f"live-{i:05d}" for i in range(40)] + [f"old-{i:05d}" for i in range(3000, 3005)]
    pages = [store.pending_approvals(live_at=now, hide=("mcp-pins:",), limit=10, offset=o) for o in range(0, 50, 10)]
    assert [p.call_id for page in pages for p in page] == [p.call_id for p in live] and [len(p) for p in pages] == [10, 10, 10, 10, 5]
    assert store.pending_approvals(live_at=now, hide=("mcp-pins:",), offset=44) == live[44:]
    assert store.pending_approvals(live_at=now, limit=0) == []
    (first,) = store.pending_approvals(live_at=now, session_id="old", limit=1)
    assert (first.call_id, first.tool, first.args, first.expires_at) == ("old-03000", "pay", {"n": 3000}, now + 60)
    assert store.pending_counts(live_at=now + 60) == store.pending_counts(live_at=now)  # expiring at live_at: still live
    assert store.pending_counts(live_at=now + 61) == {"live": 40, "mcp-pins:x": 2}
    with pytest.raises(ValueError):
        store.pending_approvals(limit=-1)
    with pytest.raises(ValueError):
        store.pending_approvals(offset=-1)


@pytest.mark.parametrize("prefix", ["%", "_", "mcp-pins:%", "MCP-PINS:"])
def test_hidden_prefixes_are_matched_as_text(backend: Backend, prefix: str) -> None:
    """A prefix is text, not a pattern (no LIKE wildcards) and case counts: nothing else is hidden."""
    store = backend.open()
    store.append("mcp-pins:x", asks("mcp-pins:x", 1, at=1.0, expires_at=100.0))
    store.append("%_y", asks("%_y", 1, at=2.0, expires_at=100.0))
    hidden = {"%": "%_y", "_": None, "mcp-pins:%": None, "MCP-PINS:": None}[prefix]
    assert {p.session_id for p in store.pending_approvals(hide=(prefix,))} == {"mcp-pins:x", "%_y"} - {hidden}


def test_pending_approvals_by_call_id_prefix(backend: Backend) -> None:
    """A person names a call by a prefix of its id (``tether approvals approve 3f2``): matched as
    text in the database, case counting, with no wildcard; a text no id can hold matches nothing."""
    store = backend.open()
    store.append("s1", asks("s1", 12, at=1.0, expires_at=100.0))
    store.append("mcp-pins:x", asks("mcp-pins:x", 1, at=2.0, expires_at=100.0))
    assert [p.call_id for p in store.pending_approvals(call_prefix="s1-0001")] == ["s1-00010", "s1-00011"]
    assert [p.call_id for p in store.pending_approvals(call_prefix="s1-00003")] == ["s1-00003"]
    assert [p.call_id for p in store.pending_approvals(call_prefix="mcp", hide=("mcp-pins:",))] == []
    assert len(store.pending_approvals(call_prefix="")) == 13
    for nothing in ("S1-", "s1-0001%", "s1_", "s1-\x00", "%"):
        assert store.pending_approvals(call_prefix=nothing) == []
    assert store.pending_approvals(session_id="s1\x00") == [] and store.pending_counts(session_id="\x00") == {}
    assert len(store.pending_approvals(hide=("\x00",))) == 13


def test_appending_after_reading_links_onto_what_was_read(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    a.append(SID, check("c1"), expect_seq=0)
    for i in range(3):
        b.append(SID, check(f"b{i}"))
    missed = a.read(SID, 2)
    assert [e.seq for e in missed] == [3, 4, 5, 6, 7, 8]
    assert a.append(SID, [SessionEnded(session_id=SID)], expect_seq=8)[0].prev_hash == missed[-1].hash
    assert a.verify().ok


def test_a_turn_holds_the_head_until_the_append(backend: Backend) -> None:
    a, b = backend.open(), backend.open(timeout_s=0.05)
    a.append(SID, check("c1"), expect_seq=0)
    with a.turn():
        seen = a.read(SID, 0)
        # Nobody else can write to the session while a holds its turn...
        with pytest.raises(StoreError, match="locked"):
            b.append(SID, check("b1"), expect_seq=2)
        # ...so an append on what was read cannot be stale; it commits and ends the turn.
        assert a.append(SID, check("c2"), expect_seq=seen[-1].seq)[-1].seq == 4
        assert b.append(SID, check("b1"), expect_seq=4)[-1].seq == 6
    # A turn that writes nothing gives the lock back at the end of its block.
    with a.turn():
        a.read(SID, 6)
    assert b.append(SID, check("b2"), expect_seq=6)[-1].seq == 8
    # A turn whose append fails still gives the lock back, and nothing was written.
    with a.turn(), pytest.raises(DuplicateCall):
        a.read(SID, 8)
        a.append(SID, check("b2"), expect_seq=8)
    assert b.append(SID, check("b3"), expect_seq=8)[-1].seq == 10 and b.verify().ok


def test_interleaved_sessions_keep_their_own_chains(backend: Backend) -> None:
    """Sessions share the tables: reads, heads and verify never mix them."""
    a, b = backend.open(), backend.open()
    names = ["s-b", "s-a", "s-c"]
    for i in range(20):
        for n, sid in enumerate(names):
            (a if (i + n) % 2 else b).append(sid, check(f"{sid}-{i}", sid))
    for sid in names:
        events = a.read(sid)
        assert [e.seq for e in events] == list(range(1, 41)) and {e.session_id for e in events} == {sid}
        assert all(e.event().session_id == sid for e in events)
        assert [e.seq for e in b.read(sid, 35)] == [36, 37, 38, 39, 40] and [e.seq for e in b.read(sid, 3, limit=2)] == [4, 5]
        head = a.head(sid)
        assert head is not None and head.hash == events[-1].hash
    assert a.read("nobody") == [] and a.head("nobody") is None
    report = a.verify()
    assert report.ok and (report.sessions, report.events) == (3, 120)
    assert a.verify(["s-a"]).events == 40
    assert [s.session_id for s in a.sessions()] == names


def test_policies_and_snapshots_round_trip(backend: Backend) -> None:
    store = backend.open()
    store.put_policy("sha256:p", "bank", "name: bank\n")
    store.put_policy("sha256:p", "bank", "name: bank\n")
    assert backend.open().get_policy("sha256:p") == "name: bank\n" and store.get_policy("sha256:nope") is None
    stored = store.append(SID, check("c1"))
    for seq in (1, 2, 3):
        store.put_snapshot(SnapshotRecord(SID, seq, stored[-1].hash, "sha256:p", b"state %d" % seq, f"d{seq}"))
    latest = backend.open().latest_snapshot(SID)
    assert latest is not None and (latest.seq, latest.body, latest.digest) == (3, b"state 3", "d3")
    assert store.latest_snapshot("nobody") is None


def test_a_chain_written_by_one_back_end_verifies_on_the_other(new_backend: object) -> None:
    """The same events give the same bodies and hashes on both back ends."""
    assert callable(new_backend)
    sqlite, postgres = new_backend("sqlite"), new_backend("postgres")
    events = [*check("c1"), *check("c2"), SessionEnded(session_id=SID)]
    a = sqlite.open().append(SID, events)
    b = postgres.open().append(SID, events)
    assert [(e.seq, e.body, e.prev_hash, e.hash) for e in a] == [(e.seq, e.body, e.prev_hash, e.hash) for e in b]
    assert [e.hash for e in sqlite.open().read(SID)] == [e.hash for e in postgres.open().read(SID)]


def test_a_waiting_reader_wakes_when_another_store_appends(backend: Backend) -> None:
    import threading

    a, b = backend.open(), backend.open()
    a.append(SID, check("c1"))
    assert a.wait_for_change(SID, 0, 5.0) is True  # already past: no wait
    started = time.monotonic()
    assert a.wait_for_change(SID, 2, 0.3) is False
    assert 0.25 <= time.monotonic() - started < 3.0
    woke: list[tuple[bool, float]] = []

    def wait(session_id: str | None) -> None:
        woke.append((a.wait_for_change(session_id, 2, 20.0), time.monotonic()))

    # A reader of one session: an append to another session does not wake it; one to its own does.
    waiter = threading.Thread(target=wait, args=(SID,))
    waiter.start()
    time.sleep(0.3)
    b.append("other", check("x1", "other"))
    time.sleep(0.3)
    assert waiter.is_alive()
    appended = time.monotonic()
    b.append(SID, check("c2"))
    waiter.join(10)
    assert woke and woke[-1][0] and woke[-1][1] - appended < 1.0
    # A reader of the whole store: any append wakes it.
    waiter = threading.Thread(target=wait, args=(None,))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    appended = time.monotonic()
    b.append("other", check("x2", "other"))
    waiter.join(10)
    assert len(woke) == 2 and woke[-1][0] and woke[-1][1] - appended < 1.0


def test_a_writer_that_timed_out_on_a_lock_can_write_again(backend: Backend) -> None:
    """A lock wait that fails leaves no half-open transaction behind (the hinted path included)."""
    a, b = backend.open(), backend.open(timeout_s=0.05)
    b.append(SID, check("c1"), expect_seq=0)  # b now knows the head
    with a.turn():
        a.read(SID)
        with pytest.raises(StoreError, match="locked"):
            b.append(SID, check("b1"), expect_seq=2)
    assert b.append(SID, check("b1"), expect_seq=2)[-1].seq == 4 and b.verify().ok
