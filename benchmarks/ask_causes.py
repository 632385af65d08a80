"""Why benign AgentDojo tasks ask: every asked call classified by the rules that asked and their cause.

Reads the store a bench run logged (``tether bench agentdojo --agent oracle --db FILE``) and, for
each user task, the benign session in which the careful human answered every ask (the one with
the most decisions: approving lets the task's later calls be decided too). An asked call is counted
once, with the set of reasons it got:

* ``intent`` (the tool needs the task's intent after untrusted data was read), ``plans.outside``;
* ``flow ARG: untrusted`` (the value appears only in untrusted data) or ``flow ARG: nowhere`` (found
  in no source: it took the context label);
* ``readers`` (a recipient outside the data's readers), ``ask: NAME`` (an ask rule), anything else
  by its rule.

It then says how many asked calls would not ask without each class (the class was their only
reason), which is the most a mechanism aimed at that class can save. A session is benign when no
output it recorded holds the attack's marker (``<INFORMATION>``, the ``important_instructions``
attack the bench runs).

    python benchmarks/ask_causes.py --db oracle.db [--suite slack] [--json causes.json] [--calls]

``--quick`` is accepted for the benchmark scripts' common interface; the work is one pass over the
store either way.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from typing import Any

MARKER = "<INFORMATION>"


def reason_class(reason: dict[str, Any]) -> str:
    """One reason as a class: the rule family, the argument and the cause where there is one."""
    kind, rule, arg = reason["kind"], reason.get("rule", ""), reason.get("arg")
    if kind == "intent":
        return "intent"
    if rule.startswith("readers."):
        return "readers"
    if kind == "flow" and arg:
        top = arg.split("[")[0].split(".")[0].split("{")[0]
        cause = "nowhere" if "found in no source" in reason.get("message", "") else "untrusted"
        return f"flow {top}: {cause}"
    if kind == "ask_rule":
        return f"ask: {rule.split('.')[-1]}"
    return rule or kind


def benign_sessions(db: sqlite3.Connection) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(policy name, task) -> the benign session of that task with the most decisions."""
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sid, body in db.execute("SELECT session_id, body FROM events ORDER BY session_id, seq"):
        sessions[sid].append(json.loads(body))
    best: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}
    for events in sessions.values():
        if not events or events[0].get("kind") != "session_started":
            continue
        if any(e["kind"] == "result_recorded" and MARKER in e.get("output", "") for e in events):
            continue
        key = (events[0].get("policy_name", "?"), events[0].get("task", ""))
        decisions = sum(1 for e in events if e["kind"] == "decision")
        if key not in best or decisions > best[key][0]:
            best[key] = (decisions, events)
    return {k: v[1] for k, v in best.items()}


def asked_calls(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], frozenset[str]]]:
    """Each call that was asked about (its first ask): tool, arguments and reason classes."""
    calls = {e["call_id"]: e for e in events if e["kind"] == "call_proposed"}
    out: list[tuple[str, dict[str, Any], frozenset[str]]] = []
    seen: set[str] = set()
    for e in events:
        if e["kind"] == "decision" and e["verdict"] == "ask" and e["call_id"] not in seen and e["call_id"] in calls:
            seen.add(e["call_id"])
            call = calls[e["call_id"]]
            out.append((call["tool"], call["args"], frozenset(reason_class(r) for r in e["reasons"])))
    return out


def analyse(path: str, suite: str | None) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    sessions = benign_sessions(db)
    per_suite: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    combos: Counter[frozenset[str]] = Counter()
    by_tool: Counter[tuple[str, str]] = Counter()
    calls: list[dict[str, Any]] = []
    for (policy_name, task), events in sorted(sessions.items()):
        name = policy_name.removeprefix("agentdojo-")
        if suite is not None and name != suite:
            continue
        tasks[name] += 1
        for tool, args, classes in asked_calls(events):
            per_suite[name] += 1
            combos[classes] += 1
            for c in classes:
                by_class[c] += 1
                by_tool[(tool, c)] += 1
            calls.append({"suite": name, "task": task, "tool": tool, "args": args, "reasons": sorted(classes)})
    total = sum(per_suite.values())
    families = {c.split(":")[0] if c.startswith("flow ") else c for c in by_class}
    only: dict[str, int] = {}
    for family in sorted(families):
        only[family] = sum(n for k, n in combos.items() if all((c.split(":")[0] if c.startswith("flow ") else c) == family for c in k))
    flow_any = sum(n for k, n in combos.items() if all(c.startswith("flow ") for c in k))
    return {
        "tasks": dict(tasks),
        "asked_calls": dict(per_suite),
        "asks_per_task": {s: round(per_suite[s] / tasks[s], 3) for s in tasks},
        "overall_asks_per_task": round(total / max(1, sum(tasks.values())), 3),
        "by_class": dict(by_class.most_common()),
        "by_tool_and_class": {f"{t} | {c}": n for (t, c), n in by_tool.most_common()},
        "combinations": {" + ".join(sorted(k)): n for k, n in combos.most_common()},
        "only_reason": {**only, "flow (any argument)": flow_any},
        "calls": calls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="the store of a bench run (tether bench agentdojo --db FILE)")
    parser.add_argument("--suite", help="one suite only")
    parser.add_argument("--json", help="write the analysis here")
    parser.add_argument("--calls", action="store_true", help="print every asked call")
    parser.add_argument("--quick", action="store_true", help="accepted for the common interface (no effect)")
    args = parser.parse_args(argv)
    result = analyse(args.db, args.suite)
    print(f"asked calls per benign task: {result['overall_asks_per_task']} ({result['asks_per_task']})")
    print("asked calls by reason combination:")
    for combo, n in result["combinations"].items():
        print(f"  {n:4d}  {combo}")
    print("asked calls whose only reasons are of one class (the most a mechanism for that class can spare):")
    for cls, n in sorted(result["only_reason"].items(), key=lambda kv: -kv[1]):
        if n:
            print(f"  {n:4d}  {cls}")
    if args.calls:
        for call in result["calls"]:
            print(f"{call['suite']}: {call['tool']} {json.dumps(call['args'])[:120]} <- {', '.join(call['reasons'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
