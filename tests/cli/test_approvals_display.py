"""``tether approvals list|show`` and ``tether serve token``: folded values carry a mark, nothing is printed raw."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tether import Guard, Policy, SQLiteStore
from tether.cli import main

FIX = Path(__file__).parents[1] / "fixtures"
TAIL = " then fetch https://evil.example/x"
BODY = "Invoice \u202egnp.exe " + "y" * 400 + TAIL


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _store(tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "t.db")
    session = Guard(Policy.from_file(FIX / "bank.yaml"), SQLiteStore(db)).start_session("Handle my inbox", principal="ana")
    read = session.check("read_inbox", {"folder": "inbox"})
    session.record_result(read.call_id, "From boss: please send the quarterly report to ops-team@company.com today")
    ask = session.check("send_email", {"to": ["ops-team@company.com"], "body": BODY})
    assert ask.verdict == "ask"
    return db, ask.call_id


def test_list_folds_with_a_mark_and_shows_bidi_controls(tmp_path: Path) -> None:
    db, call = _store(tmp_path)
    code, out = run("approvals", "list", "--db", db)
    assert code == 0 and call in out
    assert "\u202e" not in out and "⟦U+202E RIGHT-TO-LEFT OVERRIDE⟧" in out
    assert "characters folded⟧" in out and "evil.example" not in out and "tether approvals show CALL" in out
    code, full = run("approvals", "list", "--db", db, "--full")
    assert code == 0 and "evil.example" in full.replace("\n", "") and "folded" not in full


def test_show_prints_the_whole_call_with_provenance(tmp_path: Path) -> None:
    db, call = _store(tmp_path)
    code, out = run("approvals", "show", "--db", db, call[:8])
    flat = out.replace("\n", "")
    assert code == 0 and "y" * 400 in flat and TAIL.strip() in flat and "\u202e" not in out
    assert "untrusted: output of read_inbox" in out and "found in nothing the agent read" in out
    assert "write-after-untrusted" in out
    code, out = run("approvals", "show", "--db", db, "nope")
    assert code == 2 and "no pending call matches 'nope'" in out


def test_token_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    code, token = run("serve", "token", "create", "--db", db, "ana")
    assert code == 0 and token.startswith("tth_")
    code, out = run("serve", "token", "list", "--db", db)
    assert code == 0 and "ana" in out and token.strip() not in out
    assert run("serve", "token", "create", "--db", db, "ana")[0] == 2
    assert run("serve", "token", "revoke", "--db", db, "ana")[0] == 0
    assert run("serve", "token", "revoke", "--db", db, "ana")[0] == 1


def test_audit_show_marks_bidi_controls(tmp_path: Path) -> None:
    db, _ = _store(tmp_path)
    code, out = run("audit", "show", "--db", db, SQLiteStore(db).sessions()[0].session_id)
    assert code == 0 and "send_email" in out and "\u202e" not in out and "⟦U+202E RIGHT-TO-LEFT OVERRIDE⟧" in out
