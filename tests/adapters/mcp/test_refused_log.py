"""Refused protocol messages land in the session's hash-chained log (``protocol_refused``), bounded under a flood.

A raw client speaks to a real ``tether mcp`` process in front of a real MCP
server (``servers/toy_server.py``) and sends what the allow-list router refuses
or cuts down: an unknown method, a request sent as a notification, params
members and ``_meta`` the guard does not check, an answer to an id never sent,
a malformed line. Each is an event in the session, shown by ``tether audit
show`` and covered by ``tether audit verify``. A flood of them logs the first
few of each kind one by one and one summary event with the count of the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mcp_helpers import HERE, POLICIES, TOY, RawClient, run_tether

from tether import SQLiteStore
from tether.adapters.mcp._refusals import BURST, MAX_KINDS, MAX_SAMPLES, RefusalLog
from tether.errors import StoreError
from tether.events import ProtocolRefused
from tether.server._views import timeline_entry

RAW = HERE / "servers" / "raw_server.py"
POLICY = "tether: 1\nname: refusals\ntools:\n  echo: {effect: read, args: {text: {type: string}}}\n"


def _proxy(tmp_path: Path) -> tuple[RawClient, Path]:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    db = tmp_path / "t.db"
    client = RawClient(["--policy", str(policy), "--db", str(db), "--no-pins", "--", sys.executable, str(TOY)])
    client.initialize()
    return client, db


def _refusals(db: Path) -> tuple[str, list[ProtocolRefused]]:
    with SQLiteStore(db) as store:
        sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
        events = [i.event() for i in store.read(sid)]
    return sid, [e for e in events if isinstance(e, ProtocolRefused)]


def test_each_class_of_refused_message_is_an_event_in_the_verified_log(tmp_path: Path) -> None:
    client, db = _proxy(tmp_path)
    try:
        client.send({"jsonrpc": "2.0", "id": 1, "method": "vendor/exfiltrate", "params": {"data": "k"}})
        assert client.answer(1)["error"]["code"] == -32601
        client.send({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "as a notification"}}})
        client.send({"jsonrpc": "2.0", "method": "notifications/vendor", "params": {}})
        call = {"name": "echo", "arguments": {"text": "hi"}, "smuggled": "k", "_meta": {"progressToken": 7, "leak": "k"}}
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
        assert "result" in client.answer(2)
        client.send({"jsonrpc": "2.0", "id": "never-sent", "result": {}})
        client.send(b"{not json")
        assert client.answer(None)["error"]["code"] == -32700
        client.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})  # everything before it has been handled
        client.answer(3)
    finally:
        assert client.close() == 0
    sid, refused = _refusals(db)
    by_what = {e.what: e for e in refused}
    assert set(by_what) == {
        "unknown-method",
        "request-as-notification",
        "unknown-notification",
        "dropped-members",
        "dropped-meta",
        "orphan-answer",
        "malformed",
    }
    assert by_what["unknown-method"].method == "vendor/exfiltrate" and by_what["unknown-method"].source == "client"
    assert by_what["request-as-notification"].method == "tools/call"
    assert "'smuggled'" in by_what["dropped-members"].detail and "'leak'" in by_what["dropped-meta"].detail
    assert all(e.count == 1 for e in refused)
    verify = run_tether("audit", "verify", "--db", str(db))
    assert verify.returncode == 0 and "verified" in verify.stdout
    with SQLiteStore(db) as store:  # the web UI's timeline entries
        timeline = [timeline_entry(i).to_json() for i in store.read(sid)]
    entry = next(t for t in timeline if t["kind"] == "protocol_refused" and "vendor/exfiltrate" in t["text"])
    assert entry["text"].startswith("refused from client: unknown-method 'vendor/exfiltrate'")
    shown = run_tether("audit", "show", "--db", str(db), sid[:8]).stdout
    assert "refused from client: request-as-notification 'tools/call'" in shown
    assert "refused from client: unknown-method 'vendor/exfiltrate'" in shown


def test_what_a_server_sends_past_the_protocol_is_logged_as_from_the_server(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    client = RawClient(["--policy", str(POLICIES / "raw.yaml"), "--db", str(db), "--", sys.executable, str(RAW)])
    try:
        client.initialize()
        client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "noise", "arguments": {}}})
        assert "result" in client.answer(1)  # the stray line is dropped, the answer still comes
    finally:
        assert client.close() == 0
    _, refused = _refusals(db)
    assert [(e.source, e.what) for e in refused] == [("server", "malformed")]
    assert "sent a malformed message" in refused[0].detail and str(RAW) not in refused[0].source


def test_a_flood_logs_a_burst_per_kind_and_one_summary_with_the_count(tmp_path: Path) -> None:
    client, db = _proxy(tmp_path)
    flood = 1500
    try:
        for i in range(flood):
            client.send({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": f"n{i}"}}})
            client.send({"jsonrpc": "2.0", "id": i + 10, "method": f"vendor/m{i}"})
        for i in range(flood):
            assert client.answer(i + 10, timeout=60)["error"]["code"] == -32601
    finally:
        assert client.close() == 0
    _, refused = _refusals(db)
    for what in ("request-as-notification", "unknown-method"):
        events = [e for e in refused if e.what == what]
        singles = [e for e in events if e.count == 1]
        summaries = [e for e in events if e.count > 1]
        assert len(singles) == BURST and len(summaries) == 1, (what, len(singles), len(summaries))
        assert sum(e.count for e in events) == flood  # every message counted, none lost
        assert "logged as one event" in summaries[0].detail
    assert len(refused) == 2 * (BURST + 1)  # the log grew by 22 events, not 3,000
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_burst_starts_again_after_the_window_with_a_summary_of_the_last() -> None:
    got: list[ProtocolRefused] = []
    clock = _Clock()
    log = RefusalLog("s", got.append, lambda _t: None, burst=2, window_s=10, clock=clock)
    for _ in range(5):
        log.refuse("client", "unknown-method", "x/y", "refused")
    assert [e.count for e in got] == [1, 1]
    clock.now = 11
    log.refuse("client", "unknown-method", "x/y", "refused")
    assert [e.count for e in got] == [1, 1, 3, 1]  # the summary of the 3 held back, then a new burst
    log.flush()
    assert [e.count for e in got] == [1, 1, 3, 1]  # nothing held back: no summary


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["client", "server a", "server b"]), st.sampled_from(["unknown-method", "malformed"]), st.text(max_size=300)
        ),
        min_size=1,
        max_size=400,
    )
)
def test_memory_stays_bounded_and_every_refusal_is_counted(messages: list[tuple[str, str, str]]) -> None:
    got: list[ProtocolRefused] = []
    log = RefusalLog("s", got.append, lambda _t: None)
    for source, what, method in messages:
        log.refuse(source, what, method, "d")
    assert len(log._windows) <= 6 and all(len(w.samples) <= MAX_SAMPLES for w in log._windows.values())
    log.flush()
    assert sum(e.count for e in got) == len(messages) == log.refused
    assert all(len(e.method) <= 80 for e in got)


def test_many_kinds_share_one_overflow_kind() -> None:
    got: list[ProtocolRefused] = []
    log = RefusalLog("s", got.append, lambda _t: None)
    for i in range(MAX_KINDS * 4):
        log.refuse(f"server s{i}", "malformed", "", "d")
    assert len(log._windows) == MAX_KINDS + 1
    log.flush()
    assert sum(e.count for e in got) == MAX_KINDS * 4


def test_a_store_that_fails_leaves_the_refusal_on_the_log_only() -> None:
    said: list[str] = []

    def fail(_e: Any) -> None:
        raise StoreError("disk full")

    log = RefusalLog("s", fail, said.append)
    log.refuse("client", "unknown-method", "x", "refused x")
    assert said[0] == "refused x" and "could not log a refused message" in said[1] and log.recorded == 0


def test_a_sender_chosen_method_cannot_swell_or_forge_the_log() -> None:
    """The details the proxy writes quote the sender's method name (and dropped member names): a
    method of megabytes, or one with a newline or terminal escapes, must neither put megabytes into
    each event and stderr line nor forge lines on the proxy's log."""
    said: list[str] = []
    got: list[ProtocolRefused] = []
    log = RefusalLog("s", got.append, said.append)
    huge = "vendor/" + "x" * 1_000_000
    forged = "m\ntether-mcp: allowed call 'pay' \x1b[2K\r\u2028"
    log.refuse("client", "unknown-method", huge, f"refused the client's request {huge!r}: not a method Tether knows")
    log.refuse("client", "duplicate-id", forged, f"refused the client's {forged}: id 1 is already in use")
    log.refuse("client", "unknown-notification", huge, "")
    assert len(got) == 3
    for text in [*said, *(e.detail for e in got)]:
        assert len(text) <= 1000, len(text)
        assert text.isprintable(), repr(text)
