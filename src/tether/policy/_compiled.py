"""A loaded policy, compiled for fast evaluation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import PolicyError
from tether.flow._labels import Label, label
from tether.policy import _matchers as m
from tether.policy._conditions import Predicate, compile_condition
from tether.policy._loader import parse_policy_text, policy_hash, read_policy_file
from tether.policy._schema import ArgSpec, Effect, FlowRule, PolicySpec, RuleSpec, compile_pattern

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass(frozen=True, slots=True)
class CompiledFlow:
    """A flow rule, ready to evaluate."""

    rule: str
    require_trusted: bool
    forbid: frozenset[str]
    unless: Predicate | None
    on_violation: str


@dataclass(slots=True)
class CompiledArg:
    """Constraints of one argument (recursively for arrays and objects)."""

    path: str
    types: tuple[str, ...] | None
    required: bool
    enum: list[Any] | None
    has_const: bool
    const: Any
    regex: re.Pattern[str] | None
    min_len: int | None
    max_len: int | None
    minimum: float | None
    maximum: float | None
    exclusive_min: float | None
    exclusive_max: float | None
    min_items: int | None
    max_items: int | None
    items: CompiledArg | None
    properties: dict[str, CompiledArg] | None
    additional: bool
    matchers: tuple[m.ValueMatcher, ...]
    """Semantic matchers (``path_under``, ``url_host_in``, ...); on an array they apply to every item."""
    flow: CompiledFlow | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An ask or deny rule."""

    rule: str
    when: Predicate
    reason: str


@dataclass(slots=True)
class CompiledTool:
    """Everything the guard needs about one tool."""

    name: str
    effect: Effect
    output_label: Label
    label_rules: list[tuple[Predicate, Label]]
    args: dict[str, CompiledArg]
    required: tuple[str, ...]
    additional_args: bool
    deny: list[CompiledRule]
    ask: list[CompiledRule]
    max_calls: int | None
    spend_arg: str | None
    flows: list[tuple[str, CompiledFlow]] = field(default_factory=list)
    deny_all: tuple[CompiledRule, ...] = ()
    """This tool's deny rules, then the policy-wide ones."""
    ask_all: tuple[CompiledRule, ...] = ()
    """This tool's ask rules, then the policy-wide ones."""


class Policy:
    """A validated, compiled policy. Identified by :attr:`hash` of its normalised content."""

    def __init__(self, spec: PolicySpec, *, source: str = "<string>", text: str | None = None) -> None:
        self.spec = spec
        """The validated document."""
        self.source = source
        """Where it was loaded from."""
        self.text = text
        """The original YAML, when known."""
        self.hash = policy_hash(spec)
        """``sha256:...`` of the normalised content."""
        self.name = spec.name
        """The policy's name."""
        self.paths = m.Paths(spec.home, spec.workdir or spec.home)
        """How paths are read: ``~`` is ``home``; relative paths start at ``workdir``."""
        self.tools: dict[str, CompiledTool] = {}
        for name, tool in spec.tools.items():
            self.tools[name] = _compile_tool(name, tool, self.paths, source)
        self.deny_rules = [_compile_rule(r, f"deny[{i}]", None, source, self.paths) for i, r in enumerate(spec.deny)]
        self.ask_rules = [_compile_rule(r, f"ask[{i}]", None, source, self.paths) for i, r in enumerate(spec.ask)]
        self._rate_cache: dict[str, list[tuple[str, int, float]]] = {}
        for compiled in self.tools.values():
            compiled.deny_all = (*compiled.deny, *self.deny_rules)
            compiled.ask_all = (*compiled.ask, *self.ask_rules)
        self.rates = [(f"rates[{i}]", tuple(r.tools), r.max, r.window_s) for i, r in enumerate(spec.rates)]

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> Policy:
        """Parse and compile a policy from YAML text."""
        spec, _ = parse_policy_text(text, source)
        return cls(spec, source=source, text=text)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy file."""
        text = read_policy_file(path)
        return cls.from_yaml(text, source=str(path))

    def rate_rules_for(self, tool: str) -> list[tuple[str, int, float]]:
        """The rate rules that count calls to ``tool``."""
        found = self._rate_cache.get(tool)
        if found is None:
            found = [(rule, limit, window) for rule, globs, limit, window in self.rates if m.name_glob(tool, globs)]
            if len(self._rate_cache) < 10_000:
                self._rate_cache[tool] = found
        return found

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, hash={self.hash[:19]!r}, tools={len(self.tools)})"


def _compile_rule(rule: RuleSpec, path: str, known: set[str] | None, source: str, paths: m.Paths) -> CompiledRule:
    pred = compile_condition(rule.when, f"{path}.when", known, source, paths)
    name = rule.name or path
    return CompiledRule(rule=name, when=pred, reason=rule.reason or f"rule {name} matched")


def _compile_tool(name: str, tool: Any, paths: m.Paths, source: str) -> CompiledTool:
    base = f"tools.{name}"
    known = set(tool.args)
    args = {arg: _compile_arg(spec, f"{base}.args.{arg}", known, source, paths) for arg, spec in tool.args.items()}
    label_rules = []
    for i, lab in enumerate(tool.labels):
        pred = compile_condition(lab.when, f"{base}.labels[{i}].when", known, source, paths)
        label_rules.append((pred, label(lab.integrity or "trusted", lab.tags)))
    if tool.spend is not None:
        if tool.spend not in args:
            raise PolicyError(
                f"'spend' names argument {tool.spend!r}, which the tool does not declare", source=source, rule_path=f"{base}.spend"
            )
        types = args[tool.spend].types
        if types is None or not set(types) <= {"number", "integer"}:
            raise PolicyError(
                f"'spend' argument {tool.spend!r} must declare type number or integer (and nothing else)",
                source=source,
                rule_path=f"{base}.spend",
            )
    compiled = CompiledTool(
        name=name,
        effect=tool.effect,
        output_label=label(tool.output, tool.output_tags),
        label_rules=label_rules,
        args=args,
        required=tuple(a for a, spec in tool.args.items() if spec.required),
        additional_args=tool.additional_args == "allow",
        deny=[_compile_rule(r, f"{base}.deny[{i}]", known, source, paths) for i, r in enumerate(tool.deny)],
        ask=[_compile_rule(r, f"{base}.ask[{i}]", known, source, paths) for i, r in enumerate(tool.ask)],
        max_calls=tool.budget.max_calls if tool.budget else None,
        spend_arg=tool.spend,
    )
    compiled.flows = [(arg, a.flow) for arg, a in args.items() if a.flow is not None]
    return compiled


def _compile_flow(flow: FlowRule, path: str, known: set[str], source: str, paths: m.Paths) -> CompiledFlow:
    unless = compile_condition(flow.unless, f"{path}.unless", known, source, paths, permits=True) if flow.unless else None
    return CompiledFlow(
        rule=path,
        require_trusted=flow.require == "trusted",
        forbid=frozenset(flow.forbid),
        unless=unless,
        on_violation=flow.on_violation,
    )


def _compile_arg(spec: ArgSpec, path: str, known: set[str], source: str, paths: m.Paths) -> CompiledArg:
    types: tuple[str, ...] | None
    if spec.type is None:
        types = None
    elif isinstance(spec.type, list):
        types = tuple(spec.type)
    else:
        types = (spec.type,)
    has_const = "const" in spec.model_fields_set
    for bound in (spec.minimum, spec.maximum):
        if bound is not None and types is not None and not set(types) & {"number", "integer"}:
            raise PolicyError("numeric bounds on a non-numeric argument", source=source, rule_path=path)
    return CompiledArg(
        path=path,
        types=types,
        required=spec.required,
        enum=list(spec.enum) if spec.enum is not None else None,
        has_const=has_const,
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
        items=_compile_arg(spec.items, f"{path}.items", known, source, paths) if spec.items else None,
        properties=(
            {k: _compile_arg(v, f"{path}.properties.{k}", known, source, paths) for k, v in spec.properties.items()}
            if spec.properties is not None
            else None
        ),
        additional=spec.additionalProperties,
        matchers=_compile_matchers(spec, path, source, paths),
        flow=_compile_flow(spec.flow, f"{path}.flow", known, source, paths) if spec.flow else None,
    )


def _compile_matchers(spec: ArgSpec, path: str, source: str, paths: m.Paths) -> tuple[m.ValueMatcher, ...]:
    out: list[m.ValueMatcher] = []
    for key in m.MATCHER_KEYS:
        entries = getattr(spec, key, None)
        if entries is not None:
            try:
                out.append(m.build_matcher(key, entries, paths, idn=bool(spec.idn) and key in m.HOST_MATCHER_KEYS))
            except ValueError as exc:
                raise PolicyError(str(exc), source=source, rule_path=f"{path}.{key}") from exc
    return tuple(out)


def type_name(value: Any) -> str:
    """JSON type name of a Python value (for messages)."""
    for name, types in _JSON_TYPES.items():
        if isinstance(value, types) and not (name in ("integer", "number") and isinstance(value, bool)):
            return name
    return type(value).__name__


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if t == "integer" and isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return True
            continue
        if isinstance(value, _JSON_TYPES[t]):
            return True
    return False


def validate_arg(spec: CompiledArg, value: Any, where: str, paths: m.Paths = m.DEFAULT_PATHS) -> str | None:
    """The first constraint ``value`` breaks, as a sentence; None if it passes.

    ``paths`` is kept for callers; path matchers read ``~`` and relative paths as
    the policy said when it was compiled.
    """
    return _first_error(spec, value, where, ())


def _first_error(spec: CompiledArg, value: Any, where: str, inherited: tuple[m.ValueMatcher, ...]) -> str | None:
    # Matchers on an array reach every item at any depth (a list inside a list, too), so they
    # travel down with the value; an item they cannot check (an object, a number) is refused.
    matchers = inherited + spec.matchers if inherited else spec.matchers
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, which is not a finite number"
    if spec.types is not None and not _type_ok(value, spec.types):
        return f"{where} must be {' or '.join(spec.types)}, got {type_name(value)}"
    if spec.has_const and not _same_json(value, spec.const):
        return f"{where} must equal {spec.const!r}"
    if spec.enum is not None and not any(_same_json(value, e) for e in spec.enum):
        return f"{where} must be one of {spec.enum!r}, got {_short(value)}"
    if isinstance(value, str):
        if spec.min_len is not None and len(value) < spec.min_len:
            return f"{where} is shorter than {spec.min_len} characters"
        if spec.max_len is not None and len(value) > spec.max_len:
            return f"{where} is longer than {spec.max_len} characters"
        if spec.regex is not None and not spec.regex.search(value):
            return f"{where} {_short(value)} does not match pattern {spec.regex.pattern!r}"
        for matcher in matchers:
            refusal = matcher.refusal(value)
            if refusal is not None:
                return f"{where} {_short(value)} {refusal}"
    elif isinstance(value, list | tuple):
        if spec.min_items is not None and len(value) < spec.min_items:
            return f"{where} has fewer than {spec.min_items} items"
        if spec.max_items is not None and len(value) > spec.max_items:
            return f"{where} has more than {spec.max_items} items"
        item_spec = spec.items if spec.items is not None else _NO_CONSTRAINTS
        if spec.items is not None or matchers:
            for i, item in enumerate(value):
                err = _first_error(item_spec, item, f"{where}[{i}]", matchers)
                if err:
                    return err
    elif matchers:
        keys = ", ".join(dict.fromkeys(matcher.key for matcher in matchers))
        return f"{where} is {type_name(value)}, but {keys} can only check a string or a list of strings"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return f"{where} is {value!r}, below the minimum {spec.minimum!r}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{where} is {value!r}, above the maximum {spec.maximum!r}"
        if spec.exclusive_min is not None and value <= spec.exclusive_min:
            return f"{where} is {value!r}, not above {spec.exclusive_min!r}"
        if spec.exclusive_max is not None and value >= spec.exclusive_max:
            return f"{where} is {value!r}, not below {spec.exclusive_max!r}"
    elif isinstance(value, dict) and spec.properties is not None:
        for key, sub in spec.properties.items():
            if key in value:
                err = _first_error(sub, value[key], f"{where}.{key}", ())
                if err:
                    return err
            elif sub.required:
                return f"{where}.{key} is required"
        if not spec.additional:
            extra = [k for k in value if k not in spec.properties]
            if extra:
                return f"{where} has unexpected key(s) {sorted(map(str, extra))!r}"
    return None


_NO_CONSTRAINTS = CompiledArg(
    path="",
    types=None,
    required=False,
    enum=None,
    has_const=False,
    const=None,
    regex=None,
    min_len=None,
    max_len=None,
    minimum=None,
    maximum=None,
    exclusive_min=None,
    exclusive_max=None,
    min_items=None,
    max_items=None,
    items=None,
    properties=None,
    additional=True,
    matchers=(),
    flow=None,
)


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
