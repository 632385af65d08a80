"""An approver that asks the person at the terminal, showing the whole call."""

from __future__ import annotations

import json
import select
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import TextIO

from tether.approvals import ApprovalRequest


def visible(text: str) -> str:
    """``text`` with every character that could change how it displays (controls, bidi overrides,
    zero-width and other format characters) written as a ``\\u`` escape: the approver sees what the
    tool will receive, not what a terminal would render."""
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


@dataclass
class TerminalApprover:
    """Asks on the terminal: the tool, every argument in full, and why the policy asks.

    No answer within ``timeout_s`` (or end of input): refused. Answers ``y``/``yes`` approve;
    anything else refuses.
    """

    timeout_s: float | None = None
    """Longest wait for an answer (None: forever)."""
    name: str = "terminal"
    """Logged as who answered."""
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    """Where answers are read."""
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    """Where the question is written."""

    def __call__(self, request: ApprovalRequest) -> bool:
        call = request.call
        args = json.dumps(call.args, ensure_ascii=False, indent=2, default=str)
        self.stderr.write(
            f"\n== approval needed: call {call.id} in session {request.session_id}\n"
            f"   tool: {visible(call.tool)}\n   arguments (in full):\n{visible(args)}\n"
            f"   why: {visible(request.decision.explain())}\n"
            f"approve? [y/N]{f' (refused after {self.timeout_s:g}s)' if self.timeout_s is not None else ''} "
        )
        self.stderr.flush()
        if self.timeout_s is not None:
            ready, _, _ = select.select([self.stdin], [], [], self.timeout_s)
            if not ready:
                self.stderr.write("\nno answer: refused\n")
                return False
        line = self.stdin.readline()
        return line.strip().lower() in ("y", "yes")
