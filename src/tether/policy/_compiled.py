"""A loaded policy, compiled for fast evaluation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tether.errors import PolicyError
from tether.flow import UNTRUSTED, Integrity, Label, label, walk_leaves
from tether.policy import _matchers as m
from tether.policy._compose import resolve_policy
from tether.policy._conditions import CallView, Predicate, Scope, compile_condition
from tether.policy._loader import policy_hash, prune_invalid, read_document, read_policy_file
from tether.policy._problems import Locate, PolicyWarning, Problems, parent_path
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

_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
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
    """Its rule path (``tools.pay.args.to.flow``), the rule id in reasons."""
    require_trusted: bool
    """Every leaf must be grounded in trusted data."""
    forbid: frozenset[str]
    """Tags no leaf may carry."""
    unless: Predicate | None
    """When this holds for the call, the rule does not apply."""
    on_violation: str
    """``deny`` or ``ask``."""
    on_inherited: str = "deny"
    """What a violation yields when the leaf was found in no source (its label is the context's)."""
    states_require: bool = False
    """The rule says something about ``require`` (so a default's ``require`` does not apply under it)."""
    states_forbid: bool = False
    """The rule says something about ``forbid`` (so a default's ``forbid`` does not apply under it)."""

    def without(self, require: bool, forbid: bool) -> CompiledFlow | None:
        """This rule with the named components left out (None when nothing is left)."""
        if not require and not forbid:
            return self
        kept = replace(
            self,
            require_trusted=self.require_trusted and not require,
            forbid=frozenset() if forbid else self.forbid,
            states_require=self.states_require and not require,
            states_forbid=self.states_forbid and not forbid,
        )
        return kept if kept.require_trusted or kept.forbid else None


class DefaultFlows:
    """The default flow rules of one tool for calls of one effect: the tool's ``flow``, then the
    policy's ``defaults.EFFECT.flow``, each applying the components that nearer rules leave open."""

    __slots__ = ("_cache", "_policy", "_tool")

    def __init__(self, tool: tuple[CompiledFlow, ...], policy: tuple[CompiledFlow, ...]) -> None:
        self._tool = tool
        self._policy = policy
        self._cache: dict[tuple[bool, bool], tuple[CompiledFlow, ...]] = {}

    def effective(self, own: tuple[CompiledFlow, ...]) -> tuple[CompiledFlow, ...]:
        """``own`` (the rules covering a leaf) plus the default components they do not state."""
        require = any(r.states_require for r in own)
        forbid = any(r.states_forbid for r in own)
        added = self._cache.get((require, forbid))
        if added is None:
            out: list[CompiledFlow] = []
            for rule in self._tool:
                kept = rule.without(require, forbid)
                if kept is not None:
                    out.append(kept)
            tool_require = require or any(r.states_require for r in self._tool)
            tool_forbid = forbid or any(r.states_forbid for r in self._tool)
            for rule in self._policy:
                kept = rule.without(tool_require, tool_forbid)
                if kept is not None:
                    out.append(kept)
            added = self._cache[(require, forbid)] = tuple(out)
        return own + added if own else added


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
    flows: tuple[CompiledFlow, ...] = ()
    """Flow rules written at this position: they apply to every leaf under it."""
    flows_below: bool = False
    """Some position inside ``items``/``properties`` has flow rules of its own."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An ask or deny rule."""

    rule: str
    when: Predicate
    reason: str


@dataclass(frozen=True, slots=True)
class LabelRule:
    """One conditional output label entry."""

    when: Predicate
    """The condition, read on the restricting side (for what the entry raises)."""
    when_lowering: Predicate
    """The condition, read on the permitting side (for what the entry lowers)."""
    integrity: Integrity | None
    add: frozenset[str]
    remove: frozenset[str]


@dataclass(slots=True)
class CompiledTool:
    """Everything the guard needs about one tool."""

    name: str
    effect: Effect
    """The effect the policy gives the tool (see :meth:`effect_of` for a given call)."""
    output_label: Label
    label_rules: list[LabelRule]
    args: dict[str, CompiledArg]
    required: tuple[str, ...]
    additional_args: bool
    deny: list[CompiledRule]
    ask: list[CompiledRule]
    max_calls: int | None
    spend_arg: str | None
    write_when: Predicate | None = None
    """The call is a write when this holds (only argument values are tested)."""
    flows: list[tuple[str, CompiledFlow]] = field(default_factory=list)
    """Every flow rule written under an argument, with the argument's name."""
    tool_flows: tuple[CompiledFlow, ...] = ()
    """The tool's default flow rules (``tools.NAME.flow``)."""
    default_flows: dict[str, tuple[CompiledFlow, ...]] = field(default_factory=dict)
    """The policy's default flow rules for a call of each effect (``defaults.EFFECT.flow``)."""
    deny_all: tuple[CompiledRule, ...] = ()
    """This tool's deny rules, then the policy-wide ones."""
    ask_all: tuple[CompiledRule, ...] = ()
    """This tool's ask rules, then the policy-wide ones."""
    _defaults: dict[str, DefaultFlows] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for effect in ("read", "write"):
            policy = self.default_flows.get(effect, ())
            if self.tool_flows or policy:
                self._defaults[effect] = DefaultFlows(self.tool_flows, policy)

    def defaults_for(self, effect: str) -> DefaultFlows | None:
        """The default flow rules for a call of ``effect`` (None when there are none)."""
        return self._defaults.get(effect)

    def effect_of(self, args: Any, view: CallView | None = None) -> Effect:
        """The effect of a call with ``args``: ``write`` when the tool is a write tool or its
        ``write_when`` holds. Depends on the argument values only, so the same call always has
        the same effect (when it is decided, counted, replayed)."""
        if self.write_when is None or self.effect == "write":
            return self.effect
        if view is None:
            if not isinstance(args, dict):
                return self.effect
            view = _ValuesView(self.name, self.effect, args)
        return "write" if self.write_when(view) else self.effect

    def policy_label(self, view: CallView | None) -> Label:
        """The output label the policy gives this call: ``output``/``output_tags``, then each
        matching ``labels`` entry in order (a later entry's integrity wins; tags are added, then
        removed)."""
        result = self.output_label
        if view is None or not self.label_rules:
            return result
        integrity = result.integrity
        tags = set(result.tags)
        for rule in self.label_rules:
            if (rule.integrity == "untrusted" or rule.add) and rule.when(view):
                if rule.integrity == "untrusted":
                    integrity = "untrusted"
                tags |= rule.add
            if (rule.integrity == "trusted" or rule.remove) and rule.when_lowering(view):
                if rule.integrity == "trusted":
                    integrity = "trusted"
                tags -= rule.remove
        return label(integrity, tags)


class Policy:
    """A validated, compiled policy. Identified by :attr:`hash` of its normalised content."""

    def __init__(
        self,
        spec: PolicySpec,
        *,
        source: str = "<string>",
        text: str | None = None,
        locate: Locate | None = None,
        sources: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        """The validated document (with everything it ``extends`` merged in)."""
        self.source = source
        """Where it was loaded from."""
        self.text = text
        """The original YAML, when known (a policy that ``extends`` others: this file's text only)."""
        self.sources = sources or (source,)
        """Every file that contributed (bases first); one for a policy without ``extends``."""
        self.hash = policy_hash(spec)
        """``sha256:...`` of the normalised content (after ``extends`` is merged in)."""
        self.name = spec.name
        """The policy's name."""
        self.paths = m.Paths(spec.home, spec.workdir or spec.home)
        """How paths are read: ``~`` is ``home``; relative paths start at ``workdir``."""
        problems = Problems(locate or (lambda path: (source, None)))
        tool_names = frozenset(spec.tools)
        known_tools = tool_names if spec.default == "deny" else None
        policy_scope = Scope(problems, self.paths, tools=known_tools)
        defaults: dict[str, tuple[CompiledFlow, ...]] = {}
        for effect in ("read", "write"):
            entry = getattr(spec.defaults, effect) if spec.defaults is not None else None
            defaults[effect] = _compile_flows(entry.flow if entry else None, f"defaults.{effect}.flow", policy_scope)
        self.tools: dict[str, CompiledTool] = {}
        for name, tool in spec.tools.items():
            if not _TOOL_NAME.fullmatch(name):
                problems.error(f"invalid tool name {name!r} (use letters, digits and _.:/-, at most 128)", f"tools.{name}")
            self.tools[name] = _compile_tool(name, tool, self.paths, problems, known_tools, defaults)
        self.deny_rules = [_compile_rule(r, f"deny[{i}]", policy_scope) for i, r in enumerate(spec.deny)]
        self.ask_rules = [_compile_rule(r, f"ask[{i}]", policy_scope) for i, r in enumerate(spec.ask)]
        self._rate_cache: dict[str, list[tuple[str, int, float]]] = {}
        self._stand_ins: dict[str, CompiledTool] = {}
        for compiled in self.tools.values():
            compiled.deny_all = (*compiled.deny, *self.deny_rules)
            compiled.ask_all = (*compiled.ask, *self.ask_rules)
        self.rates = [(f"rates[{i}]", tuple(r.tools), r.max, r.window_s) for i, r in enumerate(spec.rates)]
        for rule, globs, _, _ in self.rates:
            for j, glob in enumerate(globs):
                if not any(m.name_glob(name, (glob,)) for name in tool_names):
                    if spec.default == "deny":
                        problems.error(
                            f"tool glob {glob!r} matches no tool of this policy, so the rate never applies", f"{rule}.tools[{j}]"
                        )
                    else:  # under default: ask, tools the policy does not name are counted too
                        problems.warn(
                            f"tool glob {glob!r} matches no tool the policy names (it counts unnamed tools only)", f"{rule}.tools[{j}]"
                        )
        problems.raise_if_any()
        self.warnings: tuple[PolicyWarning, ...] = tuple(problems.warnings)
        """Things that are allowed but probably mistakes (conditions that can never hold, ...)."""

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", *, base_dir: str | Path | None = None) -> Policy:
        """Parse and compile a policy from YAML text. Relative ``extends`` entries are read
        from ``base_dir`` (default: the current directory)."""
        try:
            spec, resolved = resolve_policy(text, source, Path(base_dir) if base_dir is not None else None)
        except PolicyError as exc:
            raise _with_semantic_problems(exc, text, source) from None
        return cls(spec, source=source, text=text, locate=resolved.locate, sources=tuple(resolved.sources))

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy file (``extends`` entries are read relative to its folder)."""
        text = read_policy_file(path)
        return cls.from_yaml(text, source=str(path), base_dir=Path(path).parent)

    def tool_for(self, name: str) -> CompiledTool | None:
        """The compiled tool that decides and counts calls to ``name``.

        A tool the policy does not name is None under ``default: deny``. Under ``default: ask`` it
        is a stand-in that may do anything: its output is untrusted, it counts as a write, and the
        policy-wide deny and ask rules, budgets and rates apply to it as to any tool (a human's
        answer satisfies the ask; it never lifts a budget).
        """
        tool = self.tools.get(name)
        if tool is not None or self.spec.default != "ask":
            return tool
        found = self._stand_ins.get(name)
        if found is not None:
            return found
        found = CompiledTool(
            name=name,
            effect="write",
            output_label=UNTRUSTED,
            label_rules=[],
            args={},
            required=(),
            additional_args=True,
            deny=[],
            ask=[],
            max_calls=None,
            spend_arg=None,
            deny_all=tuple(self.deny_rules),
            ask_all=tuple(self.ask_rules),
        )
        if len(self._stand_ins) < 10_000:
            self._stand_ins[name] = found
        return found

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


def _with_semantic_problems(exc: PolicyError, text: str, source: str) -> PolicyError:
    """``exc`` plus the errors compiling would find in the rest of the file, so that a user
    sees every problem at once. (Only for a file without ``extends``, whose rules are all here.)"""
    try:
        doc = read_document(text, source)
    except PolicyError:
        return exc
    if "extends" in doc.data or any(p.source != source for p in exc.problems):
        return exc
    pruned = prune_invalid(doc.data, list(exc.problems))
    if pruned is None:
        return exc
    try:
        Policy(pruned, source=source, locate=lambda path: (source, doc.line_of(path)))
    except PolicyError as more:
        seen = {(p.rule_path, p.message) for p in exc.problems}
        # A key that is missing next to an unknown key is most likely the same key misspelt.
        misspelt = {parent_path(p.rule_path) for p in exc.problems if p.message.startswith("unknown key")}
        extra = [
            p
            for p in more.problems
            if (p.rule_path, p.message) not in seen
            and not any(_under(p.rule_path, q.rule_path) for q in exc.problems)
            and not (p.message.startswith("missing required key") and parent_path(p.rule_path) in misspelt)
        ]
        return PolicyError.collect(sorted([*exc.problems, *extra], key=lambda p: (p.line or 0, p.rule_path)))
    return exc


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith((root + ".", root + "["))


class _ValuesView:
    """A call seen through its argument values only (for ``write_when`` outside a decision)."""

    def __init__(self, tool: str, effect: Effect, args: dict[str, Any]) -> None:
        self.tool = tool
        self.effect = effect
        self.args = args
        self.context = label("trusted")

    @property
    def task(self) -> str:
        return ""

    def leaves(self, arg: str) -> list[_ValueLeaf]:
        if arg not in self.args:
            return []
        raw: list[tuple[str, Any]] = []
        walk_leaves(self.args[arg], arg, raw)  # the same leaves as the session's walk
        return [_ValueLeaf(path, value) for path, value in raw]

    def any_arg_untrusted(self) -> bool:
        return False

    def calls_of(self, tool: str) -> int:
        return 0


@dataclass(slots=True)
class _ValueLeaf:
    path: str
    value: Any
    label: Label = field(default_factory=lambda: label("trusted"))
    found: bool = False
    trusted_source: bool = False
    sources: tuple[str, ...] = ()


def _compile_rule(rule: RuleSpec, path: str, scope: Scope) -> CompiledRule:
    pred = compile_condition(rule.when, f"{path}.when", scope)
    name = rule.name or path
    return CompiledRule(rule=name, when=pred, reason=rule.reason or f"rule {name} matched")


def _compile_tool(
    name: str,
    tool: ToolSpec,
    paths: m.Paths,
    problems: Problems,
    known_tools: frozenset[str] | None,
    defaults: dict[str, tuple[CompiledFlow, ...]],
) -> CompiledTool:
    base = f"tools.{name}"
    if tool.effect is None:
        problems.error("missing required key 'effect'", f"{base}.effect")
    effect: Effect = tool.effect or "write"
    effects: frozenset[Effect] = frozenset({effect, "write"}) if tool.write_when is not None else frozenset({effect})
    arg_scope = Scope(problems, paths, args=frozenset(tool.args), effects=effects, tools=known_tools)
    args = {arg: _compile_arg(spec, f"{base}.args.{arg}", arg_scope, "argument") for arg, spec in tool.args.items()}

    def check_value(arg: str, value: Any) -> str | None:
        spec = args.get(arg)
        return validate_arg(spec, value, f"argument {arg!r}", paths) if spec is not None else None

    arg_scope = replace(arg_scope, check_value=check_value)
    label_rules = [_compile_label(lab, f"{base}.labels[{i}]", arg_scope) for i, lab in enumerate(tool.labels)]
    write_when = None
    if tool.write_when is not None:
        if tool.effect == "write":
            problems.warn("'write_when' has no effect on a write tool", f"{base}.write_when")
        write_when = compile_condition(tool.write_when, f"{base}.write_when", replace(arg_scope, values_only=True))
    if tool.spend is not None:
        if tool.spend not in args:
            problems.error(f"'spend' names argument {tool.spend!r}, which the tool does not declare", f"{base}.spend")
        else:
            types = args[tool.spend].types
            if types is None or not set(types) <= {"number", "integer"}:
                problems.error(f"'spend' argument {tool.spend!r} must declare type number or integer (and nothing else)", f"{base}.spend")
    compiled = CompiledTool(
        name=name,
        effect=effect,
        output_label=label(tool.output, tool.output_tags),
        label_rules=label_rules,
        args=args,
        required=tuple(a for a, spec in tool.args.items() if spec.required),
        additional_args=tool.additional_args == "allow",
        deny=[_compile_rule(r, f"{base}.deny[{i}]", arg_scope) for i, r in enumerate(tool.deny)],
        ask=[_compile_rule(r, f"{base}.ask[{i}]", arg_scope) for i, r in enumerate(tool.ask)],
        max_calls=tool.budget.max_calls if tool.budget else None,
        spend_arg=tool.spend,
        write_when=write_when,
        tool_flows=_compile_flows(tool.flow, f"{base}.flow", arg_scope),
        default_flows=defaults,
    )
    for arg, spec in args.items():
        compiled.flows.extend((arg, flow) for flow in _flows_under(spec))
    return compiled


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
    for i, value in enumerate(compiled.enum or []):
        why = validate_arg(compiled, value, "it", scope.paths)
        if why is not None:
            problems.error(f"enum value {value!r} can never pass the other constraints: {why}", f"{path}.enum[{i}]")
    if compiled.has_const and compiled.enum is None:
        why = validate_arg(compiled, compiled.const, "it", scope.paths)
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
        enum=list(spec.enum) if spec.enum is not None else None,
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
