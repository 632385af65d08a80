"""Decision latency of ``session.check`` for a realistic 20-tool policy, against Cedar.

What is measured (each in the same process, same run):

* **decision**: the guard's decision procedure (``tether.session.decide``) on a
  mix of reads and writes whose argument values come from the trusted task,
  from untrusted history, or from nowhere, after a session history of 1e3, 1e5
  and 1e7 characters of recorded tool output (1e6 instead of 1e7 with --quick).
* **check with log**: the whole ``session.check`` including the durable append
  of its two events to SQLite (WAL, synchronous=NORMAL), per call.
* **stateless vs Cedar**: the same policy's tool allow-list and argument
  constraints only (no flows, asks or budgets) decided by Tether, and the
  closest equivalent Cedar policy evaluated by ``cedarpy`` with a pre-parsed
  ``PolicySet`` and ``Entities`` (its fastest public API; we also time the raw
  ``cedarpy._internal.is_authorized_batch`` call with a pre-serialised context).

Usage: python benchmarks/decision_latency.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.policy import PolicySpec
from tether.session import decide

HERE = Path(__file__).parent
WORDS = [
    "the",
    "invoice",
    "meeting",
    "project",
    "report",
    "budget",
    "quarterly",
    "review",
    "please",
    "attached",
    "schedule",
    "customer",
    "order",
    "shipment",
    "delayed",
    "update",
    "password",
    "account",
    "security",
    "team",
    "lunch",
    "friday",
    "monday",
    "office",
    "travel",
    "hotel",
    "booking",
    "flight",
    "confirm",
    "cancel",
    "payment",
    "received",
    "thanks",
    "regards",
    "urgent",
    "note",
    "draft",
    "final",
    "version",
    "contract",
    "signed",
]

TASK = (
    "Pay the March rent of 1200 to GB29NWBK60161331926819 and the cleaner 80 to DE89370400440532013000. "
    "Email alice@company.com and bob@company.com the file ~/work/q3-report.txt, create an event 'Q3 review' "
    "on 2026-12-03 with carol@partner.org, and post a summary to #finance."
)
TRUSTED_VALUES = {
    "iban": ["GB29NWBK60161331926819", "DE89370400440532013000"],
    "email": ["alice@company.com", "bob@company.com", "carol@partner.org"],
    "path": ["~/work/q3-report.txt"],
}


def rand_iban(rng: random.Random) -> str:
    return (
        rng.choice(["FR", "ES", "NL", "IT"]) + f"{rng.randrange(10, 99)}" + "".join(rng.choice("ABCDEFGHJK0123456789") for _ in range(18))
    )


def rand_email(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}.{rng.randrange(1000)}@{rng.choice(['mail', 'corp', 'example'])}{rng.randrange(100)}.com"


def document(rng: random.Random, size: int, ids: list[str]) -> str:
    parts: list[str] = []
    n = 0
    while n < size:
        if rng.random() < 0.05:
            value = rng.choice([rand_iban, rand_email])(rng)
            ids.append(value)
            word = value
        else:
            word = rng.choice(WORDS)
        parts.append(word)
        n += len(word) + 1
    return " ".join(parts)[:size]


def build_session(policy: Policy, history_chars: int, rng: random.Random) -> tuple[Any, list[str]]:
    guard = Guard(policy, SQLiteStore(":memory:", durability="off"))
    session = guard.start_session(TASK)
    seen_ids: list[str] = []
    remaining = history_chars
    tools = ["read_inbox", "web_fetch", "read_channel", "list_events"]
    while remaining > 0:
        size = min(remaining, 4000)
        tool = tools[rng.randrange(len(tools))]
        args = {
            "read_inbox": {"limit": 10},
            "web_fetch": {"url": "https://news.example/x"},
            "read_channel": {"channel": "#general"},
            "list_events": {"day": "2026-12-01"},
        }[tool]
        d = session.check(tool, args)
        session.record_result(d.call_id, document(rng, size, seen_ids))
        remaining -= size
    return session, seen_ids


def workload(rng: random.Random, untrusted_ids: list[str], n: int) -> list[ToolCall]:
    """A mix of realistic calls: 60% reads, 40% writes, values from task, history or nowhere."""

    def value(kind: str) -> str:
        r = rng.random()
        if r < 0.6:
            return rng.choice(TRUSTED_VALUES[kind])
        if r < 0.85 and untrusted_ids:
            candidates = [v for v in untrusted_ids if ("@" in v) == (kind == "email")] or untrusted_ids
            return rng.choice(candidates)
        return rand_email(rng) if kind == "email" else rand_iban(rng)

    calls: list[ToolCall] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            choice = rng.randrange(6)
            call = [
                ToolCall("read_inbox", {"limit": rng.randrange(1, 50), "folder": "inbox"}),
                ToolCall("search_email", {"query": " ".join(rng.sample(WORDS, 3))}),
                ToolCall("read_file", {"path": rng.choice(["~/work/q3-report.txt", "~/notes.md", "~/.ssh/id_rsa"])}),
                ToolCall("web_fetch", {"url": f"https://news.example/{rng.choice(WORDS)}"}),
                ToolCall("list_events", {"day": f"2026-12-{rng.randrange(1, 29):02d}"}),
                ToolCall("read_channel", {"channel": "#general"}),
            ][choice]
        else:
            choice = rng.randrange(5)
            call = [
                ToolCall(
                    "send_money", {"recipient": value("iban"), "amount": rng.choice([80, 1200, 250, 5000]), "subject": rng.choice(WORDS)}
                ),
                ToolCall("send_email", {"to": [value("email")], "subject": "Q3 report", "body": " ".join(rng.sample(WORDS, 12))}),
                ToolCall("create_event", {"title": "Q3 review", "day": "2026-12-03", "attendees": [value("email")]}),
                ToolCall("post_message", {"channel": "#finance", "text": " ".join(rng.sample(WORDS, 10))}),
                ToolCall("share_file", {"path": "~/work/q3-report.txt", "with": value("email")}),
            ][choice]
        calls.append(call)
    return calls


def time_decisions(policy: Policy, session: Any, calls: list[ToolCall], repeats: int) -> list[float]:
    state = session.state
    now = time.time()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for call in calls:
            t0 = clock()
            decide(policy, state, call, "sha256:x", now)
            samples.append((clock() - t0) / 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stateless_policy(policy: Policy) -> Policy:
    data = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("ask", None)
    data.pop("rates", None)
    data["budgets"] = {}
    for tool in data["tools"].values():
        tool.pop("ask", None)
        tool.pop("labels", None)
        tool.pop("spend", None)
        for arg in tool.get("args", {}).values():
            arg.pop("flow", None)
    return Policy(PolicySpec.model_validate(data), source="agent20-stateless")


CEDAR_POLICY = (HERE / "policies" / "agent20_stateless.cedar").read_text()


def cedar_request(call: ToolCall) -> dict[str, Any]:
    return {
        "principal": 'User::"agent"',
        "action": f'Action::"{call.tool}"',
        "resource": 'Tool::"t"',
        "context": call.args,
    }


def time_cedar(calls: list[ToolCall], repeats: int) -> tuple[list[float], list[float], int]:
    import cedarpy
    from cedarpy import _internal

    policies = cedarpy.PolicySet.from_str(CEDAR_POLICY)
    entities = cedarpy.Entities.from_json_str("[]")
    requests = [cedar_request(c) for c in calls]
    raw_requests = [{**r, "context": json.dumps(r["context"])} for r in requests]
    allowed = sum(1 for r in requests if cedarpy.is_authorized(r, policies, entities).allowed)
    public: list[float] = []
    internal: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for r in requests:
            t0 = clock()
            cedarpy.is_authorized(r, policies, entities)
            public.append((clock() - t0) / 1000)
        for r in raw_requests:
            t0 = clock()
            _internal.is_authorized_batch([r], policies, entities._inner, None, False)
            internal.append((clock() - t0) / 1000)
    return public, internal, allowed


def time_check_with_log(policy: Policy, calls: list[ToolCall]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db", durability="normal")
        session = Guard(policy, store).start_session(TASK)
        samples = []
        for call in calls:
            fresh = ToolCall(call.tool, call.args)
            t0 = time.perf_counter_ns()
            session.check(fresh)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (under 30 s): history up to 1e6 characters")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    opts = parser.parse_args()

    policy = Policy.from_file(HERE / "policies" / "agent20.yaml")
    sizes = [1_000, 100_000, 1_000_000] if opts.quick else [1_000, 100_000, 10_000_000]
    n_calls, repeats = (300, 10) if opts.quick else (500, 30)
    log = (lambda *a: print(*a, file=sys.stderr)) if opts.json else print

    results: dict[str, Any] = {"policy": policy.hash, "history": {}}
    per_size: dict[int, list[float]] = {}
    for size in sizes:
        rng = random.Random(size)
        t0 = time.perf_counter()
        session, ids = build_session(policy, size, rng)
        built = time.perf_counter() - t0
        calls = workload(random.Random(7), ids, n_calls)
        verdicts = [decide(policy, session.state, c, "x", time.time()).verdict for c in calls]
        samples = time_decisions(policy, session, calls, repeats)
        per_size[size] = samples
        row = {
            "p50_us": round(pct(samples, 0.5), 2),
            "p99_us": round(pct(samples, 0.99), 2),
            "mean_us": round(statistics.fmean(samples), 2),
            "build_s": round(built, 2),
            "verdicts": {v: verdicts.count(v) for v in ("allow", "deny", "ask")},
        }
        results["history"][str(size)] = row
        log(
            f"history {size:>10,} chars: p50 {row['p50_us']:7.2f} us  p99 {row['p99_us']:7.2f} us  (built in {built:.1f} s; verdicts {row['verdicts']})"
        )

    small, large = sizes[0], sizes[-1]
    results["p50_us"] = results["history"][str(small)]["p50_us"]
    results["p99_us"] = results["history"][str(small)]["p99_us"]
    results["history_ratio"] = round(pct(per_size[large], 0.5) / pct(per_size[small], 0.5), 3)
    results["history_ratio_sizes"] = [small, large]

    log_samples = time_check_with_log(policy, workload(random.Random(9), [], 2000 if not opts.quick else 600))
    results["check_with_log_p50_us"] = round(pct(log_samples, 0.5), 2)
    results["check_with_log_p99_us"] = round(pct(log_samples, 0.99), 2)
    log(
        f"session.check incl. durable append of 2 events: p50 {results['check_with_log_p50_us']} us, p99 {results['check_with_log_p99_us']} us"
    )

    stateless = stateless_policy(policy)
    calls = workload(random.Random(11), [], n_calls)
    empty, _ = build_session(stateless, 0, random.Random(1))
    tether_stateless = time_decisions(stateless, empty, calls, repeats)
    cedar_public, cedar_internal, cedar_allowed = time_cedar(calls, repeats)
    tether_allowed = sum(1 for c in calls if decide(stateless, empty.state, c, "x", time.time()).verdict == "allow")
    results["stateless"] = {
        "tether_p50_us": round(pct(tether_stateless, 0.5), 2),
        "cedar_public_p50_us": round(pct(cedar_public, 0.5), 2),
        "cedar_internal_p50_us": round(pct(cedar_internal, 0.5), 2),
        "tether_allowed": tether_allowed,
        "cedar_allowed": cedar_allowed,
        "calls": len(calls),
    }
    fastest_cedar = min(pct(cedar_public, 0.5), pct(cedar_internal, 0.5))
    results["cedar_ratio"] = round(pct(tether_stateless, 0.5) / fastest_cedar, 3)
    log(
        f"stateless rules: Tether p50 {results['stateless']['tether_p50_us']} us; Cedar p50 {results['stateless']['cedar_public_p50_us']} us "
        f"(public API), {results['stateless']['cedar_internal_p50_us']} us (raw); ratio Tether/Cedar {results['cedar_ratio']}"
    )
    log(f"allowed: Tether {tether_allowed}/{len(calls)}, Cedar {cedar_allowed}/{len(calls)}")
    if opts.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
