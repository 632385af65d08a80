"""One convention for every command (issue 16, section 4, and docs/cli.md): ``--json`` prints
one JSON object per line, exit codes 0/1/2 mean the same everywhere, errors start with
``error:``, piped output is never wrapped, long work reports progress without a terminal, and
read-only commands work on a read-only store. CliRunner for the commands, real subprocesses
for what depends on a pipe."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from rich.console import Console

from tether.cli import main
from tether.cli._common import ProgressLines

if TYPE_CHECKING:
    from tests.cli.conftest import LiveStore


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_audit_verify_and_sessions_print_json_lines(live: LiveStore) -> None:
    code, out, _ = run("audit", "verify", "--db", live.db, "--json")
    (doc,) = lines(out)
    assert code == 0 and doc["ok"] is True and doc["sessions"] == 1 and doc["events"] >= 4
    code, out, _ = run("audit", "sessions", "--db", live.db, "--json")
    (row,) = lines(out)
    assert code == 0 and row["session_id"] == live.session.id and isinstance(row["head"], str)


def test_audit_verify_json_reports_tampering_with_exit_1(live: LiveStore) -> None:
    db = sqlite3.connect(live.db)
    db.execute("UPDATE chain SET body = CAST(replace(CAST(body AS TEXT), 'inbox', 'INBOX') AS BLOB) WHERE seq = 2")
    db.commit()
    db.close()
    code, out, _ = run("audit", "verify", "--db", live.db, "--json")
    (doc,) = lines(out)
    assert code == 1 and doc["ok"] is False and doc["problem"]["session_id"] == live.session.id


def test_approve_json_then_approving_again_says_what_is(live: LiveStore) -> None:
    code, out, _ = run("approvals", "approve", live.pending_call, "--db", live.db, "--by", "ana", "--json")
    (doc,) = lines(out)
    assert code == 0 and doc["changed"] is True and doc["state"] == "approved" and doc["allowed"] is True
    events = live.session.store.head(live.session.id)
    code, out, _ = run("approvals", "approve", live.pending_call, "--db", live.db, "--by", "ana")
    assert code == 0 and "already approved by ana" in out and "nothing was logged" in out
    assert live.session.store.head(live.session.id) == events  # nothing appended
    code, out, _ = run("approvals", "deny", live.pending_call[:10], "--db", live.db, "--json")
    (doc,) = lines(out)
    assert code == 1 and doc == {"call_id": live.pending_call, "changed": False, "state": "approved", "by": "ana"}


def test_session_control_json(live: LiveStore) -> None:
    sid = live.session.id
    code, out, _ = run("session", "pause", sid, "--db", live.db, "--json")
    (doc,) = lines(out)
    assert code == 0 and doc["changed"] is True and doc["status"] == "paused" and doc["approvals_denied"] == 1
    code, out, _ = run("session", "pause", sid, "--db", live.db, "--json")
    assert code == 0 and lines(out)[0]["changed"] is False
    run("session", "kill", sid, "--db", live.db)
    code, out, _ = run("session", "resume", sid, "--db", live.db, "--json")
    (doc,) = lines(out)
    assert code == 1 and doc["changed"] is False and doc["status"] == "killed" and "refused" in doc


def test_replay_json_is_one_line(live: LiveStore) -> None:
    code, out, _ = run("policy", "replay", "--db", live.db, "--json")
    assert code == 0 and len(out.strip().splitlines()) == 1 and lines(out)[0]["calls"] >= 1


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "agentdojo", "--suite", "nope", "--no-progress"],
        ["audit", "verify", "--db", "/nonexistent/x.db"],
        ["mcp", "pins", "show", "zz", "--db", "/nonexistent/x.db"],
        ["policy", "eval", "tether:nope", "--tool", "t"],
        ["policy", "show", "nope"],
        ["policy", "init"],
        ["session", "pause", "nope", "--db", "/nonexistent/x.db"],
    ],
)
def test_usage_errors_exit_2_with_one_error_line(args: list[str]) -> None:
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert err.startswith(("error:", "Usage:")), err  # click's own usage errors print the usage first
    assert "Traceback" not in err and "tether-mcp:" not in err


def test_a_foreign_database_is_refused_by_every_command(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    before = other.read_bytes()
    for args in (["audit", "verify"], ["session", "list"], ["demo"]):
        code, _, err = run(*args, "--db", str(other))
        assert code == 2 and "error:" in err and "not a Tether event store" in err, (args, err)
    assert other.read_bytes() == before


def test_read_only_commands_work_on_a_read_only_copy(live: LiveStore, tmp_path: Path) -> None:
    """chmod (effective without root; as root, the mount test in tests/store covers it), and
    the file is never changed: not even the -wal/-shm files appear beside it."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    copy = folder / "copy.db"
    live.session.store.close()
    shutil.copy(live.db, copy)
    copy.chmod(0o444)
    folder.chmod(0o555)
    try:
        before = copy.read_bytes()
        for args in (["audit", "verify"], ["audit", "head"], ["audit", "sessions"], ["session", "list"], ["approvals", "list"]):
            code, _, err = run(*args, "--db", str(copy))
            assert code == 0, (args, err)
        assert copy.read_bytes() == before
    finally:
        folder.chmod(0o755)


def test_piped_output_is_not_wrapped(tmp_path: Path) -> None:
    name = "a-policy-whose-name-is-long-" + "n" * 90
    path = tmp_path / "p.yaml"
    path.write_text(f"tether: 1\nname: {name}\ntools:\n  t: {{effect: read}}\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [sys.executable, "-m", "tether", "policy", "check", str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1 and name in proc.stdout


def test_progress_lines_when_not_on_a_terminal() -> None:
    out = Console(file=__import__("io").StringIO(), width=10_000)
    progress = ProgressLines("AgentDojo v1.2 (local)", 4, out, every_s=0.0)
    for _ in range(4):
        progress.advance()
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert text.splitlines()[-1].startswith("AgentDojo v1.2 (local): 4/4 (100%)") and len(text.splitlines()) == 4


NO_JSON = {
    "demo": "a walk-through for a person",
    "bench agentdojo": "--json FILE writes the whole report to a file",
    "mcp run": "a proxy: its stdout is the MCP protocol",
    "mcp policy-init": "writes a YAML policy",
    "mcp pins review": "interactive review of definitions",
    "mcp auth": "an interactive authorization: prints a URL for a person and waits for the browser's redirect (tether mcp status --json shows the result)",
    "mcp pins approve": "answers definitions (pins list --json shows the result)",
    "mcp pins deny": "answers a definition (pins list --json shows the result)",
    "policy init": "writes a YAML policy",
    "policy show": "prints a YAML policy",
    "serve": "a server",
    "serve token create": "prints a secret once",
    "serve token revoke": "one line of confirmation; token list --json shows the result",
    "mcp token new": "prints a secret once",
    "mcp token revoke": "one line of confirmation; mcp token list --json shows the result",
    "mcp install": "rewrites a client's config file; --dry-run shows the diff",
    "mcp uninstall": "puts a client's config file back; --dry-run shows the diff",
    "audit archive": "moves sessions and prints what moved; audit verify --json shows the result",
}
"""Commands without ``--json``, each with why (docs/cli.md: every listing and action has it)."""


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    import click

    assert isinstance(group, click.Group)
    out: list[tuple[str, object]] = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full + " ")
        else:
            out.append((full, cmd))
    return out


def test_every_listing_and_action_command_has_json() -> None:
    import click

    missing = []
    for name, cmd in _commands(main):
        assert isinstance(cmd, click.Command)
        has = any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option))
        if not has and name not in NO_JSON:
            missing.append(name)
    assert not missing, f"commands without --json (add it, or say why in NO_JSON): {missing}"


def test_the_bench_table_is_sized_to_its_content_when_piped() -> None:
    """The issue's finding: piped, the table cut its headers and spread cells over three lines."""
    code = (
        "from rich.table import Table\n"
        "from tether.cli._bench import _print_table\n"
        "from tether.cli._common import make_console\n"
        "m = {k: {'autonomous': 0.5, 'careful_human': 1.0, 'rubber_stamp': 1.0} for k in "
        "('benign_utility', 'utility_under_attack', 'asr', 'asr_tool_reachable')}\n"
        "report = {s: {**m, 'asks_per_task': {'autonomous': 0.65, 'careful_human': 0.65, 'rubber_stamp': 0.65}, 'pairs': 949} for s in ('banking', 'overall')}\n"
        "report['episodes'] = 2\n"
        "report['timing'] = {'wall_s': 1.0, 'startup_s': 0.1, 'episodes_s': 0.9, 'workers': None, 'guard_s': 0.1, 'guard_share': 0.1}\n"
        "_print_table(make_console(stderr=True), report, Table)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stderr.splitlines() if "banking" in line or "overall" in line or "benign utility" in line]
    assert len(rows) == 3, proc.stderr  # one line each: the header and two rows, nothing cut or spread
    assert "utility under attack" in proc.stderr and "50.0 / 100.0 / 100.0" in rows[1]
