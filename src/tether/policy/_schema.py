"""The policy file format, as pydantic models (the reference is docs/policy.md).

These models only describe and validate the file; ``_compile.py`` turns a
validated policy into the compiled model (``_model.py``) a decision evaluates.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Effect = Literal["read", "write"]
JsonType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]

_TAG = r"^[a-z][a-z0-9_-]{0,63}$"
Tag = Annotated[str, Field(pattern=_TAG)]
_FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a JSON Schema ``pattern`` with ECMA-262 anchors: ``$`` is the end of input.

    (Python's ``$`` also matches before a final newline, which would let
    ``"value\\n"`` through ``^value$``.)
    """
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return re.compile("".join(out))


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            compile_pattern(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return value


class Condition(_Strict):
    """A boolean test on the call, its arguments, the session context or history.

    Exactly one of the condition kinds must be given. Argument tests name the
    argument with ``arg`` and combine one or more matchers (all must hold).
    """

    always: bool | None = None
    context: Literal["trusted", "untrusted"] | None = None
    context_has: list[Tag] | None = None
    effect: Effect | None = None
    args_untrusted: bool | None = None
    called: str | None = None
    at_least: int = Field(default=1, ge=1)
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    arg: str | None = None
    exists: bool | None = None
    equals: str | int | float | bool | None = None
    """``null`` is allowed: it holds when the argument is absent or null."""
    in_: list[str | int | float | None] | None = Field(default=None, alias="in")
    pattern: str | None = None
    path_under: list[str] | None = None
    path_glob: list[str] | None = None
    url_host_in: list[str] | None = None
    host_in: list[str] | None = None
    email_domain_in: list[str] | None = None
    idn: bool | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    untrusted: bool | None = None
    grounded: bool | None = None
    from_task: bool | None = None
    has_tags: list[Tag] | None = None

    _pattern_ok = field_validator("pattern")(_check_regex)

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = [
            name
            for name in ("always", "context", "context_has", "effect", "args_untrusted", "called", "all", "any", "not_", "arg")
            if getattr(self, name) is not None
        ]
        if len(kinds) != 1:
            shown = [k.rstrip("_") for k in kinds]
            raise ValueError(
                "a condition needs exactly one of always, context, context_has, effect, "
                f"args_untrusted, called, all, any, not, arg (got {shown or 'none'})"
            )
        matchers = [
            name
            for name in (
                "exists",
                "in_",
                "pattern",
                "path_under",
                "path_glob",
                "url_host_in",
                "host_in",
                "email_domain_in",
                "gt",
                "ge",
                "lt",
                "le",
                "untrusted",
                "grounded",
                "from_task",
                "has_tags",
            )
            if getattr(self, name) is not None
        ]
        if "equals" in self.model_fields_set:
            matchers.append("equals")
        if self.arg is None and matchers:
            raise ValueError(f"matcher(s) {[m.rstrip('_') for m in matchers]} need 'arg'")
        if self.arg is not None and not matchers:
            raise ValueError(f"condition on arg {self.arg!r} needs at least one matcher")
        if self.idn and not (self.url_host_in is not None or self.host_in is not None or self.email_domain_in is not None):
            raise ValueError("'idn' only goes with url_host_in, host_in or email_domain_in")
        if self.called is None and "at_least" in self.model_fields_set:
            raise ValueError("'at_least' only goes with 'called'")
        return self


class FlowRule(_Strict):
    """What may flow into an argument, judged by where its value came from."""

    require: Literal["trusted", "any"] | None = None
    """``trusted``: every value must be grounded in trusted data; ``any``: no requirement
    (it overrides a default flow rule's ``require`` for the leaves under this rule)."""
    forbid: list[Tag] = Field(default_factory=list)
    """Confidentiality tags the value must not carry (``[]`` given explicitly overrides a
    default flow rule's ``forbid`` for the leaves under this rule)."""
    unless: Condition | None = None
    """The rule does not apply when this condition holds."""
    on_violation: Literal["deny", "ask"] = "deny"
    """What a violation yields."""
    on_inherited: Literal["deny", "ask"] | None = None
    """What a violation yields when the offending value was found in no source and took the
    session's context label (default: ``on_violation``)."""

    @model_validator(mode="after")
    def _not_empty(self) -> FlowRule:
        if self.require is None and "forbid" not in self.model_fields_set:
            raise ValueError("a flow rule needs 'require' or 'forbid'")
        return self


FlowRules = FlowRule | list[FlowRule]
"""One flow rule, or several (each applies)."""


class ArgSpec(_Strict):
    """Constraints on one argument: a JSON Schema subset plus semantic matchers."""

    type: JsonType | list[JsonType] | None = None
    description: str | None = None
    required: bool = False
    enum: list[Any] | None = None
    const: Any = None
    pattern: str | None = None
    minLength: int | None = Field(default=None, ge=0)
    maxLength: int | None = Field(default=None, ge=0)
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None
    exclusiveMaximum: float | None = None
    minItems: int | None = Field(default=None, ge=0)
    maxItems: int | None = Field(default=None, ge=0)
    items: ArgSpec | None = None
    properties: dict[str, ArgSpec] | None = None
    additionalProperties: bool = True
    path_under: list[str] | None = None
    url_host_in: list[str] | None = None
    host_in: list[str] | None = None
    email_domain_in: list[str] | None = None
    idn: bool | None = None
    flow: FlowRules | None = None

    _pattern_ok = field_validator("pattern")(_check_regex)

    @field_validator("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"bound must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ArgSpec:
        pairs = (
            ("minimum", "maximum"),
            ("minLength", "maxLength"),
            ("minItems", "maxItems"),
        )
        for lo, hi in pairs:
            low, high = getattr(self, lo), getattr(self, hi)
            if low is not None and high is not None and low > high:
                raise ValueError(f"contradictory bounds: {lo}={low!r} is greater than {hi}={high!r}")
        if self.idn and not (self.url_host_in is not None or self.host_in is not None or self.email_domain_in is not None):
            raise ValueError("'idn' only goes with url_host_in, host_in or email_domain_in")
        if self.enum is not None and len(self.enum) == 0:
            raise ValueError("'enum' is empty: no value could ever pass")
        if self.enum is not None and self.pattern is not None:
            regex = compile_pattern(self.pattern)
            bad = [v for v in self.enum if isinstance(v, str) and not regex.search(v)]
            if bad:
                raise ValueError(f"enum value(s) {bad!r} can never match pattern {self.pattern!r}")
        return self


class OutputLabel(_Strict):
    """A conditional label for a tool's output; entries apply in order, later ones win."""

    when: Condition
    integrity: Literal["trusted", "untrusted"] | None = None
    """Sets the output's integrity (raises or lowers it)."""
    tags: list[Tag] = Field(default_factory=list)
    """Confidentiality tags added to the output."""
    remove_tags: list[Tag] | None = None
    """Confidentiality tags removed from the output (those added by ``output_tags`` or earlier entries)."""


class RuleSpec(_Strict):
    """An ask or deny rule: when the condition holds, the rule fires."""

    when: Condition
    reason: str | None = None
    name: str | None = None


class ToolBudget(_Strict):
    """Per-tool budget."""

    max_calls: int | None = Field(default=None, ge=0)


class ToolSpec(_Strict):
    """Everything the policy says about one tool."""

    description: str | None = None
    effect: Effect | None = None
    """Required once the policy is resolved (a policy that ``extends`` another may leave it to the base)."""
    write_when: Condition | None = None
    """The call counts as a write when this condition (on argument values only) holds."""
    output: Literal["trusted", "untrusted"] = "untrusted"
    output_tags: list[Tag] = Field(default_factory=list)
    labels: list[OutputLabel] = Field(default_factory=list)
    args: dict[str, ArgSpec] = Field(default_factory=dict)
    additional_args: Literal["deny", "allow"] = "deny"
    deny: list[RuleSpec] = Field(default_factory=list)
    ask: list[RuleSpec] = Field(default_factory=list)
    budget: ToolBudget | None = None
    spend: str | None = None
    flow: FlowRules | None = None
    """Default flow rule(s) for every argument leaf that no flow rule of its own covers."""
    output_readers: list[Annotated[str, Field(pattern=_FIELD_PATH)]] | None = None
    """Fields of the output (dotted paths into its JSON or YAML form) that name the principals allowed
    to read it (a file's sharing list and owner, an email's sender and recipients); see docs/policy.md."""
    recipients: list[str] = Field(default_factory=list)
    """Arguments naming who a write sends data to: every principal in them must be allowed to read
    the data flowing into the call (``readers`` at the top of the policy)."""

    intent: Literal["required", "any"] | None = None
    """``required``: once the session has read untrusted data, a write call of this tool asks
    unless it is inside an approved plan or the task scope, whatever its values' labels
    (the decision to act may come from an injected instruction). ``any``: the tool states no
    such rule itself (a policy-level ``intent`` glob still applies; a policy that ``extends``
    one saying ``required`` cannot say ``any``)."""


class ReadersSettings(_Strict):
    """What a write whose recipients fall outside the data's readers gets."""

    outside: Literal["ask", "deny"] = "ask"
    context: bool = False
    """Also hold every recipient to the context's readers (everything the session read), not only
    to the readers of the values the call carries."""


class OutflowSettings(_Strict):
    """What a call whose short pieces spell a run of confidential data gets (outflow accounting)."""

    on_trace: Literal["ask", "deny"] = "ask"
    max_short_chars: int | None = Field(default=4096, ge=1)
    """Characters of short confidential pieces one sink may send before each ask, whether or not
    they spell anything (pieces hidden between other pieces); null: no such limit."""


class PlanSettings(_Strict):
    """How plans (``Session.declare_plan``) are used."""

    outside: Literal["ask", "deny"] = "ask"
    """What a write outside every approved plan gets once the session has read untrusted data
    (only in a session with an approved plan)."""


class Budgets(_Strict):
    """Session-wide budgets; a call that would exceed one is denied."""

    max_calls: int | None = Field(default=None, ge=0)
    max_writes: int | None = Field(default=None, ge=0)
    max_spend: float | None = Field(default=None, ge=0)
    max_wall_time_s: float | None = Field(default=None, gt=0)


class Rate(_Strict):
    """At most ``max`` allowed calls to the matching tools in any ``window_s`` seconds."""

    tools: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    max: int = Field(ge=0)
    window_s: float = Field(gt=0)


class PrincipalBudgets(_Strict):
    """Budgets shared by every session of one principal (fleet budgets); a call that would
    exceed one is denied, whichever session or process makes it."""

    max_calls: int | None = Field(default=None, ge=0)
    max_writes: int | None = Field(default=None, ge=0)
    max_spend: float | None = Field(default=None, ge=0)
    tool_calls: dict[str, int] = Field(default_factory=dict)
    """At most this many allowed calls to each named tool, over all the principal's sessions."""
    rates: list[Rate] = Field(default_factory=list)
    """At most ``max`` allowed calls to the matching tools in any ``window_s`` seconds, over all sessions."""

    @property
    def active(self) -> bool:
        """Whether any budget is set (then every allowed call is reserved in the principal's ledger)."""
        return any(v is not None for v in (self.max_calls, self.max_writes, self.max_spend)) or bool(self.tool_calls or self.rates)


class Checkin(_Strict):
    """When a human must look again: after ``after_writes`` writes or ``after_minutes`` minutes since a
    human last answered an ask or checked in (``tether sessions checkin``), the next write asks."""

    after_writes: int | None = Field(default=None, ge=1)
    after_minutes: float | None = Field(default=None, gt=0)


class Limits(_Strict):
    """Hard limits on the shape of arguments."""

    max_arg_bytes: int = Field(default=1 << 20, ge=1)
    max_depth: int = Field(default=32, ge=1, le=256)


class EffectDefaults(_Strict):
    """Defaults for the calls of one effect."""

    flow: FlowRules | None = None
    """Default flow rule(s) for every argument leaf no rule of its own (or of its tool) covers."""


class Defaults(_Strict):
    """Policy-wide defaults, by the effective effect of a call."""

    read: EffectDefaults | None = None
    write: EffectDefaults | None = None


class PolicySpec(_Strict):
    """A whole policy file."""

    tether: Literal[1] = Field(description="format version")
    name: str = Field(min_length=1)
    description: str | None = None
    extends: list[str] | None = None
    """Policy files (or shipped policies, ``tether:NAME``) this one builds on; it may only add restrictions."""
    default: Literal["deny", "ask"] = "deny"
    home: str = "/root"
    workdir: str | None = None
    lexical_paths: bool | None = None
    """Path matchers resolve ``..`` by text instead of refusing it (only where no directory the
    tools reach is a symlink); unset (None) keeps the policy's hash as before the key existed."""
    constants: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    budgets: Budgets = Field(default_factory=Budgets)
    rates: list[Rate] = Field(default_factory=list)
    principal_budgets: PrincipalBudgets | None = None
    """Budgets shared by all sessions of one principal (kept in the principal's ledger)."""
    checkin: Checkin | None = None
    """When the next write must ask because no human has looked for a while."""
    approval_timeout_s: float = Field(default=300.0, gt=0)
    ask: list[RuleSpec] = Field(default_factory=list)
    deny: list[RuleSpec] = Field(default_factory=list)
    defaults: Defaults | None = None
    readers: ReadersSettings = Field(default_factory=ReadersSettings)
    outflow: OutflowSettings = Field(default_factory=OutflowSettings)
    intent: list[str] = Field(default_factory=list)
    """Tool name globs whose write calls need the task's intent (as ``intent: required`` on each)."""
    plans: PlanSettings = Field(default_factory=PlanSettings)
    """How declared plans are used."""
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
