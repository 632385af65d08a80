"""``tether policy check`` tells the whole truth in one run (issue 16, section 2): every error and
every warning of every kind (schema, semantic, warnings), no false "does not declare" after an
argument's own error, and "did you mean" hints for misspelt keys, tool and argument names."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tether.cli import main

MIXED = """\
tether: 1
name: mixed
tools:
  pay:
    effect: write
    args:
      amount: {type: number, minimum: 10, maximum: 5}
    ask:
      - name: big
        when: {arg: amount, gt: 100}
  other:
    effect: read
    args:
      s: {type: string, patern: "^a"}
    deny:
      - name: x
        when: {arg: amuont, equals: 1}
ask:
  - name: after
    when: {called: pya}
rates:
  - tools: [pya]
    max: 1
    window_s: 10
defualt: deny
"""


def check(tmp_path: Path, text: str, *flags: str) -> tuple[int, str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["policy", "check", *flags, str(path)], catch_exceptions=False)
    return result.exit_code, result.output


def test_every_problem_of_every_kind_in_one_run(tmp_path: Path) -> None:
    code, out = check(tmp_path, MIXED)
    assert code == 2
    lines = out.splitlines()
    assert any("tools.pay.args.amount: contradictory bounds" in x for x in lines)  # a schema error
    assert any("unknown key 'patern'; did you mean 'pattern'?" in x for x in lines)  # another schema error
    assert any("unknown key 'defualt'; did you mean 'default'?" in x for x in lines)
    # semantic errors of the same file, in the same run
    assert any("argument 'amuont', which the tool does not declare" in x for x in lines)
    assert any("tool glob 'pya' matches no tool" in x and "did you mean 'pay'?" in x for x in lines)
    # and the warnings
    assert any(x.startswith("warning") and "'pya' is not a tool of this policy" in x and "did you mean 'pay'?" in x for x in lines)


def test_no_false_does_not_declare_after_a_bounds_error(tmp_path: Path) -> None:
    code, out = check(tmp_path, MIXED)
    assert "argument 'amount', which the tool does not declare" not in out
    assert code == 2


def test_json_carries_errors_and_warnings_together(tmp_path: Path) -> None:
    code, out = check(tmp_path, MIXED, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["valid"] is False
    assert len(doc["errors"]) >= 5 and any("never runs" in w["message"] for w in doc["warnings"])


def test_a_misspelt_argument_in_a_rule_gets_a_hint(tmp_path: Path) -> None:
    _, out = check(tmp_path, MIXED)
    assert "did you mean 'amount'?" not in out  # 'amuont' is on tool 'other', which has only 's'
    text = MIXED.replace("when: {arg: amount, gt: 100}", "when: {arg: amonut, gt: 100}")
    _code, out = check(tmp_path, text)
    assert "argument 'amonut', which the tool does not declare; did you mean 'amount'?" in " ".join(out.split())


def test_a_long_ok_line_is_not_wrapped_when_piped(tmp_path: Path) -> None:
    name = "a-policy-with-a-rather-long-name-" + "x" * 60
    code, out = check(tmp_path, f"tether: 1\nname: {name}\ntools:\n  t: {{effect: read}}\n")
    assert code == 0 and len(out.splitlines()) == 1 and name in out
