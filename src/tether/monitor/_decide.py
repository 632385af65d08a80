"""The decision procedure: one pure function from (policy, state, call, time) to a Decision.

Order of checks: session status, known tool, argument shape and constraints,
task scope, deny rules, flow rules, readers of what a write sends and
outflow of short confidential pieces, budgets and rates (all denials are
collected), then intent and plan rules and ask rules. Any exception becomes a
deny: the guard fails closed.

A write inside an approved plan or the task scope (``_plan_book.plan_cover``) is
checked with the values the plan named taken as trusted (their tags kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tether._decision import Decision, Reason, ToolCall, Verdict
from tether.approvals import MAX_PENDING_APPROVALS
from tether.monitor._flow_rules import check_flows, check_outflow
from tether.monitor._ledger import LedgerState, check_principal_budgets
from tether.monitor._plan_book import PLAN_TOOL, has_approved_plan, plan_cover
from tether.monitor._readers import check_readers
from tether.monitor._shape import check_shape
from tether.monitor._state import SessionState
from tether.monitor._view import CheckView
from tether.policy import CompiledTool, Policy, same_value, validate_arg


def decide(policy: Policy, state: SessionState, call: ToolCall, call_hash: str, now: float, ledger: LedgerState | None = None) -> Decision:
    """Decide on ``call``; never raises (an internal error is a deny).

    ``ledger``: the session's principal's ledger, folded (its endorsements and fleet budgets);
    None only where the policy sets no ``principal_budgets`` (then a call is denied if it does).
    An allow that an endorsement made possible names it in ``Decision.endorsements``.
    """
    try:
        decision, endorsed = _decide(policy, state, call, call_hash, now, ledger, True)
        if decision.verdict == "allow" and endorsed:
            # Which endorsements spared an ask: decided again as if there were none.
            without, _ = _decide(policy, state, call, call_hash, now, ledger, False)
            if without.verdict == "ask":
                return replace(decision, endorsements=tuple(sorted(endorsed)))
        return decision
    except Exception as exc:
        reason = Reason("error", "guard", f"internal error while checking the call ({type(exc).__name__}: {exc}); denied")
        return Decision("deny", call.id, call.tool, (reason,), call_hash, policy.hash)


def _deny(call: ToolCall, call_hash: str, policy: Policy, reasons: Sequence[Reason]) -> Decision:
    return Decision("deny", call.id, call.tool, tuple(reasons), call_hash, policy.hash)


def _decide(
    policy: Policy, state: SessionState, call: ToolCall, call_hash: str, now: float, ledger: LedgerState | None, endorse: bool
) -> tuple[Decision, set[str]]:
    decision, view = _decide_view(policy, state, call, call_hash, now, ledger, endorse)
    return decision, (view.endorsed if view is not None else set())


def _decide_view(
    policy: Policy, state: SessionState, call: ToolCall, call_hash: str, now: float, ledger: LedgerState | None, endorse: bool
) -> tuple[Decision, CheckView | None]:
    if state.status != "active":
        why = {"paused": "the session is paused", "killed": "the session was killed", "ended": "the session has ended"}[state.status]
        return _deny(call, call_hash, policy, [Reason("session", "session.status", f"{why}; no calls are allowed")]), None
    if call.tool == PLAN_TOOL:
        why = f"{PLAN_TOOL!r} is not a tool: a plan is declared with Session.declare_plan"
        return Decision("deny", call.id, call.tool, (Reason("malformed", "tool", why),), call_hash, policy.hash), None
    tool = policy.tool_for(call.tool) if isinstance(call.tool, str) else None
    unknown: Reason | None = None
    if tool is None or call.tool not in policy.tools:
        verdict: Verdict = policy.spec.default
        msg = f"tool {call.tool!r} is not named in policy {policy.name!r} (default: {verdict})"
        unknown = Reason("unknown_tool", "default", msg)
        if tool is None:
            return Decision("deny", call.id, str(call.tool), (unknown,), call_hash, policy.hash), None
        # default: ask. The stand-in goes through every check below; the ask is added at the end.

    limits = policy.spec.limits
    shape = check_shape(call.args, limits.max_arg_bytes, limits.max_depth)
    if shape is not None:
        return _deny(call, call_hash, policy, [Reason("malformed", "limits", shape)]), None
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
        err = validate_arg(spec, value, f"argument {name!r}")
        if err is not None:
            denials.append(Reason("constraint", spec.path, err, arg=name))
    if denials:
        return _deny(call, call_hash, policy, denials), None

    cover: frozenset[str] | None = None
    if state.context.untrusted and (state.plans or state.scope is not None) and tool.effect_of(args) == "write":
        cover = plan_cover(state.plans, state.scope, tool.name, args)
    books = (state.endorsements, ledger.endorsements) if ledger is not None else (state.endorsements,)
    view = CheckView(state, tool, args, cover or frozenset(), endorsements=books if endorse else (), now=now)
    asks: list[Reason] = []

    if state.scope is not None and view.effect == "write":
        _check_scope(state.scope, tool, args, denials)

    for rule in tool.deny_all:
        if rule.when(view):
            denials.append(Reason("deny_rule", rule.rule, rule.reason))

    if tool.flows or tool.defaults_for(view.effect) is not None:
        check_flows(view, tool, args, asks, denials)
    check_readers(policy, view, tool, args, asks, denials)
    check_outflow(policy, view, tool, args, asks, denials)

    _check_budgets(policy, state, tool, view.effect, args, now, denials)
    _check_fleet(policy, state, ledger, tool, view.effect, args, call.id, now, denials)

    if view.effect == "write" and state.context.untrusted and cover is None:
        _check_intent(policy, state, tool, asks, denials)
    if denials:
        return _deny(call, call_hash, policy, denials), view
    for rule in tool.ask_all:
        if rule.when(view):
            asks.append(Reason("ask_rule", rule.rule, rule.reason))
    if view.effect == "write":
        _check_checkin(policy, state, now, asks)
    if unknown is not None:
        asks.insert(0, unknown)
    if asks:
        book = state.approvals
        if book.pending_count() >= MAX_PENDING_APPROVALS and book.waiting(now) >= MAX_PENDING_APPROVALS:
            why = (
                f"{MAX_PENDING_APPROVALS} approval requests of this session are already waiting for a human; "
                "a new one is denied until some are answered or expire"
            )
            return _deny(call, call_hash, policy, [Reason("session", "approvals.pending", why), *asks]), view
        return Decision("ask", call.id, call.tool, tuple(asks), call_hash, policy.hash), view
    return Decision("allow", call.id, call.tool, (), call_hash, policy.hash), view


def _check_intent(policy: Policy, state: SessionState, tool: CompiledTool, asks: list[Reason], denials: list[Reason]) -> None:
    """A write outside every approved plan (and the task scope), after untrusted data was read."""
    if has_approved_plan(state.plans):
        outside = policy.spec.plans.outside
        why = f"the session has read untrusted data and this {tool.name!r} call is in no approved plan (plans.outside: {outside})"
        (denials if outside == "deny" else asks).append(Reason("plan", "plans.outside", why))
        return
    if tool.intent_required:
        why = (
            f"{tool.name!r} needs the task's intent once the session has read untrusted data: "
            "the decision to make this call may come from that data, and no approved plan covers it"
        )
        asks.append(Reason("intent", f"tools.{tool.name}.intent", why))


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


def spend_of(tool: CompiledTool, args: Any) -> float:
    """What a call spends (its tool's ``spend`` argument; 0 when none or not a number)."""
    if tool.spend_arg is None or not isinstance(args, dict):
        return 0.0
    amount = args.get(tool.spend_arg)
    return float(amount) if isinstance(amount, int | float) and not isinstance(amount, bool) and amount > 0 else 0.0


def _check_fleet(
    policy: Policy,
    state: SessionState,
    ledger: LedgerState | None,
    tool: CompiledTool,
    effect: str,
    args: dict[str, Any],
    call_id: str,
    now: float,
    denials: list[Reason],
) -> None:
    """The principal's budgets (shared by all its sessions), as its ledger holds them."""
    budgets = policy.spec.principal_budgets
    if budgets is None or not budgets.active:
        return
    if ledger is None:
        denials.append(Reason("budget", "principal_budgets", "the principal's ledger was not read; its shared budgets cannot be checked"))
        return
    if ledger.reserved(state.session_id, call_id):
        return  # this call already holds its share (reserved before its session's append lost a race)
    check_principal_budgets(policy, ledger, tool.name, effect == "write", spend_of(tool, args), now, denials)


def _check_checkin(policy: Policy, state: SessionState, now: float, asks: list[Reason]) -> None:
    """A write asks when no human has looked for too many writes or minutes (``checkin``)."""
    checkin = policy.spec.checkin
    if checkin is None:
        return
    if checkin.after_writes is not None and state.writes_since_checkin >= checkin.after_writes:
        asks.append(
            Reason(
                "ask_rule",
                "checkin.after_writes",
                f"{state.writes_since_checkin} write(s) since a human last checked in (check-in due after {checkin.after_writes})",
            )
        )
    if checkin.after_minutes is not None and now - state.last_checkin > checkin.after_minutes * 60:
        minutes = (now - state.last_checkin) / 60
        asks.append(
            Reason(
                "ask_rule",
                "checkin.after_minutes",
                f"{minutes:.0f} minute(s) since a human last checked in (check-in due after {checkin.after_minutes:g})",
            )
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
