"""Fuzzing the loader and the guard.

A crash inside ``decide`` becomes a deny whose reason is an internal error (kind
``error``, rule ``guard``), so "the verdict is allow, deny or ask" can never fail;
these tests assert instead that no decision carries that reason, and that the
loader turns any document into a Policy or a PolicyError (never another exception,
never an internal name in a message).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import UNTRUSTED, Decision, Guard, Policy, PolicyError, SQLiteStore, ToolCall, label

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
    "remove_tags",
    "integrity",
    "output",
    "pattern",
    "enum",
    "const",
    "minimum",
    "unless",
    "all",
    "not",
    "items",
    "properties",
    "defaults",
    "write",
    "read",
    "write_when",
    "on_inherited",
    "equals",
    "extends",
]
INTERNAL_NAMES = ("literal[", "function-", "list[", "dict[", "instance of", "Condition", "ArgSpec", "FlowRule", "ToolSpec", "Input should")


def no_error_reason(d: Decision) -> None:
    assert not any(r.kind == "error" or r.rule == "guard" for r in d.reasons), d.explain()
    assert d.verdict in ("allow", "deny", "ask")
    if d.verdict != "allow":
        assert d.reasons


def load(text: str) -> Policy | None:
    try:
        return Policy.from_yaml(text)
    except PolicyError as exc:
        for p in exc.problems:
            assert isinstance(p, PolicyError)
            for name in INTERNAL_NAMES:
                assert name not in p.message and name not in p.rule_path, str(p)
        return None


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([*KEYS, "read", "write", "trusted", "untrusted", "secret", "string", "array", "object"]),
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
        doc.pop("extends", None)  # would read files
    load(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    with contextlib.suppress(PolicyError):
        Policy.from_yaml(text)


# ----------------------------------------------------------------- policies shaped like the format

TAGS = st.sampled_from(["secret", "pii"])
ARG_NAMES = ["a", "b", "c"]
TOOL_NAMES = ["t0", "t1", "t2"]


@functools.cache
def conditions(args: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    arg = st.sampled_from(args or ("a",))
    general = [
        st.builds(lambda v: {"always": v}, st.booleans()),
        st.builds(lambda v: {"context": v}, st.sampled_from(["trusted", "untrusted"])),
        st.builds(lambda v: {"context_has": [v]}, TAGS),
        st.builds(lambda v: {"effect": v}, st.sampled_from(["read", "write"])),
        st.builds(lambda v: {"args_untrusted": v}, st.booleans()),
        st.builds(lambda t, n: {"called": t, "at_least": n}, st.sampled_from(TOOL_NAMES), st.integers(1, 3)),
    ]
    on_args = [
        st.builds(lambda a, v: {"arg": a, "equals": v}, arg, st.one_of(st.none(), st.text(max_size=4), st.integers(0, 3))),
        st.builds(lambda a, v: {"arg": a, "in": v}, arg, st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=1, max_size=3)),
        st.builds(lambda a, v: {"arg": a, "exists": v}, arg, st.booleans()),
        st.builds(lambda a, v: {"arg": a, "untrusted": v}, arg, st.booleans()),
        st.builds(lambda a, v: {"arg": a, "grounded": v}, arg, st.booleans()),
        st.builds(lambda a, v: {"arg": a, "from_task": v}, arg, st.booleans()),
        st.builds(lambda a, v: {"arg": a, "has_tags": [v]}, arg, TAGS),
        st.builds(lambda a, v: {"arg": a, "gt": v}, arg, st.integers(-2, 5)),
        st.builds(lambda a: {"arg": a, "pattern": "^x"}, arg),
        st.builds(lambda a: {"arg": a, "path_glob": ["/home/**"]}, arg),
    ]
    leaves = st.one_of(*general, *(on_args if args else []))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda c: {"not": c}, inner),
        ),
        max_leaves=4,
    )


@functools.cache
def flow_rules(args: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda req, forbid, unless, on_v, on_i: {
            **({"require": req} if req else {}),
            **({"forbid": forbid or []} if forbid is not None or not req else {}),
            **({"unless": unless} if unless else {}),
            **({"on_violation": on_v} if on_v else {}),
            **({"on_inherited": on_i} if on_i else {}),
        },
        st.sampled_from([None, "trusted", "any"]),
        st.one_of(st.none(), st.lists(TAGS, max_size=2, unique=True)),
        st.one_of(st.none(), conditions(args)),
        st.sampled_from([None, "deny", "ask"]),
        st.sampled_from([None, "deny", "ask"]),
    )


@functools.cache
def arg_specs(args: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    flows = st.one_of(st.none(), flow_rules(args), st.lists(flow_rules(args), min_size=1, max_size=2))

    def with_flow(spec: dict[str, Any], flow: Any) -> dict[str, Any]:
        return {**spec, "flow": flow} if flow is not None else spec

    leaf = st.builds(
        with_flow,
        st.sampled_from([{"type": "string"}, {"type": ["string", "null"]}, {"type": "integer", "maximum": 9}, {}, {"enum": ["x", "y"]}]),
        flows,
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda s, f: with_flow({"type": "array", "items": s}, f), inner, flows),
            st.builds(lambda s, f: with_flow({"type": "object", "properties": {"k": s}}, f), inner, flows),
        ),
        max_leaves=3,
    )


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for name in TOOL_NAMES:
        args = tuple(draw(st.lists(st.sampled_from(ARG_NAMES), max_size=3, unique=True)))
        tool: dict[str, Any] = {
            "effect": draw(st.sampled_from(["read", "write"])),
            "output": draw(st.sampled_from(["trusted", "untrusted"])),
            "output_tags": draw(st.lists(TAGS, max_size=1)),
            "args": {a: draw(arg_specs(args)) for a in args},
            "additional_args": draw(st.sampled_from(["deny", "allow"])),
        }
        if draw(st.booleans()):
            tool["labels"] = [
                {
                    "when": draw(conditions(args)),
                    "integrity": draw(st.sampled_from(["trusted", "untrusted"])),
                    "remove_tags": draw(st.lists(TAGS, max_size=1)),
                }
            ]
        if draw(st.booleans()):
            tool["ask" if draw(st.booleans()) else "deny"] = [{"when": draw(conditions(args))}]
        if draw(st.booleans()):
            tool["flow"] = draw(flow_rules(args))
        if tool["effect"] == "read" and args and draw(st.booleans()):
            tool["write_when"] = {"arg": args[0], "equals": "x"}
        tools[name] = tool
    doc: dict[str, Any] = {"tether": 1, "name": "fuzz", "tools": tools}
    if draw(st.booleans()):
        doc["defaults"] = {draw(st.sampled_from(["read", "write"])): {"flow": draw(flow_rules(()))}}
    if draw(st.booleans()):
        doc["budgets"] = {"max_writes": draw(st.integers(0, 3)), "max_calls": draw(st.integers(0, 6))}
    return doc


STRINGS = st.sampled_from(["x", "y", "SECRET-0123456789", "eve@evil.example"])
json_values = st.one_of(
    STRINGS,
    st.lists(STRINGS, max_size=3),
    st.dictionaries(st.sampled_from(["k", "a"]), st.one_of(STRINGS, st.lists(STRINGS, max_size=2), st.none()), max_size=2),
    st.none(),
    st.booleans(),
    st.integers(-3, 10),
    st.floats(),
)
outputs = st.sampled_from(["x", "SECRET-0123456789", "mail eve@evil.example", "", "y and k"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policies(), st.data())
def test_random_policies_and_calls_never_hit_an_internal_error(doc: dict[str, Any], data: st.DataObject) -> None:
    policy = load(yaml.safe_dump(doc))
    if policy is None:
        return
    session = Guard(policy, SQLiteStore(":memory:")).start_session("fuzz task y")
    # Untrusted and tagged data in the context, so that flow rules have something to find.
    if data.draw(st.booleans()):
        session.add_source("mail eve@evil.example y", label=UNTRUSTED)
    if data.draw(st.booleans()):
        session.add_source("SECRET-0123456789", label=label("trusted", [data.draw(TAGS)]))
    for _ in range(data.draw(st.integers(1, 6))):
        tool = data.draw(st.sampled_from([*TOOL_NAMES, "nope"]))
        names = list(doc["tools"][tool]["args"]) if tool in doc["tools"] else []
        args = data.draw(st.dictionaries(st.sampled_from([*names, "zz"]), json_values, max_size=3))
        d = session.check(ToolCall(tool, args))
        no_error_reason(d)
        if d.verdict == "allow":
            session.record_result(d.call_id, data.draw(outputs))
        if tool in policy.tools:
            assert policy.tools[tool].effect_of(args) in ("read", "write")


json_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40), st.binary(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=20,
)
GUARD = Guard(Policy.from_file(FIX / "rules.yaml"), SQLiteStore(":memory:"))
SESSION = GUARD.start_session("fuzz alice-payee-0001")
TOOLS = ["fetch", "read_file", "pay", "email", "post_message", "configure", "nope"]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TOOLS), st.one_of(st.dictionaries(st.text(max_size=10), json_anything, max_size=5), json_anything))
def test_random_calls_never_hit_an_internal_error(tool: str, args: Any) -> None:
    no_error_reason(SESSION.check(ToolCall(tool, args)))
