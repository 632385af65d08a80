"""``tether policy check``: every error and warning, with file, line and rule path, also in --json."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tether.cli import main

BAD = """\
tether: 1
name: bad
tools:
  a:
    effect: read
    args:
      n: {type: integer, enum: ["x", 1]}
      k: {type: strin}
    ask:
      - when: {arg: zz, equals: 1}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_all_errors_with_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    code, out = run("policy", "check", str(bad))
    assert code == 2
    flat = " ".join(out.split())
    for where in ("bad.yaml:7 at tools.a.args.n.enum[0]", "bad.yaml:8 at tools.a.args.k.type", "bad.yaml:10 at tools.a.ask[0].when"):
        assert where in flat, out
    assert "literal[" not in out
    code, out = run("policy", "check", "--json", str(bad))
    report = json.loads(out)
    assert code == 2 and report["valid"] is False and report["line"] == 7
    assert [(e["line"], e["rule_path"]) for e in report["errors"]] == [
        (7, "tools.a.args.n.enum[0]"),
        (8, "tools.a.args.k.type"),
        (10, "tools.a.ask[0].when"),
    ]
    assert all(e["file"] == str(bad) and e["message"] for e in report["errors"])


def test_warnings_and_strict(tmp_path: Path) -> None:
    warn = tmp_path / "warn.yaml"
    warn.write_text("tether: 1\nname: w\ntools:\n  a:\n    effect: read\n    ask:\n      - when: {called: nothing}\n")
    code, out = run("policy", "check", str(warn))
    assert code == 0 and "warning" in out and "warn.yaml:7" in out and "can never hold" in " ".join(out.split())
    code, out = run("policy", "check", "--json", str(warn))
    report = json.loads(out)
    assert code == 0 and report["valid"] and report["warnings"][0]["line"] == 7
    code, _ = run("policy", "check", "--strict", str(warn))
    assert code == 2


def test_errors_name_the_file_that_caused_them(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("tether: 1\nname: base\nbudgets: {max_calls: 5}\ntools:\n  a: {effect: write}\n")
    child = tmp_path / "child.yaml"
    child.write_text("tether: 1\nname: child\nextends: [base.yaml]\nbudgets: {max_calls: 9}\n")
    code, out = run("policy", "check", "--json", str(child))
    error = json.loads(out)["errors"][0]
    assert code == 2 and error["file"] == str(child) and error["line"] == 4 and error["rule_path"] == "budgets.max_calls"
    (tmp_path / "base.yaml").write_text("tether: 1\nname: base\ntools:\n  a: {effect: write, colour: red}\n")
    code, out = run("policy", "check", "--json", str(child))
    error = json.loads(out)["errors"][0]
    assert error["file"].endswith("base.yaml") and error["line"] == 4
    (tmp_path / "base.yaml").write_text("tether: 1\nname: base\ntools:\n  a: {effect: write}\n")
    code, out = run("policy", "check", str(child))
    assert code == 0 and "extends 1 file(s)" in out
