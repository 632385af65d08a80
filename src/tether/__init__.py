"""Tether: a deterministic reference monitor for AI agents' tool calls.

Every tool call passes :meth:`Session.check`, which decides allow, deny or ask
from the policy, where the call's argument values came from, and what the session
has already done. Every step is an event in a hash-chained log.
"""

from tether._decision import Decision, Reason, ToolCall, Verdict
from tether.approvals import ApprovalRequest, Approver, AsyncApprover, StaticApprover, StoreApprover
from tether.errors import (
    ApprovalRequired,
    ConfigError,
    PolicyError,
    SessionError,
    StaleSession,
    StoreError,
    TetherError,
    ToolDenied,
)
from tether.flow import TRUSTED, UNTRUSTED, Label, label
from tether.monitor import Detector, Finding
from tether.policy import Policy
from tether.session import Gate, Guard, Outcome, Session, guarded
from tether.store import EventStore, SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "TRUSTED",
    "UNTRUSTED",
    "ApprovalRequest",
    "ApprovalRequired",
    "Approver",
    "AsyncApprover",
    "ConfigError",
    "Decision",
    "Detector",
    "EventStore",
    "Finding",
    "Gate",
    "Guard",
    "Label",
    "Outcome",
    "Policy",
    "PolicyError",
    "Reason",
    "SQLiteStore",
    "Session",
    "SessionError",
    "StaleSession",
    "StaticApprover",
    "StoreApprover",
    "StoreError",
    "TetherError",
    "ToolCall",
    "ToolDenied",
    "Verdict",
    "__version__",
    "guarded",
    "label",
]
