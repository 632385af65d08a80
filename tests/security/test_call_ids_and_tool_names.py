"""Call ids and tool names come from the model: shown literally or refused, and a reused id stays refused.

Findings: docs/security-review.md (R7, R11; F15, a reused id and approvals, is in test_approval_binding.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from security_scenarios import USER_IBAN, ask_session, email_session, run

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.examples import example_policy_text


def _ask_with_call_id(db: Path, call_id: str) -> Any:
    s = email_session(f"pay the invoice to {USER_IBAN}", SQLiteStore(db))
    run(s, "list_inbox", {"limit": 5}, "the amount is 999")
    return s.check(ToolCall("pay_invoice", {"iban": USER_IBAN, "amount": 999}, call_id))


def test_r7_markup_in_a_call_id_is_shown_literally(tmp_path: Path) -> None:
    """Finding R7 (round 2 review, medium): markup in a call id is shown literally by `tether approvals list`.

    Call ids come from the model and were printed as Rich markup: the id `x[/][/]` crashed the inbox
    (every session's asks became invisible), and an id with newlines and markup drew a harmless-looking
    entry above the real call, or concealed it.
    """
    db = tmp_path / "t.db"
    d = _ask_with_call_id(db, "x[/][/][conceal]")
    assert d.verdict == "ask"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "tether", "approvals", "list", "--db", str(db)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "x[/][/][conceal]" in out.stdout and "pay_invoice" in out.stdout


@pytest.mark.parametrize("call_id", ["ok\n  read_file({'path': 'notes.txt'})", "pay\u202eelif_daer", "a\x1b[8m", "b\u2028c"])
def test_r7_call_ids_that_cannot_be_shown_faithfully_are_refused(tmp_path: Path, call_id: str) -> None:
    """Finding R7 (round 2 review): call ids with control, bidi or line-separator characters are refused.

    Such characters reach every display (CLI, web UI, logs); the call is denied and logged under a fresh id.
    """
    d = _ask_with_call_id(tmp_path / "t.db", call_id)
    assert d.verdict == "deny" and d.reasons[0].rule == "call_id"
    assert d.call_id != call_id


def test_r7_tool_names_that_cannot_be_shown_faithfully_are_refused() -> None:
    """Finding R7 (round 2 review): a tool name that cannot be shown faithfully is refused."""
    gate, _ = ask_session()
    out = gate.run(ToolCall("send\nread_config", {}), lambda: "sent")
    assert not out.ran and out.decision.reasons[0].rule == "tool"


class _InterleavingStore(SQLiteStore):
    """Runs ``hook`` (another writer's append) just before this store's ``on``-th append."""

    def __init__(self, path: Path, on: int) -> None:
        super().__init__(path)
        self.on, self.appends, self.hook = on, 0, None

    def append(self, session_id: str, events: Any, *, expect_seq: int | None = None) -> Any:
        self.appends += 1
        if self.appends == self.on and self.hook is not None:
            self.hook()
        return super().append(session_id, events, expect_seq=expect_seq)


def test_r11_a_reused_call_id_stays_denied_when_the_denial_loses_a_race(tmp_path: Path) -> None:
    """Finding R11 (round 2 review, low): a reused call id stays denied when its denial loses an append race.

    A call that reused an id was renamed and denied, but when that denial then lost the append race to
    another writer, the retry decided the renamed call afresh and forgot why it had been renamed: the
    reused id ran under a new one (the multi-process test of shared ids failed about one run in five).
    Every retry must decide from the call as proposed; this replays the exact interleaving.
    """
    db = tmp_path / "t.db"
    policy = Policy.from_yaml(example_policy_text("email_assistant"))
    first = Guard(policy, SQLiteStore(db)).start_session("check my inbox")
    racing = _InterleavingStore(db, on=2)
    stale = Guard(policy, racing).open_session(first.id)
    assert first.check(ToolCall("list_inbox", {"limit": 1}, "c1")).verdict == "allow"
    racing.hook = lambda: first.check(ToolCall("list_inbox", {"limit": 2}, "c2"))
    again = stale.check(ToolCall("list_inbox", {"limit": 3}, "c1"))  # loses to c1, then its denial loses to c2
    assert again.verdict == "deny" and again.reasons[0].rule == "call_id", again.explain()
