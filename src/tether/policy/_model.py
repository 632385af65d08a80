"""The compiled policy: what a decision evaluates, built once by ``_compile.py`` and never changed.

Every type here is a frozen dataclass whose containers are tuples or read-only mappings, so
a compiled policy can be shared by any number of sessions and threads. ``_compile.py`` builds
it from a :class:`~tether.policy._schema.PolicySpec`; ``_validate.py`` checks argument values
against a :class:`CompiledArg`; the monitor (:mod:`tether.monitor`) evaluates the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tether.flow import UNTRUSTED, Integrity, Label, label, walk_leaves
from tether.policy import _matchers as m
from tether.policy._conditions import CallView, Predicate
from tether.policy._problems import PolicyWarning
from tether.policy._schema import Effect

_Flows = tuple["CompiledFlow", ...]


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


@dataclass(frozen=True, slots=True)
class DefaultFlows:
    """The default flow rules of one tool for calls of one effect: the tool's ``flow``, then the
    policy's ``defaults.EFFECT.flow``, each applying the components that nearer rules leave open."""

    added: Mapping[tuple[bool, bool], _Flows]
    """The default rules that apply under rules stating (``require``, ``forbid``), for all four cases."""

    @classmethod
    def build(cls, tool: _Flows, policy: _Flows) -> DefaultFlows:
        """The defaults from the tool's own ``flow`` rules and the policy's for one effect."""
        return cls({(require, forbid): _added(tool, policy, require, forbid) for require in (False, True) for forbid in (False, True)})

    def effective(self, own: _Flows) -> _Flows:
        """``own`` (the rules covering a leaf) plus the default components they do not state."""
        added = self.added[(any(r.states_require for r in own), any(r.states_forbid for r in own))]
        return own + added if own else added


def _added(tool: _Flows, policy: _Flows, require: bool, forbid: bool) -> _Flows:
    out = [kept for rule in tool if (kept := rule.without(require, forbid)) is not None]
    tool_require = require or any(r.states_require for r in tool)
    tool_forbid = forbid or any(r.states_forbid for r in tool)
    out += [kept for rule in policy if (kept := rule.without(tool_require, tool_forbid)) is not None]
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompiledArg:
    """Constraints of one argument (recursively for arrays and objects)."""

    path: str
    """Its rule path (``tools.pay.args.amount``), the rule id in reasons."""
    types: tuple[str, ...] | None
    required: bool
    enum: tuple[Any, ...] | None
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
    properties: Mapping[str, CompiledArg] | None
    additional: bool
    matchers: tuple[m.ValueMatcher, ...]
    """Semantic matchers (``path_under``, ``url_host_in``, ...); on an array they apply to every item."""
    flows: _Flows = ()
    """Flow rules written at this position: they apply to every leaf under it."""
    flows_below: bool = False
    """Some position inside ``items``/``properties`` has flow rules of its own."""


NO_CONSTRAINTS = CompiledArg(
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
"""A position that accepts any value (an array item when only the array has matchers)."""


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


@dataclass(frozen=True, slots=True)
class CompiledTool:
    """Everything the guard needs about one tool."""

    name: str
    effect: Effect
    """The effect the policy gives the tool (see :meth:`effect_of` for a given call)."""
    output_label: Label
    label_rules: tuple[LabelRule, ...]
    args: Mapping[str, CompiledArg]
    required: tuple[str, ...]
    additional_args: bool
    deny: tuple[CompiledRule, ...]
    """This tool's own deny rules."""
    ask: tuple[CompiledRule, ...]
    """This tool's own ask rules."""
    max_calls: int | None
    spend_arg: str | None
    deny_all: tuple[CompiledRule, ...]
    """This tool's deny rules, then the policy-wide ones."""
    ask_all: tuple[CompiledRule, ...]
    """This tool's ask rules, then the policy-wide ones."""
    write_when: Predicate | None = None
    """The call is a write when this holds (only argument values are tested)."""
    flows: tuple[tuple[str, CompiledFlow], ...] = ()
    """Every flow rule written under an argument, with the argument's name."""
    defaults: Mapping[str, DefaultFlows] = field(default_factory=dict)
    """The default flow rules for a call of each effect (only effects that have some)."""
    output_readers: tuple[tuple[str, ...], ...] | None = None
    """Paths (field names) into the output naming who may read it; None: the policy restricts no readers."""
    recipients: tuple[str, ...] = ()
    """Arguments naming the principals a call sends data to."""
    intent_required: bool = False
    """Once the session has read untrusted data, a write of this tool needs the task's intent
    (an approved plan, the task scope, or an ask)."""

    @classmethod
    def stand_in(cls, name: str, deny_all: tuple[CompiledRule, ...], ask_all: tuple[CompiledRule, ...]) -> CompiledTool:
        """A tool the policy does not name, under ``default: ask``: it may do anything, its
        output is untrusted, it counts as a write, and only the policy-wide rules apply."""
        return cls(
            name=name,
            effect="write",
            output_label=UNTRUSTED,
            label_rules=(),
            args={},
            required=(),
            additional_args=True,
            deny=(),
            ask=(),
            max_calls=None,
            spend_arg=None,
            deny_all=deny_all,
            ask_all=ask_all,
        )

    def defaults_for(self, effect: str) -> DefaultFlows | None:
        """The default flow rules for a call of ``effect`` (None when there are none)."""
        return self.defaults.get(effect)

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


@dataclass(frozen=True, slots=True)
class RateRule:
    """A rate limit (``rates[i]``): at most ``limit`` calls to matching tools per ``window_s``."""

    rule: str
    """Its rule path (``rates[0]``)."""
    tools: tuple[str, ...]
    """Tool name globs it counts."""
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Everything compiled from one policy document."""

    paths: m.Paths
    """How paths are read: ``~`` is ``home``; relative paths start at ``workdir``."""
    tools: Mapping[str, CompiledTool]
    """The tools the policy names."""
    deny_rules: tuple[CompiledRule, ...]
    """The policy-wide deny rules."""
    ask_rules: tuple[CompiledRule, ...]
    """The policy-wide ask rules."""
    rates: tuple[RateRule, ...]
    warnings: tuple[PolicyWarning, ...]
    """Things that are allowed but probably mistakes (conditions that can never hold, ...)."""


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
