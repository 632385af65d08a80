"""The ``intent`` and ``plans`` settings: compiling them, and ``extends`` refusing to loosen them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Policy, PolicyError

BASE = """
tether: 1
name: base
intent: [send_*]
plans: {outside: deny}
tools:
  send_mail: {effect: write}
  delete_file: {effect: write, intent: required}
  read_mail: {effect: read}
"""


def test_intent_compiles_from_globs_and_tools() -> None:
    p = Policy.from_yaml(BASE)
    assert {n for n, t in p.tools.items() if t.intent_required} == {"send_mail", "delete_file"}
    assert p.spec.plans.outside == "deny"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tether: 1\nname: x\nintent: [nothing_*]\ntools:\n  t: {effect: write}\n", "matches no tool"),
        ("tether: 1\nname: x\ntools:\n  tether.plan: {effect: write}\n", "reserved"),
        ("tether: 1\nname: x\nplans: {outside: maybe}\ntools:\n  t: {effect: write}\n", "outside"),
        ("tether: 1\nname: x\ntools:\n  t: {effect: write, intent: sometimes}\n", "intent"),
    ],
)
def test_bad_settings_are_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_yaml(text)


def test_intent_on_a_read_tool_warns() -> None:
    p = Policy.from_yaml("tether: 1\nname: x\ntools:\n  r: {effect: read, intent: required}\n")
    assert any("no effect on a read tool" in w.message for w in p.warnings)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("plans: {outside: ask}\n", "denies writes outside"),
        ("tools:\n  delete_file: {intent: any}\n", "requires the task's intent"),
    ],
)
def test_extending_cannot_loosen_intent_or_plans(tmp_path: Path, extra: str, message: str) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    with pytest.raises(PolicyError, match=message):
        Policy.from_yaml(f"tether: 1\nname: child\nextends: [base.yaml]\n{extra}", base_dir=tmp_path)


def test_extending_may_add_intent(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    child = Policy.from_yaml(
        "tether: 1\nname: child\nextends: [base.yaml]\nintent: [read_*]\ntools:\n  send_mail: {intent: any}\n", base_dir=tmp_path
    )
    # a tool's 'any' does not undo a base's glob; the new glob adds the read tool (which has no writes)
    assert {n for n, t in child.tools.items() if t.intent_required} == {"send_mail", "delete_file", "read_mail"}
