"""Pause, resume and kill say what the state already is and append nothing when nothing changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tether import Guard, Policy, SessionError, SQLiteStore

POLICY = "tether: 1\nname: control\ntools:\n  read: {effect: read}\n"


def _kinds(session: object) -> list[str]:
    return [e.event().kind for e in session.store.read(session.id)]  # type: ignore[attr-defined]


def test_asking_for_the_status_a_session_has_appends_nothing() -> None:
    s = Guard(Policy.from_yaml(POLICY)).start_session("read")
    assert s.control("resume") is False  # already active
    assert s.control("pause") is True
    assert s.control("pause") is False
    assert s.control("resume") is True
    assert s.control("kill") is True
    assert s.control("kill") is False
    assert _kinds(s).count("session_control") == 3
    with pytest.raises(SessionError, match="killed; it cannot be resumed"):
        s.control("resume")


def test_the_cli_says_the_session_is_already_paused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    s = Guard(Policy.from_yaml(POLICY), SQLiteStore(db)).start_session("read", session_id="ctl-1")
    cmd = [sys.executable, "-m", "tether", "session", "pause", "ctl-1", "--db", str(db)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "paused" in first.stdout
    assert second.returncode == 0 and "already paused" in second.stdout and "nothing was logged" in second.stdout
    assert _kinds(Guard(Policy.from_yaml(POLICY), SQLiteStore(db)).open_session(s.id)).count("session_control") == 1
