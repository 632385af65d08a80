"""Costs of per-record readers (issue 15): labelling, folding and checking a list output record by record.

CPU time per operation (``time.process_time``, median of repeats, microseconds; stable when the
machine is shared), for an inbox of ``N`` emails written as AgentDojo writes it (``yaml.safe_dump``),
each email with its own recipients, at N = 5 and N = 100:

* ``label_N_us``: ``result_labels`` of the output (the whole label and each record's span and
  readers: the YAML parsed once, each record's piece parsed back) on distinct texts (no cache), and
  ``label_whole_N_us``: the same output's whole label only (taint and ``with_readers``, the cost before);
* ``fold_N_us``: folding the output into a fresh flow tracker record by record (each record a
  source, the whole text in the spans index), and ``fold_whole_N_us``: as one source;
* ``decide_N_us``: ``decide`` of a ``send_email`` whose body is one email's text after the output
  was folded record by record, and ``decide_whole_N_us``: after it was folded as one source
  (every other part of the state the same); ``*_ratio``: the first over the second.

Run: ``PYTHONPATH=src python benchmarks/record_readers.py --json`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import yaml

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.flow import FlowTracker, label
from tether.monitor import SessionState, decide, result_labels
from tether.monitor._readers import with_readers

POLICY = """
tether: 1
name: record-readers-bench
tools:
  get_emails: {effect: read, output: untrusted, output_readers: [sender, recipients, cc, bcc]}
  send_email:
    effect: write
    recipients: [recipients]
    args: {recipients: {type: array, items: {type: string}}, body: {type: string}}
"""
TASK = "help me with my mail"


def _emails(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id_": str(i),
            "sender": f"person{i}@corp.example",
            "recipients": ["emma@corp.example", f"team{i}@corp.example"],
            "cc": [],
            "bcc": [],
            "subject": f"Quarterly numbers, part {i}",
            "body": f"Hi Emma, the figures for region {i} are attached; revenue rose by {i + 3} percent. Regards",
        }
        for i in range(n)
    ]


def _median_cpu_us(fn: Callable[[], Any], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - t0) / n * 1e6)
    return round(statistics.median(runs), 2)


def _measure_size(size: int, n: int, repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    policy = Policy.from_yaml(POLICY)
    tool = policy.tools["get_emails"]
    emails = _emails(size)
    text = yaml.safe_dump(emails)
    session = Guard(policy, SQLiteStore(":memory:")).start_session(TASK)
    d = session.check("get_emails", {})
    state = session.state
    m = max(n // (10 if size < 50 else 100), 1)
    texts = iter([text + f"# {i}\n" for i in range(m * repeats)])  # distinct texts: no cache hit
    out[f"label_{size}_us"] = _median_cpu_us(lambda: result_labels(policy, state, "get_emails", {}, next(texts), error=False), m, repeats)
    texts = iter([text + f"## {i}\n" for i in range(m * repeats)])  # other texts again: no cache hit
    base = label("untrusted")

    def whole_only() -> None:
        this = next(texts)
        with_readers(state.flow.output_label(base, this, {}, tool.args), tool, this, error=False)

    out[f"label_whole_{size}_us"] = _median_cpu_us(whole_only, m, repeats)
    whole, records = result_labels(policy, state, "get_emails", {}, text, error=False)
    assert len(records) == size

    def fold(with_records: bool) -> FlowTracker:
        tracker = FlowTracker()
        tracker.pin(TASK, label("trusted"), "task")
        tracker.add_source(text, whole, "e1", records=records if with_records else ())
        return tracker

    out[f"fold_{size}_us"] = _median_cpu_us(lambda: fold(True), m, repeats)
    out[f"fold_whole_{size}_us"] = _median_cpu_us(lambda: fold(False), m, repeats)
    session.record_result(d.call_id, text)
    assert session.state.flow.spans.chars > 0
    baseline: SessionState = replace(session.state, flow=fold(False))
    send = ToolCall("send_email", {"recipients": [f"team{size // 2}@corp.example"], "body": emails[size // 2]["body"]})
    assert decide(policy, session.state, send, "sha256:x", 0.0).verdict == "allow"  # the record's own readers
    assert decide(policy, baseline, send, "sha256:x", 0.0).verdict == "ask"  # every record's readers
    out[f"decide_{size}_us"] = _median_cpu_us(lambda: decide(policy, session.state, send, "sha256:x", 0.0), n, repeats)
    out[f"decide_whole_{size}_us"] = _median_cpu_us(lambda: decide(policy, baseline, send, "sha256:x", 0.0), n, repeats)
    for key in ("label", "fold", "decide"):
        out[f"{key}_{size}_ratio"] = round(out[f"{key}_{size}_us"] / out[f"{key}_whole_{size}_us"], 2)
    return out


def measure(n: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    for size in (5, 100):
        out.update(_measure_size(size, n, repeats))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer iterations)")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    result = measure(200 if ns.quick else 2000, 1 if ns.quick else 5)
    if ns.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
