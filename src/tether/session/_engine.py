"""The decision procedure: one pure function from (policy, state, call, time) to a Decision.

Order of checks: session status, known tool, argument shape and constraints,
task scope, deny rules, flow rules, budgets and rates (all denials are
collected), then ask rules. Any exception becomes a deny: the guard fails closed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tether._decision import Decision, Reason, ToolCall, Verdict
from tether.approvals import MAX_PENDING_APPROVALS
from tether.flow import Label, Origin, walk_leaves
from tether.policy import CompiledTool, Policy, same_value, validate_arg
from tether.session._flow_rules import check_flows
from tether.session._state import SessionState


class Leaf:
    """One scalar inside an argument, with where it came from (see :class:`tether.flow.Origin`)."""

    __slots__ = ("found", "inherited", "label", "path", "sources", "trusted_source", "value")

    def __init__(self, path: str, value: Any, origin: Origin) -> None:
        self.path = path
        self.value = value
        self.label: Label = origin.label
        self.found = origin.found
        self.inherited = origin.inherited
        """The label is the context label: the value was found nowhere (or is a boolean or null)."""
        self.trusted_source = origin.found and not origin.label.untrusted
        self.sources = origin.sources


class CheckView:
    """The call under check, as conditions see it (implements ``CallView``)."""

    __slots__ = ("_cache", "_declared", "_state", "args", "context", "effect", "tool")

    @property
    def task(self) -> str:
        """The session's task text, normalised."""
        return self._state.task_norm

    def __init__(self, state: SessionState, tool: CompiledTool, args: dict[str, Any]) -> None:
        self.tool = tool.name
        self._declared = tool.args
        self.effect = tool.effect
        self.args = args
        self.context = state.context
        self._state = state
        self._cache: dict[str, list[Leaf]] = {}
        if tool.write_when is not None:
            self.effect = tool.effect_of(args, self)

    def leaves(self, arg: str) -> list[Leaf]:
        cached = self._cache.get(arg)
        if cached is not None:
            return cached
        value = self.args.get(arg)
        if value is None and arg not in self.args:
            out: list[Leaf] = []
        elif isinstance(value, dict | list | tuple):
            raw: list[tuple[str, Any]] = []
            walk_leaves(value, arg, raw)
            out = [self._leaf(path, v) for path, v in raw]
        else:
            out = [self._leaf(arg, value)]
        self._cache[arg] = out
        return out

    def leaf(self, path: str, value: Any) -> Leaf:
        """One leaf with its provenance (for leaves found by walking an argument's value)."""
        return self._leaf(path, value)

    def _leaf(self, path: str, value: Any) -> Leaf:
        return Leaf(path, value, self._state.flow.origin(value))

    def any_arg_untrusted(self) -> bool:
        if not self.context.untrusted:
            return False  # nothing untrusted has been read: no value can be untrusted
        for name in self.args:
            if name not in self._declared and self._leaf(f"{{{name}}}", name).label.untrusted:
                return True  # a name the tool does not declare is data the model chose (additional_args)
            for leaf in self.leaves(name):
                if leaf.label.untrusted and not (leaf.value is None or isinstance(leaf.value, bool)):
                    return True
        return False

    def calls_of(self, tool: str) -> int:
        return self._state.per_tool.get(tool, 0)


def check_shape(args: Any, max_bytes: int, max_depth: int) -> str | None:
    """Reject arguments that are not plain JSON-like data of bounded size and depth."""
    if not isinstance(args, dict):
        return f"arguments must be an object, got {type(args).__name__}"
    # Fast path: a flat object of ASCII strings and small numbers (most calls).
    total = 0
    for k, v in args.items():
        kind = type(v)
        if type(k) is not str:
            break
        if kind is str:
            if not v.isascii():
                break
            total += len(k) + len(v)
        elif kind is int:
            if not -(1 << 63) <= v < (1 << 64):
                break
            total += len(k) + 8
        elif v is None or kind is bool or (kind is float and math.isfinite(v)):
            total += len(k) + 8
        else:
            break
    else:
        return None if total <= max_bytes else f"arguments are larger than {max_bytes} characters"
    return _check_shape_walk(args, max_bytes, max_depth)


def _check_shape_walk(args: dict[str, Any], max_bytes: int, max_depth: int) -> str | None:
    total = 0
    stack: list[tuple[Any, int]] = [(args, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"arguments are nested deeper than {max_depth} levels"
        if isinstance(value, str):
            total += len(value)
            if total > max_bytes:
                return f"arguments are larger than {max_bytes} characters"
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "arguments contain text that is not valid Unicode (undecodable bytes)"
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    return f"argument keys must be strings, got {k!r}"
                total += len(k)
                stack.append((v, depth + 1))
        elif isinstance(value, list | tuple):
            if len(value) > max_bytes:
                return f"arguments are larger than {max_bytes} items"
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"arguments contain {value!r}, which is not a finite number"
            total += 8
        elif value is None or isinstance(value, bool):
            total += 8
        elif isinstance(value, int):
            if not -(1 << 63) <= value < (1 << 64):
                return "arguments contain an integer outside the 64-bit range"
            total += 8
        else:
            return f"arguments contain a {type(value).__name__}, which is not JSON data"
        if total > max_bytes:
            return f"arguments are larger than {max_bytes} characters"
    return None


def decide(policy: Policy, state: SessionState, call: ToolCall, call_hash: str, now: float) -> Decision:
    """Decide on ``call``; never raises (an internal error is a deny)."""
    try:
        return _decide(policy, state, call, call_hash, now)
    except Exception as exc:
        reason = Reason("error", "guard", f"internal error while checking the call ({type(exc).__name__}: {exc}); denied")
        return Decision("deny", call.id, call.tool, (reason,), call_hash, policy.hash)


def _deny(call: ToolCall, call_hash: str, policy: Policy, reasons: Sequence[Reason]) -> Decision:
    return Decision("deny", call.id, call.tool, tuple(reasons), call_hash, policy.hash)


def _decide(policy: Policy, state: SessionState, call: ToolCall, call_hash: str, now: float) -> Decision:
    if state.status != "active":
        why = {"paused": "the session is paused", "killed": "the session was killed", "ended": "the session has ended"}[state.status]
        return _deny(call, call_hash, policy, [Reason("session", "session.status", f"{why}; no calls are allowed")])
    tool = policy.tool_for(call.tool) if isinstance(call.tool, str) else None
    unknown: Reason | None = None
    if tool is None or call.tool not in policy.tools:
        verdict: Verdict = policy.spec.default
        msg = f"tool {call.tool!r} is not named in policy {policy.name!r} (default: {verdict})"
        unknown = Reason("unknown_tool", "default", msg)
        if tool is None:
            return Decision("deny", call.id, str(call.tool), (unknown,), call_hash, policy.hash)
        # default: ask. The stand-in goes through every check below; the ask is added at the end.

    limits = policy.spec.limits
    shape = check_shape(call.args, limits.max_arg_bytes, limits.max_depth)
    if shape is not None:
        return _deny(call, call_hash, policy, [Reason("malformed", "limits", shape)])
    args = call.args
    denials: list[Reason] = []
    for name in tool.required:
        if args.get(name) is None:
            denials.append(Reason("malformed", f"tools.{tool.name}.args.{name}.required", f"argument {name!r} is required", arg=name))
    for name, value in args.items():
        spec = tool.args.get(name)
        if spec is None:
            if not tool.additional_args:
                denials.append(Reason("malformed", f"tools.{tool.name}.additional_args", f"unexpected argument {name!r}", arg=name))
            continue
        if value is None and not spec.required:
            continue
        err = validate_arg(spec, value, f"argument {name!r}", policy.paths)
        if err is not None:
            denials.append(Reason("constraint", spec.path, err, arg=name))
    if denials:
        return _deny(call, call_hash, policy, denials)

    view = CheckView(state, tool, args)
    asks: list[Reason] = []

    if state.scope is not None and view.effect == "write":
        _check_scope(state.scope, tool, args, denials)

    for rule in tool.deny_all:
        if rule.when(view):
            denials.append(Reason("deny_rule", rule.rule, rule.reason))

    if tool.flows or tool.defaults_for(view.effect) is not None:
        check_flows(view, tool, args, asks, denials)

    _check_budgets(policy, state, tool, view.effect, args, now, denials)

    if denials:
        return _deny(call, call_hash, policy, denials)
    for rule in tool.ask_all:
        if rule.when(view):
            asks.append(Reason("ask_rule", rule.rule, rule.reason))
    if unknown is not None:
        asks.insert(0, unknown)
    if asks:
        book = state.approvals
        if book.pending_count() >= MAX_PENDING_APPROVALS and book.waiting(now) >= MAX_PENDING_APPROVALS:
            why = (
                f"{MAX_PENDING_APPROVALS} approval requests of this session are already waiting for a human; "
                "a new one is denied until some are answered or expire"
            )
            return _deny(call, call_hash, policy, [Reason("session", "approvals.pending", why), *asks])
        return Decision("ask", call.id, call.tool, tuple(asks), call_hash, policy.hash)
    return Decision("allow", call.id, call.tool, (), call_hash, policy.hash)


def _check_scope(scope: dict[str, Any], tool: CompiledTool, args: dict[str, Any], denials: list[Reason]) -> None:
    writes = scope.get("writes") or {}
    if tool.name not in writes:
        denials.append(Reason("scope", "scope.writes", f"write tool {tool.name!r} is outside the session's declared task scope"))
        return
    constraints = writes[tool.name] or {}
    for arg, allowed in constraints.items():
        value = args.get(arg)
        if value is None:
            continue  # an absent argument sends nothing anywhere
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not any(same_value(v, a) for a in allowed):
                denials.append(
                    Reason(
                        "scope",
                        f"scope.writes.{tool.name}.{arg}",
                        f"{arg}={_short(v)} is outside the session's declared task scope",
                        arg=arg,
                    )
                )


def _check_budgets(
    policy: Policy, state: SessionState, tool: CompiledTool, effect: str, args: dict[str, Any], now: float, denials: list[Reason]
) -> None:
    budgets = policy.spec.budgets
    if budgets.max_calls is not None and state.calls_total + 1 > budgets.max_calls:
        denials.append(Reason("budget", "budgets.max_calls", f"session call budget of {budgets.max_calls} is used up"))
    if budgets.max_writes is not None and effect == "write" and state.writes + 1 > budgets.max_writes:
        denials.append(Reason("budget", "budgets.max_writes", f"session write budget of {budgets.max_writes} is used up"))
    if tool.max_calls is not None and state.per_tool.get(tool.name, 0) + 1 > tool.max_calls:
        denials.append(
            Reason("budget", f"tools.{tool.name}.budget.max_calls", f"budget of {tool.max_calls} call(s) to {tool.name!r} is used up")
        )
    if tool.spend_arg is not None:
        amount = args.get(tool.spend_arg)
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)):
            denials.append(
                Reason("budget", f"tools.{tool.name}.spend", f"spend argument {tool.spend_arg!r} must be a number", arg=tool.spend_arg)
            )
        elif isinstance(amount, int | float):
            if amount < 0:
                denials.append(
                    Reason("budget", f"tools.{tool.name}.spend", f"negative spend {amount!r} is not allowed", arg=tool.spend_arg)
                )
            elif budgets.max_spend is not None and state.spend + amount > budgets.max_spend:
                denials.append(
                    Reason(
                        "budget",
                        "budgets.max_spend",
                        f"spending {amount!r} would exceed the session's spend budget of {budgets.max_spend!r} (spent {state.spend!r})",
                        arg=tool.spend_arg,
                    )
                )
    if budgets.max_wall_time_s is not None and now - state.started_at > budgets.max_wall_time_s:
        denials.append(
            Reason("budget", "budgets.max_wall_time_s", f"session is older than its wall-time budget of {budgets.max_wall_time_s!r} s")
        )
    for rule, limit, window in policy.rate_rules_for(tool.name):
        times = state.rate_times.get(rule)
        recent = 0
        if times:
            # Times are in order; only the few leading entries can have left the window.
            stale = 0
            for t in times:
                if t > now - window:
                    break
                stale += 1
            recent = len(times) - stale
        if recent + 1 > limit:
            denials.append(Reason("rate", rule, f"rate limit of {limit} call(s) per {window:g} s reached"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
