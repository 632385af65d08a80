"""``tether approvals approve --remember``, ``tether endorsements list|revoke`` and ``tether session checkin``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from click.testing import CliRunner

from tether.cli import main
from tether.events import CheckedIn

if TYPE_CHECKING:
    from tests.cli.conftest import LiveStore


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _again(live: LiveStore) -> str:
    live.session.refresh()
    return live.session.check("send_email", {"to": ["ops-team@company.com"], "body": "Quarterly report attached."}).verdict


def test_approve_and_remember_then_list_and_revoke(live: LiveStore) -> None:
    code, out = run(
        "approvals",
        "approve",
        live.pending_call[:10],
        "--db",
        live.db,
        "--by",
        "ana",
        "--remember",
        "--scope",
        "principal",
        "--expires",
        "12h",
    )
    assert code == 0 and "approved" in out and "remembered (principal): send_email.to = ops-team@company.com" in out
    assert _again(live) == "allow"
    code, out = run("endorsements", "list", "--db", live.db, "--json")
    items = [json.loads(line) for line in out.splitlines()]
    assert {(e["arg"], e["scope"], e["by"]) for e in items} >= {("to", "principal", "ana")}
    to = next(e for e in items if e["arg"] == "to")
    assert to["spared"] == 1 and abs(to["expires_at"] - to["time"] - 12 * 3600) < 5
    code, out = run("endorsements", "list", "--db", live.db)
    assert code == 0 and "spared 1 ask(s)" in out
    for e in items:
        code, out = run("endorsements", "revoke", e["id"][:12], "--db", live.db, "--by", "ana")
        assert code == 0 and "revoked by ana" in out
    assert run("endorsements", "revoke", to["id"], "--db", live.db)[0] == 2
    assert _again(live) == "ask"
    assert run("endorsements", "list", "--db", live.db)[1].strip() == "no endorsements"


def test_remember_options_are_checked(live: LiveStore) -> None:
    assert run("approvals", "approve", live.pending_call, "--db", live.db, "--scope", "principal")[0] == 2
    assert run("approvals", "approve", live.pending_call, "--db", live.db, "--remember", "--expires", "forever")[0] == 2
    assert run("approvals", "approve", live.pending_call, "--db", live.db, "--remember", "--expires", "400d")[0] == 2
    code, out = run("approvals", "approve", live.pending_call, "--db", live.db, "--remember", "--arg", "to", "--expires", "never")
    assert code == 0 and "until revoked" in out


def test_session_checkin_is_logged(live: LiveStore) -> None:
    code, out = run("session", "checkin", live.session.id[:8], "--db", live.db, "--by", "ana", "--note", "looked")
    assert code == 0 and "checked in" in out
    events = [i.event() for i in live.session.store.read(live.session.id)]
    assert isinstance(events[-1], CheckedIn) and events[-1].by == "ana"
