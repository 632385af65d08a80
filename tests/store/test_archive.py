"""Retention on both back ends: finished sessions move to a SQLite archive byte for byte, the
live store keeps their heads, and the archive is checked against those heads."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.store.conftest import Backend

from tether import Guard, Policy
from tether.cli import main
from tether.errors import StoreError
from tether.store import SQLiteStore, archive_sessions, finished_before, open_store, verify_archived

FIX = Path(__file__).parents[1] / "fixtures"


def three_sessions(backend: Backend) -> tuple[str, str, str]:
    """An ended, a killed and an active session."""
    guard = Guard(Policy.from_file(FIX / "bank.yaml"), backend.open())
    ids = []
    for n in range(3):
        s = guard.start_session(f"Read my inbox ({n})")
        d = s.check("read_inbox", {"folder": "inbox"})
        s.record_result(d.call_id, f"mail {n}")
        if n == 0:
            s.end()
        elif n == 1:
            s.control("kill", by="ops")
        s.save_snapshot()
        ids.append(s.id)
    return ids[0], ids[1], ids[2]


def test_finished_sessions_move_and_their_heads_stay(backend: Backend, tmp_path: Path) -> None:
    ended, killed, active = three_sessions(backend)
    live = backend.open()
    assert finished_before(live, time.time() - 3600) == []
    assert sorted(finished_before(live, time.time() + 1)) == sorted([ended, killed])
    heads = {sid: live.head(sid) for sid in (ended, killed)}
    chains = {sid: [(e.seq, e.body, e.hash) for e in live.read(sid)] for sid in (ended, killed)}
    archive = SQLiteStore(tmp_path / "archive.sqlite", durability="full")
    report = archive_sessions(live, archive, [ended, killed, "nobody"], archive_name="archive.sqlite", now=time.time)
    assert sorted(h.session_id for h in report.archived) == sorted([ended, killed])
    assert report.skipped == [("nobody", "not in the store")] and report.events == sum(len(c) for c in chains.values())
    # The live store holds only the active session, verifies, and remembers where the others went.
    assert [s.session_id for s in live.sessions()] == [active] and live.verify().ok
    records = {r.session_id: r for r in backend.open().archived()}
    assert {sid: r.head() for sid, r in records.items()} == heads and {r.archive for r in records.values()} == {"archive.sqlite"}
    assert live.read(ended) == [] and live.latest_snapshot(ended) is None
    # The archive holds the same bytes, its snapshot and policy, and ends each session at the recorded head.
    assert {sid: [(e.seq, e.body, e.hash) for e in archive.read(sid)] for sid in (ended, killed)} == chains
    assert archive.latest_snapshot(ended) is not None and archive.verify().ok
    assert Guard.for_session(archive, ended).resume_session(ended).state.status == "ended"
    assert verify_archived(list(records.values()), lambda name: SQLiteStore(tmp_path / name)) == (report.events, None)
    # An archived session cannot be continued in the live store.
    with pytest.raises(StoreError, match="archived"):
        Guard(Policy.from_file(FIX / "bank.yaml"), live).start_session("again", session_id=ended)
    archive.close()


def test_an_edited_or_truncated_archive_fails_against_the_recorded_heads(backend: Backend, tmp_path: Path) -> None:
    ended, killed, _ = three_sessions(backend)
    live = backend.open()
    archive = SQLiteStore(tmp_path / "a.sqlite")
    archive_sessions(live, archive, [ended, killed], archive_name="a.sqlite", now=time.time)
    records = live.archived()
    archive.close()
    path = tmp_path / "a.sqlite"
    edited = Backend("sqlite", str(path))
    # Cut the last event of one session and rewrite the archive's head to match: the archive
    # verifies on its own, but no longer ends the session at the head the live store recorded.
    last = edited.sql("SELECT seq, prev_hash FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 1", ended)[0]
    edited.sql("DELETE FROM events WHERE session_id = ? AND seq = ?", ended, last[0])
    edited.sql("UPDATE heads SET seq = ?, hash = ? WHERE session_id = ?", last[0] - 1, last[1], ended)
    edited.sql("UPDATE heads SET last_time = first_time WHERE session_id = ?", ended)
    _, problem = verify_archived(records, lambda name: SQLiteStore(tmp_path / name))
    assert problem is not None and problem.session_id == ended and "archive" in problem.message
    _, problem = verify_archived(records, lambda name: open_store(str(tmp_path / "missing.sqlite"), must_exist=True))
    assert problem is not None and "cannot be opened" in problem.message


def test_a_run_stopped_after_the_copy_finishes_on_the_next_run(backend: Backend, tmp_path: Path) -> None:
    ended, _, _ = three_sessions(backend)
    live = backend.open()
    archive = SQLiteStore(tmp_path / "a.sqlite")
    archive.import_session(live.read(ended))  # the copy committed, then the run stopped
    report = archive_sessions(live, archive, [ended], archive_name="a.sqlite", now=time.time)
    assert [h.session_id for h in report.archived] == [ended] and live.head(ended) is None and archive.verify().ok
    archive.close()


def test_the_audit_commands_archive_and_verify(
    new_backend: Callable[[str], Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for kind in ("sqlite", "postgres"):
        backend = new_backend(kind)
        three_sessions(backend)
        exported = CliRunner().invoke(main, ["audit", "head", "--db", backend.target, "--json"], catch_exceptions=False)
        (tmp_path / f"{kind}.heads").write_text(exported.output)
        run = CliRunner().invoke(
            main, ["audit", "archive", "--db", backend.target, "--ended-before", "0s", "--to", f"{kind}.sqlite"], catch_exceptions=False
        )
        assert run.exit_code == 0 and "archived 2 session(s)" in run.output, run.output
        plain = CliRunner().invoke(main, ["audit", "verify", "--db", backend.target], catch_exceptions=False)
        assert plain.exit_code == 0 and "2 archived session(s)" in plain.output and "--archives" in plain.output
        full = CliRunner().invoke(
            main, ["audit", "verify", "--db", backend.target, "--archives", "--expect", f"{kind}.heads"], catch_exceptions=False
        )
        assert full.exit_code == 0 and "archived session(s) verified" in full.output, full.output
        alone = CliRunner().invoke(main, ["audit", "verify", "--db", f"{kind}.sqlite"], catch_exceptions=False)
        assert alone.exit_code == 0 and "in 2 session(s)" in alone.output
        (tmp_path / f"{kind}.sqlite").unlink()
        gone = CliRunner().invoke(main, ["audit", "verify", "--db", backend.target, "--archives"], catch_exceptions=False)
        assert gone.exit_code == 1 and "cannot be opened" in gone.output
