"""Plan records and matching: what an approved plan covers (no decisions here; see ``_plans.py``).

Kept apart from the decision on a plan so the state fold can use it without importing the
decision machinery (which reads the state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tether.policy import same_value

PLAN_TOOL = "tether.plan"
"""The pseudo-tool a plan is decided, logged and shown as (no policy may name a tool so)."""

MAX_PLANS = 64
"""Plans one session may declare; past that a plan is denied (each one is kept in memory)."""

MAX_PLANNED_WRITES = 256
"""Writes one plan may name."""

PlanStatus = Literal["pending", "approved", "denied"]


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One write a plan intends: the tool and the values of the arguments it names."""

    tool: str
    args: Mapping[str, Any]


@dataclass(slots=True)
class PlanRecord:
    """A declared plan and what became of it."""

    plan_id: str
    writes: tuple[PlannedWrite, ...]
    status: PlanStatus = "pending"


def parse_plan(args: Any) -> tuple[tuple[PlannedWrite, ...], str | None]:
    """The writes of a plan's arguments ``{"writes": [...]}``, or why they are malformed."""
    if not isinstance(args, dict) or set(args) != {"writes"}:
        return (), 'a plan must be an object with one key, "writes"'
    writes = args["writes"]
    if not isinstance(writes, list):
        return (), '"writes" must be a list of {"tool": NAME, "args": {...}}'
    if len(writes) > MAX_PLANNED_WRITES:
        return (), f"a plan may name at most {MAX_PLANNED_WRITES} writes (got {len(writes)})"
    out: list[PlannedWrite] = []
    for i, entry in enumerate(writes):
        if not isinstance(entry, dict) or not set(entry) <= {"tool", "args"} or not isinstance(entry.get("tool"), str):
            return (), f'writes[{i}] must be {{"tool": NAME, "args": {{...}}}}'
        planned = entry.get("args", {})
        if planned is None:
            planned = {}
        if not isinstance(planned, dict) or not all(isinstance(k, str) for k in planned):
            return (), f"writes[{i}].args must be an object"
        out.append(PlannedWrite(entry["tool"], dict(planned)))
    return tuple(out), None


def plans_from_json(rows: Sequence[Any]) -> dict[str, PlanRecord]:
    """Plans saved by :func:`plans_to_json` (a snapshot)."""
    out: dict[str, PlanRecord] = {}
    for plan_id, writes, status in rows:
        parsed, _ = parse_plan({"writes": writes})
        out[plan_id] = PlanRecord(plan_id, parsed, status)
    return out


def plans_to_json(plans: Mapping[str, PlanRecord]) -> list[Any]:
    """The plans as JSON-able rows (for snapshots)."""
    return [[p.plan_id, [{"tool": w.tool, "args": dict(w.args)} for w in p.writes], p.status] for p in plans.values()]


# ---------------------------------------------------------------------------- matching


def matches(call_value: Any, planned: Any) -> bool:
    """Whether a call's argument value is the planned one, compared as the policy compares values
    (``same_value``: numbers as numbers, strings after normalisation, booleans only with booleans).

    A list matches when it has as many items as the planned list and each item matches a
    planned item (order is free); an object when it has the same keys (null ones aside) and
    every value matches.
    """
    if planned is None or call_value is None:
        return planned is None and call_value is None
    if isinstance(planned, dict):
        if not isinstance(call_value, dict):
            return False
        keys = {k for k, v in planned.items() if v is not None} | {k for k, v in call_value.items() if v is not None}
        return all(matches(call_value.get(k), planned.get(k)) for k in keys)
    if isinstance(planned, list | tuple):
        if not isinstance(call_value, list | tuple) or len(call_value) != len(planned):
            return False
        return all(any(matches(v, p) for p in planned) for v in call_value)
    if isinstance(call_value, dict | list | tuple):
        return False
    return same_value(call_value, planned)


def _inside(write: PlannedWrite, tool: str, args: Mapping[str, Any]) -> bool:
    return write.tool == tool and all(name in args and matches(args[name], value) for name, value in write.args.items())


def plan_cover(
    plans: Mapping[str, PlanRecord], scope: Mapping[str, Any] | None, tool: str, args: Mapping[str, Any]
) -> frozenset[str] | None:
    """The arguments whose planned values a write call takes as trusted, or None when the call is
    inside no approved plan (nor the task scope)."""
    named: set[str] = set()
    inside = False
    for plan in plans.values():
        if plan.status != "approved":
            continue
        for write in plan.writes:
            if _inside(write, tool, args):
                inside = True
                named.update(write.args)
    if scope is not None:
        cover = scope_cover(scope, tool, args)
        if cover is not None:
            inside = True
            named.update(cover)
    return frozenset(named) if inside else None


def scope_cover(scope: Mapping[str, Any], tool: str, args: Mapping[str, Any]) -> frozenset[str] | None:
    """The constrained arguments of a write inside the task scope (None: outside it)."""
    writes = scope.get("writes") or {}
    if not isinstance(writes, dict) or tool not in writes:
        return None
    constraints = writes[tool] or {}
    named: set[str] = set()
    for arg, allowed in constraints.items():
        value = args.get(arg)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(not isinstance(v, dict | list) and any(same_value(v, a) for a in allowed) for v in values):
            return None
        named.add(arg)
    return frozenset(named)


def has_approved_plan(plans: Mapping[str, PlanRecord]) -> bool:
    """Whether any plan of the session was approved."""
    return any(p.status == "approved" for p in plans.values())
