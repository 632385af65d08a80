"""Sessions and the guard: where every decision is made."""

from tether.session._engine import decide
from tether.session._guard import Detector, Finding, Guard, Session, call_hash
from tether.session._state import SessionState
from tether.session._wrap import ApprovalRequest, Approver, StaticApprover, guarded

__all__ = [
    "ApprovalRequest",
    "Approver",
    "Detector",
    "Finding",
    "Guard",
    "Session",
    "SessionState",
    "StaticApprover",
    "call_hash",
    "decide",
    "guarded",
]
