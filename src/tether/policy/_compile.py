"""The compiler: a validated :class:`PolicySpec` in, a finished :class:`CompiledPolicy` out.

Schema validation (``_schema.py``) only checks the file's shape; compiling checks what needs
the whole document (a condition naming an argument the tool does not declare, an ``enum``
value its own constraints refuse, a rate that matches no tool, ...) and collects every
problem before refusing, so that a user sees them all at once.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from tether.flow import label
from tether.policy import _matchers as m
from tether.policy._conditions import Scope, compile_condition
from tether.policy._model import (
    CompiledArg,
    CompiledFlow,
    CompiledPolicy,
    CompiledRule,
    CompiledTool,
    DefaultFlows,
    LabelRule,
    RateRule,
)
from tether.policy._problems import Locate, Problems, did_you_mean
from tether.policy._schema import (
    ArgSpec,
    Effect,
    FlowRule,
    FlowRules,
    OutputLabel,
    PolicySpec,
    RuleSpec,
    ToolSpec,
    compile_pattern,
)
from tether.policy._validate import validate_arg

_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
_EFFECTS = ("read", "write")
_Defaults = dict[str, tuple[CompiledFlow, ...]]


def compile_policy(spec: PolicySpec, locate: Locate) -> CompiledPolicy:
    """Compile ``spec``; raise :class:`~tether.errors.PolicyError` listing every error found.

    ``locate`` maps a rule path to the file and line it came from (for messages).
    """
    problems = Problems(locate)
    paths = m.Paths(spec.home, spec.workdir or spec.home, bool(spec.lexical_paths))
    tool_names = frozenset(spec.tools)
    known_tools = tool_names if spec.default == "deny" else None
    scope = Scope(problems, paths, tools=known_tools)
    defaults: _Defaults = {}
    for effect in _EFFECTS:
        entry = getattr(spec.defaults, effect) if spec.defaults is not None else None
        defaults[effect] = _compile_flows(entry.flow if entry else None, f"defaults.{effect}.flow", scope)
    # Every tool's deny_all/ask_all ends with the policy-wide rules, so those compile first; their
    # problems are still reported after the tools' (the order ``tether policy check`` has always shown).
    rule_problems = Problems(locate)
    rule_scope = replace(scope, problems=rule_problems)
    deny_rules = tuple(_compile_rule(r, f"deny[{i}]", rule_scope) for i, r in enumerate(spec.deny))
    ask_rules = tuple(_compile_rule(r, f"ask[{i}]", rule_scope) for i, r in enumerate(spec.ask))
    tools: dict[str, CompiledTool] = {}
    for name, tool in spec.tools.items():
        if not _TOOL_NAME.fullmatch(name):
            problems.error(f"invalid tool name {name!r} (use letters, digits and _.:/-, at most 128)", f"tools.{name}")
        elif name == "tether.plan":
            problems.error("'tether.plan' is reserved: it is how a declared plan is decided and shown", f"tools.{name}")
        tools[name] = _compile_tool(name, tool, scope, defaults, deny_rules, ask_rules)
        if tool.intent == "required" or any(m.name_glob(name, (g,)) for g in spec.intent):
            if tool.effect == "read" and tool.write_when is None:
                problems.warn("'intent' has no effect on a read tool (it applies to write calls)", f"tools.{name}.intent")
            tools[name] = replace(tools[name], intent_required=True)
    for j, glob in enumerate(spec.intent):
        if not any(m.name_glob(name, (glob,)) for name in tool_names):
            problems.error(f"tool glob {glob!r} matches no tool of this policy", f"intent[{j}]")
    problems.extend(rule_problems)
    rates = tuple(RateRule(f"rates[{i}]", tuple(r.tools), r.max, r.window_s) for i, r in enumerate(spec.rates))
    for rate in rates:
        _check_rate(rate, tool_names, spec.default == "deny", problems)
    problems.raise_if_any()
    return CompiledPolicy(paths, tools, deny_rules, ask_rules, rates, tuple(problems.warnings))


def _check_rate(rate: RateRule, tool_names: frozenset[str], default_deny: bool, problems: Problems) -> None:
    for j, glob in enumerate(rate.tools):
        if any(m.name_glob(name, (glob,)) for name in tool_names):
            continue
        if default_deny:
            hint = did_you_mean(glob, tool_names)
            problems.error(f"tool glob {glob!r} matches no tool of this policy, so the rate never applies{hint}", f"{rate.rule}.tools[{j}]")
        else:  # under default: ask, tools the policy does not name are counted too
            hint = did_you_mean(glob, tool_names)
            problems.warn(
                f"tool glob {glob!r} matches no tool the policy names (it counts unnamed tools only){hint}", f"{rate.rule}.tools[{j}]"
            )


def _compile_rule(rule: RuleSpec, path: str, scope: Scope) -> CompiledRule:
    pred = compile_condition(rule.when, f"{path}.when", scope)
    name = rule.name or path
    return CompiledRule(rule=name, when=pred, reason=rule.reason or f"rule {name} matched")


def _compile_tool(
    name: str,
    tool: ToolSpec,
    policy_scope: Scope,
    defaults: _Defaults,
    deny_rules: tuple[CompiledRule, ...],
    ask_rules: tuple[CompiledRule, ...],
) -> CompiledTool:
    base = f"tools.{name}"
    problems = policy_scope.problems
    if tool.effect is None:
        problems.error("missing required key 'effect'", f"{base}.effect")
    effect: Effect = tool.effect or "write"
    effects: frozenset[Effect] = frozenset({effect, "write"}) if tool.write_when is not None else frozenset({effect})
    arg_scope = replace(policy_scope, args=frozenset(tool.args), effects=effects)
    args = {arg: _compile_arg(spec, f"{base}.args.{arg}", arg_scope, "argument") for arg, spec in tool.args.items()}

    def check_value(arg: str, value: Any) -> str | None:
        spec = args.get(arg)
        return validate_arg(spec, value, f"argument {arg!r}") if spec is not None else None

    arg_scope = replace(arg_scope, check_value=check_value)
    label_rules = tuple(_compile_label(lab, f"{base}.labels[{i}]", arg_scope) for i, lab in enumerate(tool.labels))
    write_when = None
    if tool.write_when is not None:
        if tool.effect == "write":
            problems.warn("'write_when' has no effect on a write tool", f"{base}.write_when")
        write_when = compile_condition(tool.write_when, f"{base}.write_when", replace(arg_scope, values_only=True))
    _check_spend(tool, args, base, problems)
    for i, arg in enumerate(tool.recipients):
        if arg not in args:
            problems.error(f"'recipients' names argument {arg!r}, which the tool does not declare", f"{base}.recipients[{i}]")
    deny = tuple(_compile_rule(r, f"{base}.deny[{i}]", arg_scope) for i, r in enumerate(tool.deny))
    ask = tuple(_compile_rule(r, f"{base}.ask[{i}]", arg_scope) for i, r in enumerate(tool.ask))
    tool_flows = _compile_flows(tool.flow, f"{base}.flow", arg_scope)
    return CompiledTool(
        name=name,
        effect=effect,
        output_label=label(tool.output, tool.output_tags),
        label_rules=label_rules,
        args=args,
        required=tuple(a for a, spec in tool.args.items() if spec.required),
        additional_args=tool.additional_args == "allow",
        deny=deny,
        ask=ask,
        max_calls=tool.budget.max_calls if tool.budget else None,
        spend_arg=tool.spend,
        deny_all=(*deny, *deny_rules),
        ask_all=(*ask, *ask_rules),
        write_when=write_when,
        flows=tuple((arg, flow) for arg, spec in args.items() for flow in _flows_under(spec)),
        defaults={effect: DefaultFlows.build(tool_flows, defaults[effect]) for effect in _EFFECTS if tool_flows or defaults[effect]},
        output_readers=None if tool.output_readers is None else tuple(tuple(p.split(".")) for p in tool.output_readers),
        recipients=tuple(dict.fromkeys(tool.recipients)),
    )


def _check_spend(tool: ToolSpec, args: dict[str, CompiledArg], base: str, problems: Problems) -> None:
    if tool.spend is None:
        return
    if tool.spend not in args:
        problems.error(f"'spend' names argument {tool.spend!r}, which the tool does not declare", f"{base}.spend")
        return
    types = args[tool.spend].types
    if types is None or not set(types) <= {"number", "integer"}:
        problems.error(f"'spend' argument {tool.spend!r} must declare type number or integer (and nothing else)", f"{base}.spend")


def _compile_label(lab: OutputLabel, path: str, scope: Scope) -> LabelRule:
    remove = frozenset(lab.remove_tags or ())
    both = remove & set(lab.tags)
    if both:
        scope.problems.error(f"tags {sorted(both)} are both added and removed by one entry", path)
    if lab.integrity is None and not lab.tags and not remove:
        scope.problems.error("a label entry needs 'integrity', 'tags' or 'remove_tags'", path)
    # What an entry raises applies when any plausible reading of a value matches; what it lowers
    # only when every value is canonical and matches (the two sides of a matcher, Scope.permits).
    raises = lab.integrity == "untrusted" or bool(lab.tags)
    lowers = lab.integrity == "trusted" or bool(remove)
    quiet = Problems(lambda _: ("", None))  # the same condition twice: its problems are recorded once
    when = compile_condition(lab.when, f"{path}.when", scope if raises or not lowers else replace(scope, problems=quiet))
    when_lowering = compile_condition(
        lab.when, f"{path}.when", replace(scope, permits=True, problems=scope.problems if not raises else quiet)
    )
    return LabelRule(when, when_lowering, lab.integrity, frozenset(lab.tags), remove)


def _flows_under(spec: CompiledArg) -> list[CompiledFlow]:
    out = list(spec.flows)
    if spec.items is not None:
        out += _flows_under(spec.items)
    for sub in (spec.properties or {}).values():
        out += _flows_under(sub)
    return out


def _compile_flows(rules: FlowRules | None, path: str, scope: Scope) -> tuple[CompiledFlow, ...]:
    if rules is None:
        return ()
    if isinstance(rules, list):
        return tuple(_compile_flow(r, f"{path}[{i}]", scope) for i, r in enumerate(rules))
    return (_compile_flow(rules, path, scope),)


def _compile_flow(flow: FlowRule, path: str, scope: Scope) -> CompiledFlow:
    unless = compile_condition(flow.unless, f"{path}.unless", replace(scope, permits=True)) if flow.unless else None
    return CompiledFlow(
        rule=path,
        require_trusted=flow.require == "trusted",
        forbid=frozenset(flow.forbid),
        unless=unless,
        on_violation=flow.on_violation,
        on_inherited=flow.on_inherited or flow.on_violation,
        states_require=flow.require is not None,
        states_forbid="forbid" in flow.model_fields_set,
    )


# Keys that only mean something for values of some JSON types: with a ``type`` that excludes
# all of them, the key could never apply, so it is refused rather than silently ignored.
_KEY_TYPES: dict[str, frozenset[str]] = {
    "pattern": frozenset({"string"}),
    "minLength": frozenset({"string"}),
    "maxLength": frozenset({"string"}),
    "minimum": frozenset({"number", "integer"}),
    "maximum": frozenset({"number", "integer"}),
    "exclusiveMinimum": frozenset({"number", "integer"}),
    "exclusiveMaximum": frozenset({"number", "integer"}),
    "minItems": frozenset({"array"}),
    "maxItems": frozenset({"array"}),
    "items": frozenset({"array"}),
    "properties": frozenset({"object"}),
    "additionalProperties": frozenset({"object"}),
    **{key: frozenset({"string", "array"}) for key in m.MATCHER_KEYS},
}


def _compile_arg(spec: ArgSpec, path: str, scope: Scope, position: str) -> CompiledArg:
    """Compile the constraints at one position (``argument``, ``item`` or ``property``)."""
    compiled = _compile_arg_fields(spec, path, scope)
    problems = scope.problems
    if position == "item" and spec.required:
        problems.error(
            "'required' has no meaning inside 'items' (an item is always present): use a 'type' without null", f"{path}.required"
        )
    if compiled.types is not None:
        for key, wanted in _KEY_TYPES.items():
            stated = key in spec.model_fields_set and (key != "additionalProperties" or not spec.additionalProperties)
            if stated and not wanted & set(compiled.types):
                problems.error(f"{key!r} never applies to a value of type {' or '.join(compiled.types)}", f"{path}.{key}")
    for i, value in enumerate(compiled.enum or ()):
        why = validate_arg(compiled, value, "it")
        if why is not None:
            problems.error(f"enum value {value!r} can never pass the other constraints: {why}", f"{path}.enum[{i}]")
    if compiled.has_const and compiled.enum is None:
        why = validate_arg(compiled, compiled.const, "it")
        if why is not None:
            problems.error(f"const {compiled.const!r} can never pass the other constraints: {why}", f"{path}.const")
    return compiled


def _compile_arg_fields(spec: ArgSpec, path: str, scope: Scope) -> CompiledArg:
    types: tuple[str, ...] | None
    if spec.type is None:
        types = None
    elif isinstance(spec.type, list):
        types = tuple(spec.type)
    else:
        types = (spec.type,)
    items = _compile_arg(spec.items, f"{path}.items", scope, "item") if spec.items else None
    properties = (
        {k: _compile_arg(v, f"{path}.properties.{k}", scope, "property") for k, v in spec.properties.items()}
        if spec.properties is not None
        else ({} if not spec.additionalProperties else None)  # additionalProperties: false alone allows no key
    )
    below = [items] if items is not None else []
    below += list((properties or {}).values())
    return CompiledArg(
        path=path,
        types=types,
        required=spec.required,
        enum=tuple(spec.enum) if spec.enum is not None else None,
        has_const="const" in spec.model_fields_set,
        const=spec.const,
        regex=compile_pattern(spec.pattern) if spec.pattern is not None else None,
        min_len=spec.minLength,
        max_len=spec.maxLength,
        minimum=spec.minimum,
        maximum=spec.maximum,
        exclusive_min=spec.exclusiveMinimum,
        exclusive_max=spec.exclusiveMaximum,
        min_items=spec.minItems,
        max_items=spec.maxItems,
        items=items,
        properties=properties,
        additional=spec.additionalProperties,
        matchers=_compile_matchers(spec, path, scope),
        flows=_compile_flows(spec.flow, f"{path}.flow", scope),
        flows_below=any(sub.flows or sub.flows_below for sub in below),
    )


def _compile_matchers(spec: ArgSpec, path: str, scope: Scope) -> tuple[m.ValueMatcher, ...]:
    out: list[m.ValueMatcher] = []
    for key in m.MATCHER_KEYS:
        entries = getattr(spec, key, None)
        if entries is not None:
            try:
                out.append(m.build_matcher(key, entries, scope.paths, idn=bool(spec.idn) and key in m.HOST_MATCHER_KEYS))
            except ValueError as exc:
                scope.problems.error(str(exc), f"{path}.{key}")
    return tuple(out)
