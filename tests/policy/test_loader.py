"""Policy files: valid ones load, invalid ones fail with file, rule path and line."""

import dataclasses
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


def test_every_problem_is_reported_with_its_line() -> None:
    text = """\
tether: 1
name: many
rates:
  - {tools: ["post_*"], max: 3, window_s: 60}
tools:
  a:
    effect: read
    args:
      n: {type: integer, enum: ["x", 1]}
      k: {type: strin}
      c: {const: 5, enum: [5, 6]}
    ask:
      - when: {arg: zz, equals: 1}
  b:
    effect: read
    deny:
      - when: {all: [{bogus: 1}]}
"""
    err = error_of(text)
    found = [(p.line, p.rule_path) for p in err.problems]
    assert found == [
        (4, "rates[0].tools[0]"),
        (9, "tools.a.args.n.enum[0]"),
        (10, "tools.a.args.k.type"),
        (11, "tools.a.args.c.enum[1]"),
        (13, "tools.a.ask[0].when"),
        (17, "tools.b.deny[0].when.all[0].bogus"),
    ]
    assert all(p.source == "p.yaml" for p in err.problems)
    assert str(err).count("\n") == len(found) - 1  # one line per problem


INTERNAL_NAMES = (
    "literal[",
    "function-",
    "list[",
    "dict[",
    "instance of",
    "Condition",
    "ArgSpec",
    "FlowRule",
    "ToolSpec",
    "union[",
    "Input should",
)


@pytest.mark.parametrize(
    "text",
    [
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args: {x: {type: strin}}\n",
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args: {x: {flow: [{require: always}]}}\n",
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    deny: [{when: 'yes'}]\n",
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    deny: [{when: {arg: x, equals: [1]}}]\n",
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args: {x: {flow: {forbid: [BAD]}}}\n",
        "tether: 1\nname: t\ntools:\n  a:\n    effect: sideways\n",
        "tether: 1\nname: t\ndefaults: {write: {flow: 3}}\n",
    ],
)
def test_no_internal_names_leak(text: str) -> None:
    err = error_of(text)
    for p in err.problems:
        for name in INTERNAL_NAMES:
            assert name not in p.message and name not in p.rule_path, str(p)
        assert p.line is not None, str(p)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("{type: integer, enum: [a, 1]}", "enum value 'a' can never pass"),
        ("{type: string, const: 3}", "const 3 can never pass"),
        ("{const: x, enum: [x, y]}", "enum value 'y' can never pass"),
        ("{type: string, maxLength: 2, enum: [abc]}", "enum value 'abc' can never pass"),
        ("{type: integer, pattern: '^a'}", "'pattern' never applies to a value of type integer"),
        ("{type: string, minItems: 1}", "'minItems' never applies"),
        ("{type: number, additionalProperties: false}", "'additionalProperties' never applies"),
        ("{type: array, items: {type: string, required: true}}", "'required' has no meaning inside 'items'"),
        ("{type: string, minimum: 1}", "'minimum' never applies"),
    ],
)
def test_contradictions_are_refused(args: str, message: str) -> None:
    err = error_of(f"tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args:\n      x: {args}\n")
    assert message in str(err)
    assert err.line == 7


def test_warnings_for_conditions_that_never_hold() -> None:
    policy = Policy.from_yaml(
        """\
tether: 1
name: t
tools:
  a:
    effect: read
    args: {n: {type: integer, maximum: 10}, s: {type: string, enum: [x, y]}}
    ask:
      - when: {arg: n, gt: 5, lt: 3}
      - when: {called: nothing}
      - when: {effect: write}
      - when: {arg: n, equals: 11}
      - when: {arg: s, in: [z]}
      - when: {arg: s, exists: false, pattern: x}
""",
        source="w.yaml",
    )
    assert [(w.line, w.rule_path) for w in policy.warnings] == [(8, f"tools.a.ask[{i}].when") for i in range(6)][:1] + [
        (9 + i, f"tools.a.ask[{i + 1}].when") for i in range(5)
    ]
    assert all("can never hold" in w.message and w.source == "w.yaml" for w in policy.warnings)


def test_problems_of_tools_come_before_those_of_policy_wide_rules() -> None:
    # Policy-wide rules are compiled before the tools (each tool's deny_all/ask_all ends with
    # them) but reported after them, as they always were, whatever the order in the file.
    policy = Policy.from_yaml(
        """\
tether: 1
name: w
deny: [{when: {called: ghost1}}]
ask: [{when: {called: ghost2}}]
tools:
  a:
    effect: read
    ask: [{when: {called: ghost3}}]
""",
        source="w.yaml",
    )
    assert [w.rule_path for w in policy.warnings] == ["tools.a.ask[0].when", "deny[0].when", "ask[0].when"]


def test_compiled_tools_are_finished_and_frozen() -> None:
    policy = Policy.from_yaml(
        "tether: 1\nname: t\ndeny: [{when: {args_untrusted: true}}]\ntools:\n  a:\n    effect: read\n    deny: [{when: {always: true}}]\n"
    )
    tool = policy.tools["a"]
    assert [r.rule for r in tool.deny_all] == ["tools.a.deny[0]", "deny[0]"] and tool.deny_all[1] is policy.deny_rules[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tool.deny_all = ()  # type: ignore[misc]


def test_rate_glob_that_matches_a_tool_is_fine_and_yaml_dates_are_refused() -> None:
    Policy.from_yaml("tether: 1\nname: t\nrates: [{tools: ['read*'], max: 1, window_s: 1}]\ntools: {read: {effect: read}}\n")
    err = error_of("tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args: {d: {const: 2024-01-01}}\n")
    assert "quote it" in err.message and err.line == 6


def test_additional_properties_false_alone_allows_no_key() -> None:
    from tether import Guard, SQLiteStore, ToolCall

    policy = Policy.from_yaml(
        "tether: 1\nname: t\ntools:\n  a:\n    effect: read\n    args: {o: {type: object, additionalProperties: false}}\n"
    )
    session = Guard(policy, SQLiteStore(":memory:")).start_session("t")
    assert session.check(ToolCall("a", {"o": {}})).verdict == "allow"
    assert session.check(ToolCall("a", {"o": {"k": 1}})).verdict == "deny"


def test_hash_tells_an_explicit_empty_forbid_from_none() -> None:
    base = "tether: 1\nname: t\ndefaults: {write: {flow: {forbid: [secret]}}}\ntools:\n  w:\n    effect: write\n    args:\n      x: {type: string, flow: {require: trusted%s}}\n"
    assert Policy.from_yaml(base % "").hash != Policy.from_yaml(base % ", forbid: []").hash
    assert Policy.from_yaml(base % "").hash == Policy.from_yaml(base % "").hash
