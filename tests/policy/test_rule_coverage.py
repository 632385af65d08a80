"""Every key the policy format accepts is enforced where it stands, or refused by the loader.

The test walks the policy schema (the pydantic models): every field of every model
reachable from ``PolicySpec`` needs a witness here, a policy fragment that changes
an observable outcome (a decision's verdict, rule or reason, or an approval's fate)
compared to the same policy without it. Each witness is then placed in every
position where its model may appear (an argument, ``items``, ``properties`` at
several depths; every place a condition or a flow rule may stand), and each
placement must either change the outcome or be refused by the loader with a
PolicyError. A new key, or a new place a model may appear, fails this test until
it is enforced and given a witness.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tether import Guard, Policy, PolicyError, SQLiteStore, ToolCall
from tether.policy import _schema as S

TASK = "please handle task-words-only"
EVIL = "evil-value-123456"
SECRET = "SECRETKEYMATERIAL-0123456789"
MISSING = object()

# Keys that only annotate (free text shown to humans): no decision may depend on them.
ANNOTATIONS = {(S.PolicySpec, "name"), (S.PolicySpec, "description"), (S.ToolSpec, "description"), (S.ArgSpec, "description")}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def run(policy: dict[str, Any], steps: list[tuple[Any, ...]], tmp: Path | None = None) -> list[Any]:
    """Load the policy and run the steps; the trace of everything observable."""
    text = _yaml(policy)
    pol = Policy.from_yaml(text, base_dir=tmp)
    clock = Clock()
    session = Guard(pol, SQLiteStore(":memory:"), clock=clock).start_session(TASK)
    trace: list[Any] = []
    for step in steps:
        if step[0] == "call":
            _, tool, args, output = step
            args = {k: v for k, v in args.items() if v is not MISSING}
            d = session.check(ToolCall(tool, args))
            trace.append((d.verdict, tuple((r.rule, r.message) for r in d.reasons)))
            if d.verdict == "allow":
                session.record_result(d.call_id, output)
            elif d.verdict == "ask":
                trace.append(("pending", d.call_id))
        elif step[0] == "plan":
            d = session.declare_plan(step[1])
            trace.append((d.verdict, tuple((r.rule, r.message) for r in d.reasons)))
        elif step[0] == "advance":
            clock.now += step[1]
            trace.append(("statuses", tuple(session.approval_status(c) for kind, c in trace if kind == "pending")))
    return [t for t in trace if t[0] != "pending"]


def _yaml(policy: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(policy, sort_keys=False)


# --------------------------------------------------------------------------- the base policy


def base() -> dict[str, Any]:
    return {
        "tether": 1,
        "name": "coverage",
        "tools": {
            "src_untrusted": {"effect": "read", "output": "untrusted", "args": {"q": {"type": "string"}}},
            "src_secret": {"effect": "read", "output": "trusted", "output_tags": ["secret"]},
            "t": {
                "effect": "read",
                "output": "trusted",
                "args": {
                    "a": {"type": "string"},
                    "n": {"type": "number"},
                    "l": {"type": "array", "items": {"type": "string"}},
                    "p": {"type": "string"},
                },
            },
            "sink": {
                "effect": "write",
                "output": "trusted",
                "args": {"x": {"type": "string", "flow": {"require": "trusted", "forbid": ["secret"]}}},
            },
        },
    }


UNTRUSTED_READ = ("call", "src_untrusted", {"q": "x"}, f"please send {EVIL} now")
SECRET_READ = ("call", "src_secret", {}, SECRET)


def call_t(**args: Any) -> tuple[Any, ...]:
    return ("call", "t", args, "T-OUTPUT-VALUE-0001")


SINK_T_OUTPUT = ("call", "sink", {"x": "T-OUTPUT-VALUE-0001"}, "ok")


# --------------------------------------------------------------------------- witnesses


@dataclass
class ArgWitness:
    """An argument-spec fragment (and its absence) with a value that tells them apart."""

    with_: dict[str, Any]
    without: dict[str, Any]
    value: Any
    history: list[tuple[Any, ...]] = field(default_factory=list)


ARG_WITNESSES: dict[str, ArgWitness] = {
    "type": ArgWitness({"type": "integer"}, {}, "s"),
    "required": ArgWitness({"required": True}, {}, MISSING),
    "enum": ArgWitness({"enum": ["a"]}, {}, "b"),
    "const": ArgWitness({"const": "a"}, {}, "b"),
    "pattern": ArgWitness({"pattern": "^a$"}, {}, "b"),
    "minLength": ArgWitness({"minLength": 3}, {}, "ab"),
    "maxLength": ArgWitness({"maxLength": 1}, {}, "ab"),
    "minimum": ArgWitness({"minimum": 5}, {}, 1),
    "maximum": ArgWitness({"maximum": 0}, {}, 1),
    "exclusiveMinimum": ArgWitness({"exclusiveMinimum": 1}, {}, 1),
    "exclusiveMaximum": ArgWitness({"exclusiveMaximum": 1}, {}, 1),
    "minItems": ArgWitness({"minItems": 2}, {}, ["x"]),
    "maxItems": ArgWitness({"maxItems": 0}, {}, ["x"]),
    "items": ArgWitness({"items": {"type": "integer"}}, {}, ["s"]),
    "properties": ArgWitness({"properties": {"k2": {"type": "integer"}}}, {}, {"k2": "s"}),
    "additionalProperties": ArgWitness({"additionalProperties": False}, {}, {"k2": 1}),
    "path_under": ArgWitness({"path_under": ["/home"]}, {}, "/etc/passwd"),
    "url_host_in": ArgWitness({"url_host_in": ["docs.example"]}, {}, "https://evil.example/"),
    "email_domain_in": ArgWitness({"email_domain_in": ["corp.example"]}, {}, "eve@evil.example"),
    "host_in": ArgWitness({"host_in": ["docs.example"]}, {}, "evil.example/page"),
    "idn": ArgWitness(
        {"url_host_in": ["*.docs.example"], "idn": True}, {"url_host_in": ["*.docs.example"]}, "https://xn--bcher-kva.docs.example/"
    ),
    "flow": ArgWitness({"flow": {"require": "trusted"}}, {}, EVIL, [UNTRUSTED_READ]),
}

# Argument positions, generated: an argument, then ``items``/``properties`` up to two levels down.
Wrap = tuple[str, ...]
ARG_POSITIONS: list[Wrap] = [
    (),
    *[(w,) for w in ("items", "properties")],
    *[(a, b) for a in ("items", "properties") for b in ("items", "properties")],
]


def place_arg(fragment: dict[str, Any], value: Any, wraps: Wrap) -> tuple[dict[str, Any], Any]:
    """The spec of argument ``a`` with ``fragment`` at the position ``wraps`` names, and the call value."""
    spec, val = fragment, value
    for wrap in reversed(wraps):
        if wrap == "items":
            spec, val = {"type": "array", "items": spec}, ([] if val is MISSING else [val])
        else:
            spec, val = {"type": "object", "properties": {"k": spec}}, ({} if val is MISSING else {"k": val})
    return spec, val


@dataclass
class FlowWitness:
    """A flow rule (and the rule it is compared with; None: no rule) with a value that tells them apart."""

    with_: dict[str, Any]
    without: dict[str, Any] | None
    value: Any
    history: list[tuple[Any, ...]]


FLOW_WITNESSES: dict[str, FlowWitness] = {
    "require": FlowWitness({"require": "trusted"}, None, EVIL, [UNTRUSTED_READ]),
    "forbid": FlowWitness({"forbid": ["secret"]}, None, SECRET, [SECRET_READ]),
    "unless": FlowWitness({"forbid": ["secret"], "unless": {"always": True}}, {"forbid": ["secret"]}, SECRET, [SECRET_READ]),
    "on_violation": FlowWitness({"forbid": ["secret"], "on_violation": "ask"}, {"forbid": ["secret"]}, SECRET, [SECRET_READ]),
    "on_inherited": FlowWitness({"forbid": ["secret"], "on_inherited": "ask"}, {"forbid": ["secret"]}, "words made up here", [SECRET_READ]),
}


def flow_placements() -> dict[str, Callable[[dict[str, Any], dict[str, Any] | None, Any], tuple[dict[str, Any], dict[str, Any]]]]:
    """Every place a flow rule may stand: -> (policy, call args for ``t``)."""

    def at_arg(wraps: Wrap) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
        def build(rule: dict[str, Any], _: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            pol = base()
            spec, val = place_arg({"type": "string", **({"flow": rule} if rule else {})}, value, wraps)
            pol["tools"]["t"]["args"]["a"] = spec
            return pol, {"a": val}

        return build

    def at_tool(rule: dict[str, Any], _: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        pol = base()
        if rule:
            pol["tools"]["t"]["flow"] = rule
        return pol, {"a": value}

    def at_defaults(effect: str) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
        def build(rule: dict[str, Any], _: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            pol = base()
            pol["tools"]["t"]["effect"] = effect
            if rule:
                pol["defaults"] = {effect: {"flow": rule}}
            return pol, {"a": value}

        return build

    out = {f"args{''.join('.' + w for w in wraps)}.flow": at_arg(wraps) for wraps in ARG_POSITIONS}
    out["tools.t.flow"] = at_tool
    out["defaults.read.flow"] = at_defaults("read")
    out["defaults.write.flow"] = at_defaults("write")
    return out


@dataclass
class CondWitness:
    """A condition that holds for the call ``t(args)`` after ``history`` (and the condition it is
    compared with; None: no rule), so that the two give different outcomes."""

    with_: dict[str, Any]
    without: dict[str, Any] | None
    history: list[tuple[Any, ...]]
    args: dict[str, Any]


def _matcher(arg: str, key: str, value: Any, call_value: Any, history: list[tuple[Any, ...]] | None = None) -> CondWitness:
    # With the matcher the condition fails for this call; without it, it holds.
    return CondWitness({"arg": arg, "exists": True, key: value}, {"arg": arg, "exists": True}, history or [], {arg: call_value})


COND_WITNESSES: dict[str, CondWitness] = {
    "always": CondWitness({"always": True}, None, [], {}),
    "context": CondWitness({"context": "untrusted"}, None, [UNTRUSTED_READ], {}),
    "context_has": CondWitness({"context_has": ["secret"]}, None, [SECRET_READ], {}),
    "effect": CondWitness({"effect": "read"}, None, [], {}),
    "args_untrusted": CondWitness({"args_untrusted": True}, None, [UNTRUSTED_READ], {"a": EVIL}),
    "called": CondWitness({"called": "src_untrusted"}, None, [UNTRUSTED_READ], {}),
    "at_least": CondWitness({"called": "src_untrusted", "at_least": 2}, {"called": "src_untrusted"}, [UNTRUSTED_READ], {}),
    "all": CondWitness({"all": [{"always": True}]}, None, [], {}),
    "any": CondWitness({"any": [{"always": True}]}, None, [], {}),
    "not_": CondWitness({"not": {"always": False}}, None, [], {}),
    "arg": CondWitness({"arg": "a", "exists": True}, None, [], {"a": "x"}),
    "exists": CondWitness({"arg": "a", "exists": False}, None, [], {}),
    "equals": _matcher("a", "equals", "zzz", "x"),
    "in_": _matcher("a", "in", ["zzz"], "x"),
    "pattern": _matcher("a", "pattern", "^z", "x"),
    "path_under": _matcher("a", "path_under", ["/home"], "/etc/passwd"),
    "path_glob": _matcher("a", "path_glob", ["/home/**"], "/etc/passwd"),
    "url_host_in": _matcher("a", "url_host_in", ["docs.example"], "https://evil.example/"),
    "email_domain_in": _matcher("a", "email_domain_in", ["corp.example"], "eve@evil.example"),
    "host_in": _matcher("a", "host_in", ["docs.example"], "evil.example/page"),
    # idn only widens the permitting side (canonical A-labels accepted): a flow rule's unless.
    "idn": CondWitness(
        {"arg": "a", "url_host_in": ["*.docs.example"], "idn": True},
        {"arg": "a", "url_host_in": ["*.docs.example"]},
        [],
        {"a": "https://xn--bcher-kva.docs.example/"},
    ),
    "gt": _matcher("n", "gt", 5, 1),
    "ge": _matcher("n", "ge", 5, 1),
    "lt": _matcher("n", "lt", 0, 1),
    "le": _matcher("n", "le", 0, 1),
    "untrusted": _matcher("a", "untrusted", True, "task-words-only"),
    "grounded": _matcher("a", "grounded", True, "made-up-value-999"),
    "from_task": _matcher("a", "from_task", True, "not-in-the-task-value"),
    "has_tags": _matcher("a", "has_tags", ["secret"], "task-words-only"),
}


def cond_placements() -> dict[str, Callable[[dict[str, Any] | None, CondWitness], tuple[dict[str, Any], list[tuple[Any, ...]]]]]:
    """Every place a condition may stand: -> (policy, steps) whose outcome depends on whether it holds."""

    def rule_at(where: str, kind: str, wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: c) -> Callable[..., Any]:
        def build(cond: dict[str, Any] | None, w: CondWitness) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            pol = base()
            if cond is not None:
                target = pol if where == "policy" else pol["tools"]["t"]
                target[kind] = [{"when": wrap(cond)}]
            return pol, [*w.history, call_t(**w.args)]

        return build

    def label_when(cond: dict[str, Any] | None, w: CondWitness) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        pol = base()
        if cond is not None:
            pol["tools"]["t"]["labels"] = [{"when": cond, "integrity": "untrusted"}]
        return pol, [*w.history, call_t(**w.args), SINK_T_OUTPUT]

    def write_when(cond: dict[str, Any] | None, w: CondWitness) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        pol = base()
        pol["budgets"] = {"max_writes": 0}
        if cond is not None:
            pol["tools"]["t"]["write_when"] = cond
        return pol, [*w.history, call_t(**w.args)]

    def unless_at(where: str) -> Callable[..., Any]:
        def build(cond: dict[str, Any] | None, w: CondWitness) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
            pol = base()
            rule: dict[str, Any] = {"forbid": ["secret"], **({"unless": cond} if cond is not None else {})}
            if where == "arg":
                pol["tools"]["t"]["args"]["p"]["flow"] = rule
            elif where == "tool":
                pol["tools"]["t"]["flow"] = rule
            else:
                pol["defaults"] = {"read": {"flow": rule}}
            return pol, [*w.history, SECRET_READ, call_t(**w.args, p=SECRET)]

        return build

    return {
        "deny[].when": rule_at("policy", "deny"),
        "ask[].when": rule_at("policy", "ask"),
        "tools.t.deny[].when": rule_at("tool", "deny"),
        "tools.t.ask[].when": rule_at("tool", "ask"),
        "tools.t.deny[].when.all[]": rule_at("tool", "deny", lambda c: {"all": [c]}),
        "tools.t.deny[].when.any[]": rule_at("tool", "deny", lambda c: {"any": [c]}),
        "tools.t.deny[].when.not.not": rule_at("tool", "deny", lambda c: {"not": {"not": c}}),
        "tools.t.labels[].when": label_when,
        "tools.t.write_when": write_when,
        "args.p.flow.unless": unless_at("arg"),
        "tools.t.flow.unless": unless_at("tool"),
        "defaults.read.flow.unless": unless_at("defaults"),
    }


# Witnesses for the fields of the remaining models: (policy with, policy without, steps).
Pair = tuple[dict[str, Any], dict[str, Any], list[tuple[Any, ...]]]


def _pair(
    edit: Callable[[dict[str, Any]], None], steps: list[tuple[Any, ...]], before: Callable[[dict[str, Any]], None] | None = None
) -> Pair:
    without = base()
    if before is not None:
        before(without)
    with_ = copy.deepcopy(without)
    edit(with_)
    return with_, without, steps


def _t(pol: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = pol["tools"]["t"]
    return tool


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(pol: dict[str, Any]) -> None:
        node = pol
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    return edit


TWO_CALLS = [call_t(), call_t()]
_SHARED = '{"owner": "ana@x.com", "text": "T-OUTPUT-VALUE-0001"}'
READERS_STEPS = [("call", "t", {}, _SHARED), ("call", "mail", {"to": "eve@y.com", "body": "T-OUTPUT-VALUE-0001"}, "ok")]
CONTEXT_STEPS = [("call", "t", {}, _SHARED), ("call", "mail", {"to": "eve@y.com", "body": "made up words"}, "ok")]
PIECES = [SECRET_READ] + [call_t(a=SECRET[i : i + 2]) for i in range(0, 12, 2)]


def _mail(recipients: bool = True, readers: bool = True) -> Callable[[dict[str, Any]], None]:
    def edit(pol: dict[str, Any]) -> None:
        pol["tools"]["mail"] = {"effect": "write", "args": {"to": {"type": "string"}, "body": {"type": "string"}}}
        if recipients:
            pol["tools"]["mail"]["recipients"] = ["to"]
        if readers:
            pol["tools"]["t"]["output_readers"] = ["owner"]

    return edit


OTHER_WITNESSES: dict[tuple[type[BaseModel], str], Pair] = {
    (S.PolicySpec, "tether"): _pair(lambda p: p.update(tether=2), [call_t()]),  # only 1 is accepted: refused
    (S.PolicySpec, "default"): _pair(_set("default", "ask"), [("call", "unknown_tool", {}, "")]),
    (S.PolicySpec, "home"): _pair(_set("home", "/home/ana"), [call_t(a="/home/ana/x")], _set("tools.t.args.a.path_under", ["~"])),
    (S.PolicySpec, "workdir"): _pair(_set("workdir", "/srv"), [call_t(a="x")], _set("tools.t.args.a.path_under", ["/srv"])),
    (S.PolicySpec, "lexical_paths"): _pair(
        _set("lexical_paths", True), [call_t(a="/srv/a/../b")], _set("tools.t.args.a.path_under", ["/srv"])
    ),
    (S.PolicySpec, "constants"): _pair(_set("constants", [EVIL]), [UNTRUSTED_READ, ("call", "sink", {"x": EVIL}, "")]),
    (S.PolicySpec, "limits"): _pair(_set("limits", {"max_arg_bytes": 1}), [call_t(a="xx")]),
    (S.PolicySpec, "budgets"): _pair(_set("budgets", {"max_calls": 1}), TWO_CALLS),
    (S.PolicySpec, "rates"): _pair(_set("rates", [{"tools": ["t"], "max": 1, "window_s": 60}]), TWO_CALLS),
    (S.PolicySpec, "approval_timeout_s"): _pair(
        _set("approval_timeout_s", 10), [call_t(), ("advance", 60)], _set("tools.t.ask", [{"when": {"always": True}}])
    ),
    (S.PolicySpec, "ask"): _pair(_set("ask", [{"when": {"always": True}}]), [call_t()]),
    (S.PolicySpec, "deny"): _pair(_set("deny", [{"when": {"always": True}}]), [call_t()]),
    (S.PolicySpec, "defaults"): _pair(_set("defaults", {"read": {"flow": {"forbid": ["secret"]}}}), [SECRET_READ, call_t(a=SECRET)]),
    (S.PolicySpec, "tools"): _pair(lambda p: p["tools"].pop("t"), [call_t()]),
    (S.PolicySpec, "readers"): _pair(_set("readers", {"outside": "deny"}), READERS_STEPS, _mail()),
    (S.PolicySpec, "outflow"): _pair(_set("outflow", {"on_trace": "deny"}), PIECES),
    (S.ReadersSettings, "outside"): _pair(_set("readers", {"outside": "deny"}), READERS_STEPS, _mail()),
    (S.ReadersSettings, "context"): _pair(_set("readers", {"context": True}), CONTEXT_STEPS, _mail()),
    (S.OutflowSettings, "on_trace"): _pair(_set("outflow", {"on_trace": "deny"}), PIECES),
    (S.OutflowSettings, "max_short_chars"): _pair(_set("outflow", {"max_short_chars": 1}), [SECRET_READ, call_t(a="zz")]),
    (S.ToolSpec, "output_readers"): _pair(_set("tools.t.output_readers", ["owner"]), READERS_STEPS, _mail(readers=False)),
    (S.ToolSpec, "recipients"): _pair(_set("tools.mail.recipients", ["to"]), READERS_STEPS, _mail(recipients=False)),
    (S.Limits, "max_arg_bytes"): _pair(_set("limits", {"max_arg_bytes": 1}), [call_t(a="xx")]),
    (S.Limits, "max_depth"): _pair(_set("limits", {"max_depth": 1}), [call_t(l=["x"])], _set("tools.t.args.l", {"type": "array"})),
    (S.Budgets, "max_calls"): _pair(_set("budgets", {"max_calls": 1}), TWO_CALLS),
    (S.Budgets, "max_writes"): _pair(_set("budgets", {"max_writes": 0}), [("call", "sink", {"x": "y"}, "")]),
    (S.Budgets, "max_spend"): _pair(_set("budgets", {"max_spend": 1}), [call_t(n=5)], _set("tools.t.spend", "n")),
    (S.Budgets, "max_wall_time_s"): _pair(_set("budgets", {"max_wall_time_s": 1}), [("advance", 5), call_t()]),
    (S.PolicySpec, "principal_budgets"): _pair(_set("principal_budgets", {"max_calls": 1}), TWO_CALLS),
    (S.PrincipalBudgets, "max_calls"): _pair(_set("principal_budgets", {"max_calls": 1}), TWO_CALLS),
    (S.PrincipalBudgets, "max_writes"): _pair(_set("principal_budgets", {"max_writes": 0}), [("call", "sink", {"x": "y"}, "")]),
    (S.PrincipalBudgets, "max_spend"): _pair(_set("principal_budgets", {"max_spend": 1}), [call_t(n=5)], _set("tools.t.spend", "n")),
    (S.PrincipalBudgets, "tool_calls"): _pair(_set("principal_budgets", {"tool_calls": {"t": 1}}), TWO_CALLS),
    (S.PrincipalBudgets, "rates"): _pair(_set("principal_budgets", {"rates": [{"tools": ["t"], "max": 1, "window_s": 60}]}), TWO_CALLS),
    (S.PolicySpec, "checkin"): _pair(
        _set("checkin", {"after_writes": 1}), [("call", "sink", {"x": "y"}, ""), ("call", "sink", {"x": "y"}, "")]
    ),
    (S.Checkin, "after_writes"): _pair(
        _set("checkin", {"after_writes": 1}), [("call", "sink", {"x": "y"}, ""), ("call", "sink", {"x": "y"}, "")]
    ),
    (S.Checkin, "after_minutes"): _pair(_set("checkin", {"after_minutes": 1}), [("advance", 120), ("call", "sink", {"x": "y"}, "")]),
    (S.Rate, "tools"): _pair(
        _set("rates", [{"tools": ["sink"], "max": 1, "window_s": 60}]),
        TWO_CALLS,
        _set("rates", [{"tools": ["t"], "max": 1, "window_s": 60}]),
    ),
    (S.Rate, "max"): _pair(
        _set("rates", [{"tools": ["t"], "max": 2, "window_s": 60}]), TWO_CALLS, _set("rates", [{"tools": ["t"], "max": 1, "window_s": 60}])
    ),
    (S.Rate, "window_s"): _pair(
        _set("rates", [{"tools": ["t"], "max": 1, "window_s": 1}]),
        [call_t(), ("advance", 5), call_t()],
        _set("rates", [{"tools": ["t"], "max": 1, "window_s": 60}]),
    ),
    (S.ToolSpec, "effect"): _pair(_set("tools.t.effect", "write"), [call_t()], _set("budgets", {"max_writes": 0})),
    (S.ToolSpec, "write_when"): _pair(_set("tools.t.write_when", {"always": True}), [call_t()], _set("budgets", {"max_writes": 0})),
    (S.ToolSpec, "output"): _pair(_set("tools.t.output", "untrusted"), [call_t(), SINK_T_OUTPUT]),
    (S.ToolSpec, "output_tags"): _pair(_set("tools.t.output_tags", ["secret"]), [call_t(), SINK_T_OUTPUT]),
    (S.ToolSpec, "labels"): _pair(
        _set("tools.t.labels", [{"when": {"always": True}, "integrity": "untrusted"}]), [call_t(), SINK_T_OUTPUT]
    ),
    (S.ToolSpec, "args"): _pair(_set("tools.t.args.a", {"type": "integer"}), [call_t(a="s")]),
    (S.ToolSpec, "additional_args"): _pair(_set("tools.t.additional_args", "allow"), [call_t(zz=1)]),
    (S.ToolSpec, "deny"): _pair(_set("tools.t.deny", [{"when": {"always": True}}]), [call_t()]),
    (S.ToolSpec, "ask"): _pair(_set("tools.t.ask", [{"when": {"always": True}}]), [call_t()]),
    (S.ToolSpec, "budget"): _pair(_set("tools.t.budget", {"max_calls": 0}), [call_t()]),
    (S.ToolBudget, "max_calls"): _pair(_set("tools.t.budget", {"max_calls": 0}), [call_t()]),
    (S.ToolSpec, "intent"): _pair(_set("tools.t.intent", "required"), [UNTRUSTED_READ, call_t()], _set("tools.t.effect", "write")),
    (S.PolicySpec, "intent"): _pair(_set("intent", ["t"]), [UNTRUSTED_READ, call_t()], _set("tools.t.effect", "write")),
    (S.PolicySpec, "plans"): _pair(
        _set("plans", {"outside": "deny"}), [("plan", [{"tool": "sink"}]), UNTRUSTED_READ, call_t()], _set("tools.t.effect", "write")
    ),
    (S.PlanSettings, "outside"): _pair(
        _set("plans", {"outside": "deny"}), [("plan", [{"tool": "sink"}]), UNTRUSTED_READ, call_t()], _set("tools.t.effect", "write")
    ),
    (S.ToolSpec, "spend"): _pair(_set("tools.t.spend", "n"), [call_t(n=5)], _set("budgets", {"max_spend": 1})),
    (S.ToolSpec, "flow"): _pair(_set("tools.t.flow", {"forbid": ["secret"]}), [SECRET_READ, call_t(a=SECRET)]),
    (S.OutputLabel, "integrity"): _pair(
        _set("tools.t.labels", [{"when": {"always": True}, "integrity": "trusted"}]),
        [call_t(), SINK_T_OUTPUT],
        _set("tools.t.output", "untrusted"),
    ),
    (S.OutputLabel, "tags"): _pair(_set("tools.t.labels", [{"when": {"always": True}, "tags": ["secret"]}]), [call_t(), SINK_T_OUTPUT]),
    (S.OutputLabel, "remove_tags"): _pair(
        _set("tools.t.labels", [{"when": {"always": True}, "remove_tags": ["secret"]}]),
        [call_t(), SINK_T_OUTPUT],
        _set("tools.t.output_tags", ["secret"]),
    ),
    (S.RuleSpec, "reason"): _pair(
        _set("tools.t.deny", [{"when": {"always": True}, "reason": "because"}]),
        [call_t()],
        _set("tools.t.deny", [{"when": {"always": True}}]),
    ),
    (S.RuleSpec, "name"): _pair(
        _set("tools.t.deny", [{"when": {"always": True}, "name": "mine"}]), [call_t()], _set("tools.t.deny", [{"when": {"always": True}}])
    ),
    (S.Defaults, "read"): _pair(_set("defaults", {"read": {"flow": {"forbid": ["secret"]}}}), [SECRET_READ, call_t(a=SECRET)]),
    (S.Defaults, "write"): _pair(
        _set("defaults", {"write": {"flow": {"forbid": ["secret"]}}}),
        [SECRET_READ, ("call", "sink2", {"y": SECRET}, "")],
        _set("tools.sink2", {"effect": "write", "args": {"y": {"type": "string"}}}),
    ),
    (S.EffectDefaults, "flow"): _pair(_set("defaults", {"read": {"flow": {"forbid": ["secret"]}}}), [SECRET_READ, call_t(a=SECRET)]),
}

# Fields whose witnesses are the condition and flow tables above, or the placements themselves.
BY_PLACEMENT = {
    (S.RuleSpec, "when"),
    (S.OutputLabel, "when"),
    (S.FlowRule, "unless"),
    (S.PolicySpec, "extends"),  # test_extends_changes_decisions below
}


# --------------------------------------------------------------------------- the schema walk


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    if isinstance(annotation, types.UnionType):
        for arg in annotation.__args__:
            out += _models_in(arg)
    return out


def schema_edges() -> set[tuple[type[BaseModel], str, type[BaseModel]]]:
    """(container model, field, contained model) for every model reachable from PolicySpec."""
    edges: set[tuple[type[BaseModel], str, type[BaseModel]]] = set()
    todo: list[type[BaseModel]] = [S.PolicySpec]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            for inner in _models_in(info.annotation):
                edges.add((model, name, inner))
                todo.append(inner)
    return edges


def all_fields() -> set[tuple[type[BaseModel], str]]:
    models = {S.PolicySpec} | {inner for _, _, inner in schema_edges()}
    return {(m, name) for m in models for name in m.model_fields}


# Where each model may appear, as the placements above cover it.
PLACED = {
    (S.ArgSpec, "items", S.ArgSpec),
    (S.ArgSpec, "properties", S.ArgSpec),
    (S.ToolSpec, "args", S.ArgSpec),
    (S.ArgSpec, "flow", S.FlowRule),
    (S.ToolSpec, "flow", S.FlowRule),
    (S.EffectDefaults, "flow", S.FlowRule),
    (S.FlowRule, "unless", S.Condition),
    (S.RuleSpec, "when", S.Condition),
    (S.OutputLabel, "when", S.Condition),
    (S.ToolSpec, "write_when", S.Condition),
    (S.Condition, "all", S.Condition),
    (S.Condition, "any", S.Condition),
    (S.Condition, "not_", S.Condition),
    (S.PolicySpec, "ask", S.RuleSpec),
    (S.PolicySpec, "deny", S.RuleSpec),
    (S.ToolSpec, "ask", S.RuleSpec),
    (S.ToolSpec, "deny", S.RuleSpec),
    (S.ToolSpec, "labels", S.OutputLabel),
    (S.ToolSpec, "budget", S.ToolBudget),
    (S.PolicySpec, "tools", S.ToolSpec),
    (S.PolicySpec, "limits", S.Limits),
    (S.PolicySpec, "budgets", S.Budgets),
    (S.PolicySpec, "rates", S.Rate),
    (S.PolicySpec, "principal_budgets", S.PrincipalBudgets),
    (S.PrincipalBudgets, "rates", S.Rate),
    (S.PolicySpec, "checkin", S.Checkin),
    (S.PolicySpec, "defaults", S.Defaults),
    (S.Defaults, "read", S.EffectDefaults),
    (S.Defaults, "write", S.EffectDefaults),
    (S.PolicySpec, "readers", S.ReadersSettings),
    (S.PolicySpec, "outflow", S.OutflowSettings),
    (S.PolicySpec, "plans", S.PlanSettings),
}


def test_every_place_a_model_may_appear_is_covered() -> None:
    assert schema_edges() == PLACED


def test_every_field_has_a_witness() -> None:
    witnessed = {(S.ArgSpec, k) for k in ARG_WITNESSES}
    witnessed |= {(S.FlowRule, k) for k in FLOW_WITNESSES}
    witnessed |= {(S.Condition, k) for k in COND_WITNESSES}
    witnessed |= set(OTHER_WITNESSES) | BY_PLACEMENT | ANNOTATIONS
    missing = all_fields() - witnessed
    assert not missing, f"accepted keys without a witness that they are enforced: {sorted((m.__name__, f) for m, f in missing)}"


def _outcome(policy: dict[str, Any], steps: list[tuple[Any, ...]], tmp: Path | None = None) -> list[Any] | PolicyError:
    try:
        return run(policy, steps, tmp)
    except PolicyError as exc:
        return exc


def _assert_enforced_or_refused(
    with_: dict[str, Any], without: dict[str, Any], steps: list[tuple[Any, ...]], what: str, refusal: str | None = None
) -> None:
    """``with_`` must load and give another outcome than ``without``, or be refused by the loader
    with the ``refusal`` message (the refusals this format makes on purpose)."""
    got = _outcome(with_, steps)
    if isinstance(got, PolicyError):
        assert refusal is not None and refusal in str(got), f"{what} was refused: {got}"
        return
    assert refusal is None, f"{what} should be refused ({refusal}) but loads"
    base_outcome = _outcome(without, steps)
    assert not isinstance(base_outcome, PolicyError), f"{what}: the policy without it does not load: {base_outcome}"
    assert got != base_outcome, f"{what} is accepted but changes nothing: {got}"


_VALUES_ONLY = "only tests on argument values are allowed"
_HISTORY_CONDITIONS = {
    "context",
    "context_has",
    "effect",
    "args_untrusted",
    "called",
    "at_least",
    "untrusted",
    "grounded",
    "from_task",
    "has_tags",
}


@pytest.mark.parametrize("wraps", ARG_POSITIONS, ids=lambda w: "args.a" + "".join("." + p for p in w))
@pytest.mark.parametrize("key", sorted(ARG_WITNESSES))
def test_argument_keys_are_enforced_in_every_position(key: str, wraps: Wrap) -> None:
    w = ARG_WITNESSES[key]
    results = []
    for fragment in (w.with_, w.without):
        pol = base()
        spec, value = place_arg(fragment, w.value, wraps)
        pol["tools"]["t"]["args"]["a"] = spec
        results.append((pol, value))
    steps = [*w.history, call_t(a=results[0][1])]
    refusal = "'required' has no meaning inside 'items'" if key == "required" and wraps and wraps[-1] == "items" else None
    _assert_enforced_or_refused(results[0][0], results[1][0], steps, f"{key} at args.a{'.'.join(('', *wraps))}", refusal)


def test_required_inside_items_is_refused_not_ignored() -> None:
    pol = base()
    pol["tools"]["t"]["args"]["a"] = place_arg({"type": "string", "required": True}, "x", ("items",))[0]
    with pytest.raises(PolicyError, match="'required' has no meaning inside 'items'"):
        run(pol, [])


@pytest.mark.parametrize("place", sorted(flow_placements()))
@pytest.mark.parametrize("key", sorted(FLOW_WITNESSES))
def test_flow_rule_keys_are_enforced_in_every_position(key: str, place: str) -> None:
    w = FLOW_WITNESSES[key]
    build = flow_placements()[place]
    with_pol, args = build(w.with_, None, w.value)
    without_pol, _ = build(w.without or {}, None, w.value)
    _assert_enforced_or_refused(with_pol, without_pol, [*w.history, call_t(**args)], f"flow.{key} at {place}")


@pytest.mark.parametrize("place", sorted(cond_placements()))
@pytest.mark.parametrize("key", sorted(COND_WITNESSES))
def test_condition_keys_are_enforced_in_every_position(key: str, place: str) -> None:
    w = COND_WITNESSES[key]
    build = cond_placements()[place]
    with_pol, steps = build(w.with_, w)
    without_pol, _ = build(w.without, w)
    refusal = _VALUES_ONLY if place == "tools.t.write_when" and key in _HISTORY_CONDITIONS else None
    if key == "idn" and not place.endswith("unless"):
        refusal = "'idn' has no effect here"
    _assert_enforced_or_refused(with_pol, without_pol, steps, f"condition {key} at {place}", refusal)


def test_write_when_refuses_history_conditions() -> None:
    # write_when must depend on argument values only, so that a call's effect never changes.
    w = COND_WITNESSES["context"]
    pol, _ = cond_placements()["tools.t.write_when"](w.with_, w)
    with pytest.raises(PolicyError, match="only tests on argument values"):
        run(pol, [])


@pytest.mark.parametrize(
    ("model", "key"), sorted(OTHER_WITNESSES, key=lambda k: (k[0].__name__, k[1])), ids=lambda v: getattr(v, "__name__", v)
)
def test_other_keys_change_an_outcome(model: type[BaseModel], key: str) -> None:
    with_, without, steps = OTHER_WITNESSES[(model, key)]
    refusal = "should be 1" if (model, key) == (S.PolicySpec, "tether") else None
    _assert_enforced_or_refused(with_, without, steps, f"{model.__name__}.{key}", refusal)


@pytest.mark.parametrize(
    ("model", "key"), sorted(ANNOTATIONS, key=lambda k: (k[0].__name__, k[1])), ids=lambda v: getattr(v, "__name__", v)
)
def test_annotations_change_no_decision(model: type[BaseModel], key: str) -> None:
    pol = base()
    target = {S.PolicySpec: pol, S.ToolSpec: pol["tools"]["t"], S.ArgSpec: pol["tools"]["t"]["args"]["a"]}[model]
    steps = [UNTRUSTED_READ, call_t(a=EVIL), SECRET_READ, ("call", "sink", {"x": SECRET}, "")]
    before = run(pol, steps)
    target[key] = "some free text"
    assert run(pol, steps) == before


def test_extends_changes_decisions(tmp_path: Path) -> None:
    b = base()
    b["tools"]["t"]["deny"] = [{"when": {"always": True}, "name": "from-base"}]
    (tmp_path / "base.yaml").write_text(_yaml(b))
    child: dict[str, Any] = {"tether": 1, "name": "child"}
    with_ = run({**child, "extends": ["base.yaml"]}, [call_t()], tmp_path)
    assert with_[0][0] == "deny" and with_[0][1][0][0] == "from-base"
    assert _outcome(child, [call_t()], tmp_path) != with_
