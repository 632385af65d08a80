"""Decision latency of ``session.check`` for a realistic 20-tool policy, against Cedar and Microsoft's AGT.

What is measured (each in the same process, same run):

* **decision**: the guard's decision procedure (``tether.session.decide``) on a
  mix of reads and writes whose argument values come from the trusted task,
  from untrusted history, or from nowhere, after a session history of 1e3, 1e5
  and 1e7 characters of recorded tool output (1e6 instead of 1e7 with --quick).
* **stateless vs peers**: the same policy's tool allow-list and argument
  constraints only (no flows, asks or budgets) decided by Tether and by its peers
  (``decision_peers.py``), each from its own policy file in ``policies/``:
  Cedar through ``cedarpy`` (public API with a pre-parsed ``PolicySet`` and
  ``Entities``, and the raw ``_internal.is_authorized_batch`` call), and the Agent
  Governance Toolkit (``agent-governance-toolkit-core``): the engine its
  ``govern()`` entry point uses (``agentmesh.governance.PolicyEngine``), its
  ``PolicyEvaluator`` and ``SharedPolicyEvaluator``, and its tool-name-only
  ``agent_os.lite`` gate (reported, but it does not see the same rules). Every
  engine's verdicts on ``decision_peers.SAMPLES`` are asserted first; all engines
  get the same calls, one warm-up pass and the same number of timed passes,
  round-robin.
* **check with log**: the whole ``session.check`` including the durable append of
  its two events to SQLite (WAL, synchronous=NORMAL), per call, with the full
  policy and with the stateless one, beside AGT's audited path: ``govern()``'s
  wrapper with its audit log written to a file by AGT's ``FileAuditSink``. The
  same calls, the same warm-up, interleaved call by call.

Every ``*_ratio`` is Tether's latency divided by the peer's (below 1: Tether is
faster). A peer whose package is not installed is skipped and said to be.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decision_peers import (
    AGT_GOVERN,
    CEDAR,
    SAMPLES,
    AgtAuditedPath,
    Engine,
    Peer,
    agt_peer,
    cannot_express,
    cedar_peer,
    check_samples,
    stateless_policy,
    tether_engine,
)

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.monitor import decide

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


def time_engines(engines: list[Engine], calls: list[ToolCall], repeats: int) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
    """Per-call latency of each engine on the same calls, and each engine's verdicts.

    Every engine gets the same treatment: its inputs are prepared before timing, one untimed
    pass (which also collects the verdicts) warms it up, then ``repeats`` timed passes run
    round-robin across the engines, so load from other processes falls on all of them alike
    and every engine ends with ``len(calls) * repeats`` samples.
    """
    inputs = {e.key: [e.prepare(c) for c in calls] for e in engines}
    verdicts = {e.key: [e.allowed(e.run(x)) for x in inputs[e.key]] for e in engines}
    samples: dict[str, list[float]] = {e.key: [] for e in engines}
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for e in engines:
            run, out = e.run, samples[e.key]
            for x in inputs[e.key]:
                t0 = clock()
                run(x)
                out.append((clock() - t0) / 1000)
    return samples, verdicts


LoggedPath = tuple[Callable[[ToolCall], Any], Callable[[Any], Any], Callable[[Any], bool]]


def tether_logged(policy: Policy, db: Path) -> tuple[LoggedPath, SQLiteStore]:
    """``session.check`` on a file store (WAL, synchronous=NORMAL): the decision and the durable append of its two events."""
    store = SQLiteStore(db, durability="normal")
    session = Guard(policy, store).start_session(TASK)
    path: LoggedPath = (lambda c: ToolCall(c.tool, c.args), session.check, lambda d: bool(d.verdict == "allow"))
    return path, store


def time_logged(
    paths: dict[str, LoggedPath], warmup: list[ToolCall], calls: list[ToolCall]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per-call latency of each logged path, each call timed once per path, interleaved call by call.

    Every path first decides (and logs) the same ``warmup`` calls untimed; then, call by call,
    each path decides the same call, so each ends with ``len(calls)`` samples taken under the
    same load. Also returns how many calls each path allowed.
    """
    for prepare, run, _ in paths.values():
        for c in warmup:
            run(prepare(c))
    inputs = {k: [prepare(c) for c in calls] for k, (prepare, _, _) in paths.items()}
    samples: dict[str, list[float]] = {k: [] for k in paths}
    allowed = dict.fromkeys(paths, 0)
    clock = time.perf_counter_ns
    for i in range(len(calls)):
        for k, (_, run, is_allowed) in paths.items():
            t0 = clock()
            result = run(inputs[k][i])
            samples[k].append((clock() - t0) / 1000)
            allowed[k] += is_allowed(result)
    return samples, allowed


@dataclass(frozen=True)
class Sizes:
    """How much to run: history sizes, decision calls and passes, logged warm-up and calls."""

    history: list[int]
    calls: int
    repeats: int
    warmup: int
    logged: int


SIZES = {
    "full": Sizes([1_000, 100_000, 10_000_000], 500, 30, 100, 2000),
    "quick": Sizes([1_000, 100_000, 1_000_000], 300, 10, 100, 600),
    "smoke": Sizes([1_000, 10_000], 40, 2, 5, 40),
}
Log = Callable[[str], None]


def measure_history(policy: Policy, sizes: Sizes, results: dict[str, Any], log: Log) -> None:
    """The full policy's decision after histories of each size (keys ``history``, ``p50_us``, ``p99_us``, ``history_ratio``)."""
    results["history"] = {}
    per_size: dict[int, list[float]] = {}
    for size in sizes.history:
        rng = random.Random(size)
        t0 = time.perf_counter()
        session, ids = build_session(policy, size, rng)
        built = time.perf_counter() - t0
        calls = workload(random.Random(7), ids, sizes.calls)
        verdicts = [decide(policy, session.state, c, "x", time.time()).verdict for c in calls]
        samples = time_decisions(policy, session, calls, sizes.repeats)
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
    small, large = sizes.history[0], sizes.history[-1]
    results["p50_us"] = results["history"][str(small)]["p50_us"]
    results["p99_us"] = results["history"][str(small)]["p99_us"]
    results["history_ratio"] = round(pct(per_size[large], 0.5) / pct(per_size[small], 0.5), 3)
    results["history_ratio_sizes"] = [small, large]


def measure_stateless(stateless: Policy, cedar: Peer, agt: Peer, sizes: Sizes, results: dict[str, Any], log: Log) -> None:
    """Tether, Cedar and AGT on the same stateless rules and calls (keys ``stateless``, ``cedar_ratio``, ``agt``, ``agt_ratio``)."""
    calls = workload(random.Random(11), [], sizes.calls)
    empty, _ = build_session(stateless, 0, random.Random(1))
    engines = [tether_engine(stateless, empty.state), *cedar.engines, *agt.engines]
    for engine in engines:
        check_samples(engine)
    samples, verdicts = time_engines(engines, calls, sizes.repeats)
    p50 = {k: pct(v, 0.5) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    allowed = {k: sum(v) for k, v in verdicts.items()}
    results["stateless"] = {
        "tether_p50_us": round(p50["tether"], 2),
        "tether_p99_us": round(p99["tether"], 2),
        "tether_allowed": allowed["tether"],
        "calls": len(calls),
        "samples_per_engine": len(calls) * sizes.repeats,
    }
    log(
        f"stateless rules, {len(calls)} calls x {sizes.repeats}: Tether p50 {p50['tether']:.2f} us, "
        f"p99 {p99['tether']:.2f} us; allowed {allowed['tether']}"
    )

    def engine_row(e: Engine) -> dict[str, Any]:
        agree = sum(a == b for a, b in zip(verdicts[e.key], verdicts["tether"], strict=True))
        row = {"api": e.api, "p50_us": round(p50[e.key], 2), "p99_us": round(p99[e.key], 2), "allowed": allowed[e.key]}
        row |= {"agrees_with_tether": agree, "same_rules": e.same_rules, "cannot_express": cannot_express(e.policy)}
        log(f"  {e.key:<22} p50 {p50[e.key]:8.2f} us  p99 {p99[e.key]:8.2f} us  allowed {allowed[e.key]}  agrees with Tether on {agree}")
        return row

    if cedar.skipped:
        results["stateless"]["cedar_skipped"] = cedar.skipped
        results["cedar_ratio"] = None
        log(f"Cedar skipped: {cedar.skipped}")
    else:
        for e in cedar.engines:
            engine_row(e)
        results["stateless"] |= {
            "cedar_public_p50_us": round(p50["cedar_public"], 2),
            "cedar_internal_p50_us": round(p50["cedar_internal"], 2),
            "cedar_public_p99_us": round(p99["cedar_public"], 2),
            "cedar_internal_p99_us": round(p99["cedar_internal"], 2),
            "cedar_allowed": allowed["cedar_public"],
            "cedar_version": cedar.version,
            "cedar_cannot_express": cannot_express(CEDAR),
        }
        results["cedar_ratio"] = round(p50["tether"] / min(p50["cedar_public"], p50["cedar_internal"]), 3)
        log(f"cedar_ratio (Tether p50 / fastest Cedar p50; below 1 = Tether faster): {results['cedar_ratio']}")

    if agt.skipped:
        results["agt"] = {"package": agt.package, "skipped": agt.skipped}
        results["agt_ratio"] = results["agt_govern_ratio"] = None
        log(f"AGT skipped: {agt.skipped}")
        return
    log(f"AGT {agt.version}, stateless rules:")
    rows = {e.key: engine_row(e) for e in agt.engines}
    fastest = min((e for e in agt.engines if e.same_rules), key=lambda e: p50[e.key])
    results["agt"] = {"package": agt.package, "version": agt.version, "engines": rows, "fastest": fastest.key, "govern_engine": AGT_GOVERN}
    results["agt_ratio"] = round(p50["tether"] / p50[fastest.key], 3)
    results["agt_govern_ratio"] = round(p50["tether"] / p50[AGT_GOVERN], 3)
    log(
        f"agt_ratio (Tether p50 / fastest AGT evaluator p50 [{fastest.key}]; below 1 = Tether faster): {results['agt_ratio']}; "
        f"vs govern()'s engine: {results['agt_govern_ratio']}"
    )


def measure_logged(policy: Policy, stateless: Policy, agt: Peer, sizes: Sizes, results: dict[str, Any], log: Log) -> None:
    """``session.check`` with the durable log, beside AGT's audited ``govern()`` (keys ``check_with_log_*``, ``agt_logged_ratio_*``)."""
    warmup = workload(random.Random(8), [], sizes.warmup)
    calls = workload(random.Random(9), [], sizes.logged)
    with tempfile.TemporaryDirectory() as tmp:
        full_path, full_store = tether_logged(policy, Path(tmp) / "full.db")
        same_path, same_store = tether_logged(stateless, Path(tmp) / "stateless.db")
        check_samples(Engine("tether_stateless_check", "tether", "session.check", *same_path))
        paths = {"tether_full": full_path, "tether_stateless": same_path}
        audited = None
        if not agt.skipped:
            audited = AgtAuditedPath(Path(tmp) / "agt-audit.jsonl")
            paths["agt_govern_file_audit"] = (audited.prepare, audited.run, audited.allowed)
            check_samples(Engine("agt_govern_file_audit", AGT_GOVERN, "govern() with FileAuditSink", *paths["agt_govern_file_audit"]))
        samples, allowed = time_logged(paths, warmup, calls)
        audit_entries = audited.audit_entries() if audited else 0
        # One entry per governed call (samples, warm-up, timed): the file holds what was timed.
        assert not audited or audit_entries == len(SAMPLES) + len(warmup) + len(calls), audit_entries
        full_store.close()
        same_store.close()
    p50 = {k: pct(v, 0.5) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    results["check_with_log_p50_us"] = round(p50["tether_full"], 2)
    results["check_with_log_p99_us"] = round(p99["tether_full"], 2)
    log(
        f"session.check incl. durable append of 2 events, full policy ({len(calls)} calls): "
        f"p50 {p50['tether_full']:.2f} us, p99 {p99['tether_full']:.2f} us"
    )
    if audited is None:
        results["agt_logged_ratio_p50"] = results["agt_logged_ratio_p99"] = None
        return
    agt_key = "agt_govern_file_audit"
    results["agt"]["logged"] = {
        "calls": len(calls),
        "warmup_calls": len(warmup),
        "tether_stateless_check_p50_us": round(p50["tether_stateless"], 2),
        "tether_stateless_check_p99_us": round(p99["tether_stateless"], 2),
        "tether_stateless_allowed": allowed["tether_stateless"],
        "agt_govern_file_audit_p50_us": round(p50[agt_key], 2),
        "agt_govern_file_audit_p99_us": round(p99[agt_key], 2),
        "agt_allowed": allowed[agt_key],
        "agt_audit_entries": audit_entries,
        "full_policy_ratio_p50": round(p50["tether_full"] / p50[agt_key], 3),
        "full_policy_ratio_p99": round(p99["tether_full"] / p99[agt_key], 3),
    }
    results["agt_logged_ratio_p50"] = round(p50["tether_stateless"] / p50[agt_key], 3)
    results["agt_logged_ratio_p99"] = round(p99["tether_stateless"] / p99[agt_key], 3)
    log(
        f"logged, same stateless rules ({len(calls)} calls): Tether session.check + SQLite p50 {p50['tether_stateless']:.2f} us, "
        f"p99 {p99['tether_stateless']:.2f} us; AGT govern() + FileAuditSink p50 {p50[agt_key]:.2f} us, "
        f"p99 {p99[agt_key]:.2f} us ({audit_entries} audit entries verified)"
    )
    log(f"agt_logged_ratio_p50 {results['agt_logged_ratio_p50']}, agt_logged_ratio_p99 {results['agt_logged_ratio_p99']} (Tether / AGT)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (under 30 s): history up to 1e6 characters")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--smoke", action="store_true", help="a run of seconds through every path (for tests; its figures mean nothing)")
    opts = parser.parse_args()
    sizes = SIZES["smoke" if opts.smoke else "quick" if opts.quick else "full"]
    log: Log = (lambda line: print(line, file=sys.stderr)) if opts.json else print

    policy = Policy.from_file(HERE / "policies" / "agent20.yaml")
    stateless = stateless_policy(policy)
    cedar, agt = cedar_peer(), agt_peer()
    results: dict[str, Any] = {"policy": policy.hash}
    measure_history(policy, sizes, results, log)
    measure_stateless(stateless, cedar, agt, sizes, results, log)
    measure_logged(policy, stateless, agt, sizes, results, log)
    results["ratio_direction"] = (
        "every *_ratio is Tether's latency divided by the peer's, from the same run: below 1 means Tether is faster"
    )
    if opts.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
