"""Fuzzing the parser and the guard: bad input gives a PolicyError or a decision, never a crash."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import Guard, Policy, PolicyError, SQLiteStore, ToolCall

FIX = Path(__file__).parents[1] / "fixtures"
KEYS = [
    "tether",
    "name",
    "tools",
    "effect",
    "args",
    "type",
    "flow",
    "require",
    "forbid",
    "when",
    "arg",
    "ask",
    "deny",
    "budgets",
    "rates",
    "max",
    "window_s",
    "labels",
    "tags",
    "output",
    "pattern",
    "enum",
    "minimum",
    "unless",
    "all",
    "not",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([*KEYS, "read", "write", "trusted", "untrusted"]),
)
documents = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=30
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_random_documents(doc: Any) -> None:
    if isinstance(doc, dict):
        doc.setdefault("tether", 1)
        doc.setdefault("name", "fuzz")
    with contextlib.suppress(PolicyError):
        Policy.from_yaml(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    with contextlib.suppress(PolicyError):
        Policy.from_yaml(text)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40), st.binary(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=20,
)
GUARD = Guard(Policy.from_file(FIX / "rules.yaml"), SQLiteStore(":memory:"))
SESSION = GUARD.start_session("fuzz alice-payee-0001")
TOOLS = ["fetch", "read_file", "pay", "email", "post_message", "configure", "nope"]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TOOLS), st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=5), json_values))
def test_random_calls_always_get_a_decision(tool: str, args: Any) -> None:
    d = SESSION.check(ToolCall(tool, args))
    assert d.verdict in ("allow", "deny", "ask")
    if d.verdict != "allow":
        assert d.reasons
