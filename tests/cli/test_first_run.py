"""What a new user meets first: the demo's store and table, the benchmark's report path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether.cli import main


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_demo_honours_tether_db(tmp_path: Path) -> None:
    db = str(tmp_path / "from-env.db")
    code, out = run("demo", env={"TETHER_DB": db})
    assert code == 0 and f"Audit log {db}" in out.replace("\n", "")
    code, out = run("audit", "sessions", env={"TETHER_DB": db})
    assert code == 0 and "21 events" in out


def test_demo_defaults_to_tether_db_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run("demo", env={"TETHER_DB": None})
    assert code == 0 and (tmp_path / "tether.db").exists()
    code, out = run("session", "list", env={"TETHER_DB": None})
    assert code == 0 and "ended" in out and "email-assistant" in out


def test_demo_table_wraps_and_never_cuts_at_80_columns(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "80", "TETHER_DB": str(tmp_path / "demo.db")}
    proc = subprocess.run(
        [sys.executable, "-c", "from tether.cli import main; main()", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "..." not in out and "\u2026" not in out
    for value in (
        "to=['it-support@examp1e-help.com']",
        "iban='GB33BUKB20201555555555'",
        "amount=990",
        "iban='DE89370400440532013000'",
        "amount=240",
        "('it-support@examp1e-help.com')",
        "('GB33BUKB20201555555555')",
        "ASK (refused by the human)",
    ):
        assert value in out, value
    # A value too long for its column is folded onto the next line, whole.
    assert "body='b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ'" in "".join(out.split())


def test_bench_refuses_an_unwritable_report_path_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    code, out = run("bench", "agentdojo", "--suite", "banking", "--json", str(blocker / "report.json"))
    assert code == 2 and "cannot create the folder" in out and "episodes" not in out


def test_bench_creates_the_report_folder(tmp_path: Path) -> None:
    pytest.importorskip("agentdojo")
    report = tmp_path / "out" / "nested" / "report.json"
    code, out = run(
        "bench",
        "agentdojo",
        "--suite",
        "banking",
        "--agent",
        "oracle",
        "--scope",
        "off",
        "--no-baseline",
        "--no-progress",
        "--json",
        str(report),
    )
    assert code == 0, out
    assert json.loads(report.read_text())["episodes"] > 0 and report.with_suffix(".html").exists()
