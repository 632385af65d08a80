"""Who answers an ``ask``: the approver protocols and the approvers Tether ships."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tether._decision import Decision, ToolCall


class AnswerSource(Protocol):
    """Where answers given elsewhere can be awaited (a session reading its log)."""

    @property
    def id(self) -> str:
        """The session's id."""
        ...

    def wait_for_approval(self, call_id: str, *, timeout_s: float | None = None) -> bool:
        """Block until the call's approval is answered or expires; True when it may run."""
        ...


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a human is asked to approve."""

    session_id: str
    """The session the call belongs to."""
    call: ToolCall
    """The call, exactly as it will run if approved."""
    decision: Decision
    """The ``ask`` decision, with its reasons."""
    session: AnswerSource | None = None
    """The session, for approvers that wait for an answer given elsewhere."""


class Approver(Protocol):
    """Decides an ``ask``: return True to approve. ``name`` is logged as the approver."""

    @property
    def name(self) -> str:
        """Who answers (logged with the answer)."""
        ...

    def __call__(self, request: ApprovalRequest) -> bool:
        """Approve (True) or refuse (False)."""
        ...


class AsyncApprover(Protocol):
    """An approver that answers asynchronously (a web UI, an MCP client's elicitation)."""

    @property
    def name(self) -> str:
        """Who answers (logged with the answer)."""
        ...

    async def __call__(self, request: ApprovalRequest) -> bool:
        """Approve (True) or refuse (False)."""
        ...


@dataclass(frozen=True, slots=True)
class StaticApprover:
    """An approver that always gives the same answer (for tests and batch runs)."""

    approve: bool
    """The answer to every request."""
    name: str = "static"
    """Logged as who answered."""

    def __call__(self, request: ApprovalRequest) -> bool:
        return self.approve


@dataclass(frozen=True, slots=True)
class StoreApprover:
    """Waits for a human to answer through the store (``tether approvals approve``, another
    process, the approvals service), up to ``timeout_s`` or the request's own expiry,
    whichever comes first. Nothing answered in time: denied (the timeout is logged)."""

    timeout_s: float | None = None
    """Longest wait in seconds (None: until the request expires)."""
    name: str = "store"
    """Logged as who answered, if this approver ever answers itself."""

    def __call__(self, request: ApprovalRequest) -> bool:
        if request.session is None:
            return False
        return request.session.wait_for_approval(request.call.id, timeout_s=self.timeout_s)
