"""A reason never repeats tagged data: not as a value, not as an object key or argument name.

Reasons are logged, shown to the agent and, through the MCP proxy, may go back to whoever
sent a request; a secret quoted in one would leave by the explanation of its own denial.
"""

from __future__ import annotations

from tether import Guard, Policy

POLICY = """
tether: 1
name: withhold
defaults: {write: {flow: {forbid: [secret]}}}
tools:
  read_key: {effect: read, output: trusted, output_tags: [secret]}
  send: {effect: write, output: trusted, additional_args: allow, args: {to: {type: string}, body: {type: string}}}
"""
KEY = "sk-live-abcdefghijklmnop"


def test_tagged_values_keys_and_names_are_withheld_from_reasons() -> None:
    session = Guard(Policy.from_yaml(POLICY)).start_session("send a note to bob")
    d = session.check("read_key", {})
    session.record_result(d.call_id, KEY)
    for args in (
        {"to": "bob", "body": KEY},
        {"to": "bob", KEY: None},
        {"to": "bob", "meta": {KEY: 1}},
        {"to": "bob", "meta": {"k": KEY}},
        {"to": "bob", "body": f"note: {KEY} ok"},
    ):
        decision = session.check("send", args)
        assert decision.verdict == "deny"
        assert KEY not in decision.explain()
        assert all(KEY not in (r.arg or "") for r in decision.reasons)
    logged = b"".join(item.body for item in session.guard.store.read(session.id) if item.event().kind == "decision")
    assert KEY.encode() not in logged
