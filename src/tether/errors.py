"""Tether's exceptions, in three families.

* :class:`ConfigError` and subclasses: the integrator made a mistake (a bad
  policy file, an unknown session id). Fix the input.
* :class:`RuntimeFailure` and subclasses: something failed while running (the
  store is unavailable, the audit chain is broken). The guard turns these into
  denials; they reach the caller only from management calls.
* :class:`GuardSignal` and subclasses: control flow raised by guarded tools
  (the call was denied, or needs a human). They carry the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether._decision import Decision

__all__ = [
    "ApprovalRequired",
    "ConfigError",
    "GuardSignal",
    "PolicyError",
    "RuntimeFailure",
    "DuplicateCall",
    "SessionError",
    "StaleSession",
    "StoreError",
    "TetherError",
    "ToolDenied",
]


class TetherError(Exception):
    """Base class of every exception Tether raises on purpose."""


class ConfigError(TetherError):
    """The integrator's input is wrong."""


class PolicyError(ConfigError):
    """A policy file is invalid.

    ``source`` names the file (or ``<string>``), ``rule_path`` the location in
    the document (``tools.send_money.args.amount.maximum``) and ``line`` the
    1-based line number when the YAML parser knows it.
    """

    def __init__(self, message: str, *, source: str = "<string>", rule_path: str = "", line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.rule_path = rule_path
        self.line = line
        self.problems: tuple[PolicyError, ...] = (self,)
        """Every problem found, each with its own source, line and rule path (this one first)."""
        self.warnings: tuple[Any, ...] = ()
        """The warnings found alongside (``PolicyWarning``\\ s), so that one run shows every problem."""
        where = source if line is None else f"{source}:{line}"
        at = f" at {rule_path}" if rule_path else ""
        super().__init__(f"{where}{at}: {message}")

    @classmethod
    def collect(cls, problems: Sequence[PolicyError]) -> PolicyError:
        """One error standing for several: the first one's fields, all of them in ``problems``."""
        first = problems[0]
        if len(problems) == 1:
            return first
        out = cls(first.message, source=first.source, rule_path=first.rule_path, line=first.line)
        out.problems = tuple(problems)
        out.args = ("\n".join(str(p) for p in problems),)
        return out


class SessionError(ConfigError):
    """A session cannot be used as asked (unknown id, ended, policy mismatch)."""


class RuntimeFailure(TetherError):
    """A failure while running."""


class StoreError(RuntimeFailure):
    """The event store could not read or write."""


class StaleSession(RuntimeFailure):
    """Another writer appended to the session first; nothing was written.

    The session catches up (folds the new events) and decides again: no process
    ever commits a decision made on state it had not seen.
    """

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"session {session_id!r} moved on: expected head {expected}, found {actual}")


class DuplicateCall(RuntimeFailure):
    """A proposed call id was already used in the session; nothing was written."""

    def __init__(self, session_id: str, call_id: str) -> None:
        self.session_id = session_id
        self.call_id = call_id
        super().__init__(f"call id {call_id!r} was already used in session {session_id!r}")


class GuardSignal(TetherError):
    """Control flow raised by a guarded tool; carries the decision."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.explain())


class ToolDenied(GuardSignal):
    """The guard denied the call."""


class ApprovalRequired(GuardSignal):
    """The call needs a human's approval and none was given."""
