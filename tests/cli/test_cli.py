"""The command line: exit codes and output of every command."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from tether.cli import main

FIX = Path(__file__).parents[1] / "fixtures"
ROOT = Path(__file__).parents[2]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_policy_check(tmp_path: Path) -> None:
    code, out = run("policy", "check", str(FIX / "bank.yaml"), str(FIX / "rules.yaml"))
    assert code == 0 and "bank-assistant" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("tether: 1\nname: x\ntools:\n  a:\n    effect: read\n    nope: 1\n")
    code, out = run("policy", "check", str(bad))
    assert code == 2 and "bad.yaml:6" in out and "tools.a.nope" in out and "unknown key" in out
    code, out = run("policy", "check", "--json", str(bad))
    assert code == 2 and json.loads(out)["line"] == 6


def test_shipped_policies_are_valid() -> None:
    files = [str(p) for p in (ROOT / "src" / "tether" / "examples").glob("*.yaml")]
    files += [str(p) for p in (ROOT / "src" / "tether" / "adapters" / "agentdojo" / "policies").glob("*.yaml")]
    assert len(files) >= 5
    code, out = run("policy", "check", *files)
    assert code == 0, out


def test_demo_audit_and_replay(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    code, out = run("demo", "--db", db)
    assert code == 0, out
    assert "Injected actions executed: 0 of 3" in out and "Legitimate actions executed: 3 of 3" in out
    code, out = run("audit", "verify", "--db", db)
    assert code == 0 and "verified" in out
    sid = sqlite3.connect(db).execute("SELECT session_id FROM heads").fetchone()[0]
    code, out = run("audit", "show", "--db", db, sid[:8])
    assert code == 0 and "DENY" in out and "REFUSED" in out
    code, out = run("audit", "show", "--db", db, "--json", sid)
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["kind"] == "session_started" and all("hash" in x for x in lines)
    code, out = run("policy", "replay", "--db", db, "--policy", str(ROOT / "src/tether/examples/email_assistant.yaml"))
    assert code == 0 and "0 decision(s) would change" in out

    con = sqlite3.connect(db)
    con.execute("UPDATE events SET body = replace(body, X'3939', X'3938') WHERE seq = 13")
    con.commit()
    code, out = run("audit", "verify", "--db", db)
    assert code == 1 and "event 13" in out


def test_missing_db(tmp_path: Path) -> None:
    code, out = run("audit", "verify", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no event store" in out


def test_console_script() -> None:
    exe = Path(sys.executable).parent / "tether"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for group in ("policy", "audit", "demo"):
        assert group in out


def _readme_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Command line", 1)[1].split("\n\n", 2)[1]
    return [line.split("`")[1] for line in table.splitlines() if line.startswith("| `tether ")]


def test_readme_cli_table_names_real_commands_and_options() -> None:
    rows = _readme_rows()
    assert len(rows) >= 12
    seen: set[str] = set()
    for row in rows:
        words = row.replace("\\|", "|").split()[1:]
        path: list[str] = []
        group: click.Command = main
        while words and isinstance(group, click.Group) and not words[0].startswith(("-", "[", "<")) and not words[0].isupper():
            names = words.pop(0).split("|")
            assert isinstance(group, click.Group)
            commands = [group.commands.get(n) for n in names]
            assert all(commands), f"README row {row!r}: no command {names} under {path}"
            path.append(names[0])
            group = commands[0]  # type: ignore[assignment]
            for cmd in commands:
                seen.add(" ".join([*path[:-1], cmd.name or ""]))  # type: ignore[union-attr]
        options = {o for w in words for o in re.findall(r"--[a-z][a-z-]*", w)}
        if isinstance(group, click.Group) and "run" in group.commands:
            group = group.commands["run"]  # 'tether mcp --policy ...' is short for 'tether mcp run --policy ...'
        declared = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
        assert options <= declared, f"README row {row!r}: {sorted(options - declared)} not options of tether {' '.join(path)}"
    for name in ("audit head", "audit verify", "session pause", "session list", "policy replay", "demo"):
        assert name in seen, f"README's CLI table has no row for tether {name}"
