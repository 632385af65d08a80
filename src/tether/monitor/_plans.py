"""Plans: the writes a task intends, declared once and approved once (pure, like the rest of the core).

An agent declares, before it reads untrusted data, the writes its task needs: each names a
tool and the values of the arguments that matter (``{"tool": "send_money", "args":
{"recipient": "GB29...", "amount": 100}}``); an argument left out is unconstrained by the
plan. The plan is decided like a call of the pseudo-tool ``tether.plan`` (:func:`decide_plan`):

* **allow** (approved without a human) when it is the session's first plan, the session has
  read no untrusted data yet, every write it names is a write tool of the policy, and every
  named value fits the tool's argument constraints, deny rules and flow rules (the same
  provenance machinery as a call: before untrusted data is read, nothing the agent decides
  can come from an attacker);
* **ask** (one approval request for the whole plan) when it is declared after untrusted data
  was read (the decision to plan may be the injection's), when an earlier plan was approved or
  asked (a plan is extended only by a human), or when a flow rule asks about a named value;
* **deny** when it is malformed or names a write the policy could never allow.

Once the session has read untrusted data, a write *inside* an approved plan (same tool, every
argument the plan names equal to the planned value, compared as the policy compares values)
takes the named values as trusted: no ask for their provenance. Their confidentiality tags stay
(secret-tag flow rules still apply), and every other rule (constraints, deny and ask rules,
budgets, rates) applies as to any call. The task ``scope`` given at session start counts as a
plan approved by whoever started the session: its named values are exempt the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tether._decision import Decision, Reason
from tether.approvals import MAX_PENDING_APPROVALS
from tether.monitor._flow_rules import check_flows
from tether.monitor._plan_book import MAX_PLANS, PLAN_TOOL, PlannedWrite, parse_plan
from tether.monitor._shape import check_shape
from tether.monitor._state import SessionState
from tether.monitor._view import CheckView
from tether.policy import CompiledTool, Policy, validate_arg

# ---------------------------------------------------------------------------- deciding a plan


def decide_plan(policy: Policy, state: SessionState, plan_id: str, args: Any, call_hash: str, now: float) -> Decision:
    """Decide on a declared plan (see the module docstring); never raises (an error is a deny)."""
    try:
        return _decide_plan(policy, state, plan_id, args, call_hash, now)
    except Exception as exc:
        reason = Reason("error", "guard", f"internal error while checking the plan ({type(exc).__name__}: {exc}); denied")
        return Decision("deny", plan_id, PLAN_TOOL, (reason,), call_hash, policy.hash)


def _decide_plan(policy: Policy, state: SessionState, plan_id: str, args: Any, call_hash: str, now: float) -> Decision:
    def verdict(v: Literal["allow", "deny", "ask"], reasons: Sequence[Reason]) -> Decision:
        return Decision(v, plan_id, PLAN_TOOL, tuple(reasons), call_hash, policy.hash)

    if state.status != "active":
        return verdict("deny", [Reason("session", "session.status", f"the session is {state.status}; no plan can be declared")])
    limits = policy.spec.limits
    shape = check_shape(args, limits.max_arg_bytes, limits.max_depth)
    if shape is not None:
        return verdict("deny", [Reason("malformed", "limits", shape)])
    writes, problem = parse_plan(args)
    if problem is not None:
        return verdict("deny", [Reason("malformed", "plan", problem)])
    earlier = [p for p in state.plans.values() if p.plan_id != plan_id]
    if len(earlier) >= MAX_PLANS:
        return verdict("deny", [Reason("session", "plans.max", f"this session already declared {MAX_PLANS} plans")])
    denials: list[Reason] = []
    asks: list[Reason] = []
    for i, write in enumerate(writes):
        _check_write(policy, state, write, f"writes[{i}]", asks, denials)
    if denials:
        return verdict("deny", denials)
    if state.context.untrusted:
        asks.insert(
            0,
            Reason(
                "plan",
                "plans.after_untrusted",
                "the plan was declared after the session read untrusted data: the decision to make these writes may come from it",
            ),
        )
    elif any(p.status != "denied" for p in earlier):
        asks.insert(0, Reason("plan", "plans.extension", "the session already has a plan; a further plan needs a human"))
    if asks:
        book = state.approvals
        if book.pending_count() >= MAX_PENDING_APPROVALS and book.waiting(now) >= MAX_PENDING_APPROVALS:
            why = f"{MAX_PENDING_APPROVALS} approval requests of this session are already waiting for a human"
            return verdict("deny", [Reason("session", "approvals.pending", why), *asks])
        return verdict("ask", asks)
    return verdict("allow", [])


def _check_write(policy: Policy, state: SessionState, write: PlannedWrite, where: str, asks: list[Reason], denials: list[Reason]) -> None:
    tool: CompiledTool | None = policy.tools.get(write.tool)
    if tool is None or write.tool == PLAN_TOOL:
        denials.append(Reason("plan", f"plan.{where}.tool", f"{where}: tool {write.tool!r} is not a tool of policy {policy.name!r}"))
        return
    args = dict(write.args)
    if tool.effect != "write" and tool.write_when is None:
        denials.append(Reason("plan", f"plan.{where}.tool", f"{where}: {write.tool!r} is not a write tool (reads need no plan)"))
        return
    for name, value in args.items():
        spec = tool.args.get(name)
        if spec is None:
            if not tool.additional_args:
                denials.append(
                    Reason("malformed", f"tools.{tool.name}.additional_args", f"{where}: unexpected argument {name!r}", arg=name)
                )
            continue
        if value is None:
            continue
        err = validate_arg(spec, value, f"{where}: argument {name!r}")
        if err is not None:
            denials.append(Reason("constraint", spec.path, err, arg=name))
    if denials:
        return
    view = CheckView(state, tool, args)
    for rule in tool.deny_all:
        if rule.when(view):
            denials.append(Reason("deny_rule", rule.rule, f"{where}: {rule.reason}"))
    if tool.flows or tool.defaults_for(view.effect) is not None:
        check_flows(view, tool, args, asks, denials)
