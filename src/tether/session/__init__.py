"""Sessions and the guard: where every decision is made."""

from tether.session._engine import decide
from tether.session._gate import Admission, Gate, Outcome, error_text
from tether.session._guard import Detector, Finding, Guard, policy_document, stored_policy
from tether.session._replay import Baseline, ReplayChange, ReplayReport, replay, replay_session
from tether.session._session import Session, call_hash
from tether.session._state import SessionState
from tether.session._wrap import guarded

__all__ = [
    "Admission",
    "Baseline",
    "Detector",
    "Finding",
    "Gate",
    "Guard",
    "Outcome",
    "ReplayChange",
    "ReplayReport",
    "Session",
    "SessionState",
    "call_hash",
    "decide",
    "error_text",
    "guarded",
    "policy_document",
    "replay",
    "replay_session",
    "stored_policy",
]
