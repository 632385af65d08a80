"""``tether session list|pause|resume|kill`` and ``tether approvals list --json`` on a live session."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from click.testing import CliRunner

from tether.cli import main

if TYPE_CHECKING:
    from tests.cli.conftest import LiveStore


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_approvals_list_json_with_a_pending_call(live: LiveStore) -> None:
    code, out = run("approvals", "list", "--db", live.db, "--json")
    assert code == 0
    items = [json.loads(line) for line in out.splitlines()]
    assert len(items) == 1
    item = items[0]
    assert item["call_id"] == live.pending_call and item["session_id"] == live.session.id
    assert item["tool"] == "send_email" and item["args"] == {"to": ["ops-team@company.com"], "body": "Quarterly report attached."}
    assert item["expires_at"] > item["requested_at"] and "untrusted data" in item["summary"]


def test_list_shows_status_and_pending(live: LiveStore) -> None:
    code, out = run("session", "list", "--db", live.db)
    assert code == 0 and live.session.id in out and "active" in out and "1 pending approval(s)" in out and "bank-assistant" in out
    code, out = run("session", "list", "--db", live.db, "--json")
    (doc,) = [json.loads(line) for line in out.splitlines()]
    assert doc["status"] == "active" and doc["pending_approvals"] == 1 and doc["events"] == 7 and doc["policy"] == "bank-assistant"


def test_pause_resume_kill_reach_the_running_agent(live: LiveStore) -> None:
    agent = live.session
    prefix = agent.id[:6]

    code, out = run("session", "pause", "--db", live.db, "--by", "ops", "--note", "looks odd", prefix)
    assert code == 0 and f"session {agent.id} paused by ops" in out and "1 pending approval(s) denied" in out
    code, out = run("approvals", "list", "--db", live.db)
    assert "no pending approvals" in out
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "deny"  # the agent sees the pause on its next call
    assert agent.approval_status(live.pending_call) == "denied"
    code, out = run("session", "list", "--db", live.db, "--json")
    assert json.loads(out)["status"] == "paused"

    code, out = run("session", "resume", "--db", live.db, "--by", "ops", prefix)
    assert code == 0 and "resumed" in out and "(now active)" in out
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "allow"

    code, out = run("session", "kill", "--db", live.db, "--by", "ops", "--note", "done with it", prefix)
    assert code == 0 and "killed" in out
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "deny"
    code, out = run("session", "resume", "--db", live.db, prefix)
    assert code == 1 and "refused" in out and "killed" in out
    agent.refresh()
    assert agent.state.status == "killed"

    code, out = run("audit", "show", "--db", live.db, prefix)
    assert code == 0
    assert "session pause by ops: looks odd" in out and "session resume by ops" in out and "session kill by ops: done with it" in out
    assert "session resume by" not in out.split("session kill by ops")[1]  # the refused resume left no event


def test_control_needs_one_session(live: LiveStore) -> None:
    code, out = run("session", "pause", "--db", live.db, "nope")
    assert code == 2 and "no session matches 'nope'" in out
    other = live.session.guard.start_session("another task", session_id=live.session.id[:4] + "-other")
    code, out = run("session", "kill", "--db", live.db, other.id[:4])
    assert code == 2 and "2 sessions match" in out
    code, out = run("session", "kill", "--db", live.db, other.id)
    assert code == 0 and live.session.check("read_inbox", {"folder": "inbox"}).verdict == "allow"
