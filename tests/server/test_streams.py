"""The web UI's live streams wait on the store's changes, on both back ends: a new ask, an answer
or an agent's call reaches an open stream as soon as it is committed by another process's
connection (far sooner than the 15 s keep-alive, the only other time a stream reads the store),
and however many streams are open, one thread waits, and it ends when the last stream closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.server.guard_fixtures import POLICY, make_tokens, open_target, thread_server

from tether import Guard, Policy
from tether.server.web._api import KEEP_ALIVE_S
from tether.session import Session

SOON_S = 5.0
"""A change must reach a stream within this (the keep-alive is 15 s: only a wake-up can be this quick)."""
THREAD = "tether-ui-changes"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "ui.db")


def _agent(target: str) -> Session:
    """An agent's session in its own store connection (as another process would have)."""
    return Guard(Policy.from_yaml(POLICY), open_target(target)).start_session("Pay what the note says", principal="ana")


def _ask(session: Session) -> str:
    read = session.check("read_note", {"n": 1})
    session.record_result(read.call_id, "pay acme-supplies 20 today")
    asked = session.check("pay", {"to": "acme-supplies", "amount": 20})
    assert asked.verdict == "ask"
    return asked.call_id


def _next_event(lines: Iterator[str], name: str) -> str:
    """The data line of the next event called ``name`` (comments and other events skipped)."""
    for line in lines:
        if line == f"event: {name}":
            return next(lines)
    raise AssertionError(f"the stream ended before an {name!r} event")


def test_a_new_ask_and_its_answer_reach_an_open_inbox_at_once(target: str) -> None:
    assert KEEP_ALIVE_S >= 3 * SOON_S
    tokens = make_tokens(target)
    session = _agent(target)
    auth = {"Authorization": f"Bearer {tokens.overseer}"}
    with (
        thread_server(target) as url,
        httpx.Client(base_url=url, headers=auth, timeout=30) as ui,
        ui.stream("GET", "/api/approvals/stream") as stream,
    ):
        lines = stream.iter_lines()
        assert _next_event(lines, "changed") == 'data: {"pending": 0}'
        t0 = time.monotonic()
        call = _ask(session)
        assert _next_event(lines, "changed") == 'data: {"pending": 1}'
        assert time.monotonic() - t0 < SOON_S
        t0 = time.monotonic()
        answered = httpx.post(
            f"{url}/api/approvals/{call}", headers={"Authorization": f"Bearer {tokens.overseer}"}, json={"decision": "deny"}, timeout=30
        )
        assert answered.status_code == 200, answered.text
        assert _next_event(lines, "changed") == 'data: {"pending": 0}'
        assert time.monotonic() - t0 < SOON_S
    session.store.close()


def test_an_agents_call_reaches_its_session_stream_at_once(target: str) -> None:
    tokens = make_tokens(target)
    session = _agent(target)
    auth = {"Authorization": f"Bearer {tokens.overseer}"}
    after = {"after": session.state.last_seq}
    with (
        thread_server(target) as url,
        httpx.Client(base_url=url, headers=auth, timeout=30) as ui,
        ui.stream("GET", f"/api/sessions/{session.id}/stream", params=after) as stream,
    ):
        lines = stream.iter_lines()
        time.sleep(0.5)  # the stream has read what there was and waits
        t0 = time.monotonic()
        session.check("read_note", {"n": 7})
        assert '"kind": "call_proposed"' in _next_event(lines, "entry")
        assert time.monotonic() - t0 < SOON_S
    session.store.close()


def _ui_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == THREAD)


def _no_ui_threads_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _ui_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    return _ui_threads() == 0


def test_one_waiting_thread_for_many_streams_and_none_once_they_close(tmp_path: Path) -> None:
    assert _no_ui_threads_within(10)  # the streams of the tests before closed: their thread ended too
    target = str(tmp_path / "ui.db")
    tokens = make_tokens(target)
    session = _agent(target)
    auth = {"Authorization": f"Bearer {tokens.overseer}"}
    with thread_server(target) as url:
        opened = threading.Barrier(9)
        stop = threading.Event()
        seen: list[str] = []

        def watch() -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=30) as ui, ui.stream("GET", "/api/approvals/stream") as stream:
                lines = stream.iter_lines()
                _next_event(lines, "changed")
                opened.wait()
                seen.append(_next_event(lines, "changed"))
                stop.wait(30)

        watchers = [threading.Thread(target=watch) for _ in range(8)]
        for w in watchers:
            w.start()
        opened.wait()
        assert _ui_threads() == 1
        _ask(session)
        deadline = time.monotonic() + SOON_S
        while len(seen) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == ['data: {"pending": 1}'] * 8
        assert _ui_threads() == 1
        stop.set()
        for w in watchers:
            w.join(30)
        assert _no_ui_threads_within(10)  # the last stream closed: the thread ended
    session.store.close()
