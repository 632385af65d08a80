"""Policy files: valid ones load, invalid ones fail with file, rule path and line."""

from pathlib import Path

import pytest

from tether import Policy, PolicyError

FIXTURES = Path(__file__).parents[1] / "fixtures"

MINIMAL = """\
tether: 1
name: t
tools:
  read:
    effect: read
"""


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text, source="p.yaml")
    return info.value


def test_fixture_loads() -> None:
    p = Policy.from_file(FIXTURES / "bank.yaml")
    assert p.name == "bank-assistant" and set(p.tools) == {"read_inbox", "read_file", "send_money", "send_email"}
    assert p.hash.startswith("sha256:")


def test_hash_ignores_comments_layout_and_order() -> None:
    a = Policy.from_yaml(MINIMAL)
    b = Policy.from_yaml("# comment\nname: t\ntools: {read: {effect: read}}\ntether: 1\n")
    assert a.hash == b.hash
    c = Policy.from_yaml(MINIMAL.replace("read\n", "write\n", 1).replace("effect: read", "effect: write"))
    assert c.hash != a.hash


@pytest.mark.parametrize(
    ("text", "message", "rule_path", "line"),
    [
        ("tether: 1\nname: t\ntools:\n  read:\n    effect: read\n    colour: red\n", "unknown key 'colour'", "tools.read.colour", 6),
        ("tether: 1\nname: t\ntools:\n  read:\n    effct: read\n", "unknown key 'effct'", "tools.read.effct", 5),
        ("tether: 1\nname: t\ntools:\n  read: {}\n", "missing required key 'effect'", "tools.read.effect", 4),
        ("tether: 2\nname: t\n", "should be 1", "tether", 1),
        ("name: t\n", "missing required key 'tether'", "tether", None),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    args:\n      amount: {type: number, minimum: 10, maximum: 1}\n",
            "contradictory bounds",
            "tools.pay.args.amount",
            7,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    args:\n      to: {type: string, pattern: '(unclosed'}\n",
            "invalid regular expression",
            "tools.pay.args.to.pattern",
            7,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    args:\n      to: {enum: []}\n",
            "'enum' is empty",
            "tools.pay.args.to",
            7,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    args:\n      to: {enum: [abc], pattern: '^x'}\n",
            "can never match",
            "tools.pay.args.to",
            7,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    spend: amount\n",
            "'spend' names argument 'amount'",
            "tools.pay.spend",
            None,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    ask:\n      - when: {arg: nope, equals: 1}\n",
            "refers to argument 'nope'",
            "tools.pay.ask[0].when",
            None,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    ask:\n      - when: {context: untrusted, effect: write}\n",
            "exactly one of",
            "tools.pay.ask[0].when",
            7,
        ),
        (
            "tether: 1\nname: t\ntools:\n  pay:\n    effect: write\n    args:\n      x: {flow: {}}\n",
            "needs 'require' or 'forbid'",
            "tools.pay.args.x.flow",
            7,
        ),
        ("tether: 1\nname: t\nbudgets: {max_calls: -1}\n", "greater than or equal to 0", "budgets.max_calls", 3),
        ("tether: 1\nname: t\ntools:\n  read:\n    effect: read\n  read:\n    effect: write\n", "duplicate key 'read'", "tools.read", 6),
        ("tether: 1\nname: t\ntools: [1, 2\n", "invalid YAML", "", 4),
        ("- just\n- a list\n", "mapping at the top level", "", 1),
        ("", "empty", "", None),
        ("tether: 1\nname: t\ntools:\n  'bad name!':\n    effect: read\n", "invalid tool name", "tools.bad name!", 4),
        ("tether: 1\nname: t\nbudgets: {max_spend: .nan}\n", "", "budgets.max_spend", 3),
    ],
)
def test_invalid_policies(text: str, message: str, rule_path: str, line: int | None) -> None:
    err = error_of(text)
    assert message in err.message
    assert err.rule_path == rule_path
    if line is not None:
        assert err.line == line
    assert str(err).startswith("p.yaml")


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"tether: 1\nname: \xff\xfe\n")
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        Policy.from_file(bad)


def test_yaml_bombs_are_refused() -> None:
    nested = "tether: 1\nname: t\ndescription: " + "[" * 200 + "]" * 200 + "\n"
    with pytest.raises(PolicyError):
        Policy.from_yaml(nested)
    with pytest.raises(PolicyError, match="merge keys"):
        Policy.from_yaml("base: &b {effect: read}\ntether: 1\nname: t\ntools:\n  x:\n    <<: *b\n")
