"""What the security tests share: attacker values, small policies, and sessions built through the public API.

The attacker controls the model (every proposed call, its id, argument names, values and types) and
the text untrusted tools return; tamper-evidence tests also let the attacker write the database.

Each test names the finding it covers in its docstring (round 1: F1-F17; round 2, issue 8: findings
1-7; round 2 review: R1-R11; red team: docs/red-team-agentdojo.md), with its severity: high = a
forbidden value reaches a sink with no human; medium = crash, denial of service, a surprising default,
the same under a policy option or a second condition, or a broken tamper-evidence claim; low = needs
an unusual setup or gives the attacker little.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether import Gate, Guard, Label, Policy, Session, SQLiteStore, StaticApprover, ToolCall
from tether.examples import example_policy_text

BANK = Path(__file__).parents[1] / "fixtures" / "bank.yaml"

EVIL_IBAN = "GB33EVIL12345678901234"
"""An attacker's IBAN that reads as one (round 1, round 2 findings 1-5, red team)."""
ATTACKER_IBAN = "DE44500105175407324931"
"""An attacker's IBAN with a valid checksum (round 2 review, R1-R11)."""
USER_IBAN = "DE89370400440532013000"
"""The user's landlord: the IBAN the task names."""

NOTES = """
tether: 1
name: notes
tools:
  read_file:
    effect: read
    output: trusted
    labels:
      - when: {arg: path, path_glob: ["~/.ssh/**"]}
        tags: [secret]
    args:
      path: {type: string, required: true}
  read_mail: {effect: read, output: untrusted}
  save_note:
    effect: write
    output: trusted
    args:
      text: {type: [string, number]}
  save_all:
    effect: write
    args:
      items: {type: array}
  read_notes: {effect: read, output: trusted}
  lookup_contact:
    effect: read
    output: trusted
    args:
      query: {type: [string, number]}
  post:
    effect: write
    args:
      body: {type: string, flow: {forbid: [secret]}}
  pay:
    effect: write
    args:
      iban: {type: string, flow: {require: trusted}}
      amount: {type: number}
    ask:
      - when: {arg: amount, untrusted: true}
        reason: the amount comes from untrusted data
"""
"""A notes app next to a payment tool: the write-back and echo scenarios of round 2 (findings 1-5)."""

STANDING_ORDERS = """
tether: 1
name: standing-orders
tools:
  read_mail: {effect: read, output: untrusted}
  list_orders: {effect: read, output: trusted}
  schedule:
    effect: write
    args:
      recipient: {type: string, flow: {require: trusted}}
      subject: {type: string}
  pay:
    effect: write
    args:
      recipient: {type: string, flow: {require: trusted}}
  update_password:
    effect: write
    args:
      password: {type: string, required: true}
    ask:
      - when: {not: {arg: password, from_task: true}}
        reason: a new password must be one the user gave
"""
"""Standing orders and a password tool: the red-team scenarios (docs/red-team-agentdojo.md, B1-B4, W3)."""

NOTES_AND_PAY = """
tether: 1
name: notes-and-pay
limits: {max_arg_bytes: 4194304}
tools:
  read_handbook: {effect: read, output: trusted, args: {}}
  fetch_mail: {effect: read, output: untrusted, args: {}}
  save_note: {effect: write, output: trusted, args: {text: {type: string}, n: {type: integer}}}
  list_notes: {effect: read, output: trusted, args: {}}
  pay:
    effect: write
    output: trusted
    args:
      recipient: {type: string, flow: {require: trusted}}
      amount: {type: number}
"""
"""Notes up to 4 MiB next to a payment tool (R4, and a full taint memory)."""

DEFAULT_ASK = """
tether: 1
name: ask-by-default
default: ask
budgets: {max_calls: 4, max_writes: 3, max_wall_time_s: 600}
rates: [{tools: ["send_*"], max: 1, window_s: 3600}]
deny:
  - {name: nothing-after-secrets, when: {context_has: [secret]}, reason: nothing runs once a secret was read}
tools:
  read_config: {effect: read, output: trusted, output_tags: [secret], args: {}}
  note: {effect: write, output: trusted, args: {text: {type: string}}}
"""
"""`default: ask` with budgets, a rate over `send_*` and a policy-wide deny: what a careful integrator writes (R5)."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def start(policy: Policy, task: str, **guard: Any) -> Any:
    """A session on an in-memory store; ``guard`` goes to :class:`Guard`."""
    return Guard(policy, SQLiteStore(":memory:"), **guard).start_session(task)


def bank_session(task: str = "Check my inbox and pay the bills I already know about.") -> Any:
    """A session under tests/fixtures/bank.yaml."""
    return Guard(Policy.from_file(BANK), SQLiteStore(":memory:")).start_session(task)


def email_session(task: str, store: SQLiteStore | None = None) -> Session:
    """A session under the shipped email assistant policy."""
    return Guard(Policy.from_yaml(example_policy_text("email_assistant")), store).start_session(task)


def standing_orders_session(task: str) -> Any:
    """A session under :data:`STANDING_ORDERS`."""
    return Guard(Policy.from_yaml(STANDING_ORDERS), SQLiteStore(":memory:")).start_session(task)


def ask_session() -> tuple[Gate, Clock]:
    """A gate whose human approves everything, on a :data:`DEFAULT_ASK` session, and the clock it runs on."""
    clock = Clock()
    session = Guard(Policy.from_yaml(DEFAULT_ASK), clock=clock).start_session("text my team")
    return Gate(session, StaticApprover(True, name="ana")), clock


def only_intent_asks(decision: Any) -> bool:
    """Allowed, or asked only because its tool needs the task's intent after untrusted data was
    read (``intent: required``): no rule about its values' provenance fired."""
    return decision.verdict == "allow" or (decision.verdict == "ask" and all(r.kind == "intent" for r in decision.reasons))


def run(session: Session, tool: str, args: dict[str, Any], output: Any) -> Label:
    """Check a call that must be allowed (a human who knows the task approves an intent ask),
    record its output and return the output's label."""
    decision = session.check(ToolCall(tool, args))
    assert only_intent_asks(decision), decision.explain()
    if decision.verdict == "ask":
        assert session.answer(decision.call_id, True, by="user")
    return session.record_result(decision.call_id, output)


APPROVALS = """
tether: 1
name: approvals-round2
budgets: {max_spend: 2000, max_calls: 50, max_writes: 20}
rates:
  - {tools: ["post"], max: 2, window_s: 3600}
tools:
  pay:
    effect: write
    output: trusted
    spend: amount
    budget: {max_calls: 10}
    args:
      to: {type: string}
      amount: {type: number}
    ask: [{when: {arg: amount, gt: 100}, reason: large payment}]
  transfer:
    effect: write
    output: trusted
    budget: {max_calls: 2}
    args: {to: {type: string}}
    ask: [{when: {always: true}, reason: every transfer is approved}]
  post:
    effect: write
    output: trusted
    args: {text: {type: string}}
    ask: [{when: {always: true}, reason: posts are approved}]
  note:
    effect: write
    output: trusted
    args: {text: {type: string}}
    ask: [{when: {always: true}, reason: notes are approved}]
"""
"""Tools that ask, under a spend budget, per-tool call budgets and a rate (round 2, findings 6-7)."""


def approvals_session(path: Path | None = None) -> tuple[Guard, Session]:
    """A session of principal ``ana`` under :data:`APPROVALS`, on the database at ``path`` (in memory if none)."""
    store = SQLiteStore(path if path is not None else ":memory:")
    guard = Guard(Policy.from_yaml(APPROVALS), store)
    return guard, guard.start_session("pay the suppliers acme-001, post updates, take notes", principal="ana")
