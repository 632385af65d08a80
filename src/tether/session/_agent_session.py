"""What an agent needs of a session, as a protocol: the in-process :class:`~tether.session.Session`
and the guard service's client (:class:`tether.client.RemoteSession`) both satisfy it, so an
agent (and :class:`~tether.session.Gate`) runs the same code against either, chosen by
configuration."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tether._decision import Decision, ToolCall
from tether.approvals import ApprovalStatus
from tether.events import MessageAdded
from tether.flow import TRUSTED, Label


@runtime_checkable
class AgentSession(Protocol):
    """One agent run under a guard, as the agent drives it: check each call, declare a plan, record
    what ran, add data it read elsewhere, wait for a human's answer to an ask, end."""

    @property
    def id(self) -> str:
        """The session id."""
        ...

    def check(self, call: ToolCall | str, args: dict[str, Any] | None = None) -> Decision:
        """Decide on a proposed call (logged before the answer returns); never raises for bad input."""
        ...

    def declare_plan(self, writes: Any, *, plan_id: str | None = None) -> Decision:
        """Declare the writes the task intends, decided like a call of ``tether.plan`` (logged before
        the answer returns; an ask is answered like any call); never raises for bad input."""
        ...

    def record_result(self, call_id: str, output: Any, *, error: bool = False) -> Label:
        """Record what an admitted call returned; returns the output's label."""
        ...

    def add_source(self, text: str, *, label: Label = TRUSTED, origin: str = "user") -> str:
        """Add data the agent sees outside tool calls; returns the id of the event that records it."""
        ...

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """``none``, ``pending``, ``approved`` or ``denied``."""
        ...

    def wait_for_approval(self, call_id: str, *, timeout_s: float | None = None) -> bool:
        """Block until an ask is answered (anywhere) or expires; True when the call may run."""
        ...

    def answer(self, call_id: str, approved: bool, *, by: str, note: str = "") -> bool:
        """Answer a pending ask (where the caller may); returns whether the call may now run."""
        ...

    def log_message(self, message: MessageAdded) -> None:
        """Append a message of the agent's conversation to the log."""
        ...

    def refresh(self) -> int:
        """Bring what the session knows up to date with the log; returns how many events were new."""
        ...

    def end(self, reason: str = "completed") -> None:
        """Mark the session finished."""
        ...
