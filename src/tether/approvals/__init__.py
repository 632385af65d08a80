"""Approvals: asks waiting for a human, who answers them, and how their state is folded.

An ``ask`` decision becomes a pending approval bound to the exact call (the hash of
tool and arguments). It is answered by an :class:`Approver` (in process, sync or
async), by a human through ``tether approvals`` from another process, or by its
timeout, which denies. An approved call is decided again at approval time, so
budgets, rates and the session's status still hold. An :class:`Endorsement` ("approve and
remember") makes one value trusted for one tool argument, so the same ask is not raised again.
"""

from tether.approvals._approver import (
    AnswerSource,
    ApprovalRequest,
    Approver,
    AsyncApprover,
    StaticApprover,
    StoreApprover,
)
from tether.approvals._book import MAX_PENDING_APPROVALS, ApprovalBook, ApprovalRecord, ApprovalStatus
from tether.approvals._endorsements import Endorsement, EndorsementBook

__all__ = [
    "MAX_PENDING_APPROVALS",
    "AnswerSource",
    "ApprovalBook",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalStatus",
    "Approver",
    "AsyncApprover",
    "Endorsement",
    "EndorsementBook",
    "StaticApprover",
    "StoreApprover",
]
