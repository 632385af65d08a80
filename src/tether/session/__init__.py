"""Sessions and the guard: where every decision is made."""

from tether.session._agent_session import AgentSession
from tether.session._gate import Admission, Gate, Outcome, error_text
from tether.session._guard import Guard, policy_document, stored_policy
from tether.session._policy_tests import (
    CaseResult,
    PolicyCase,
    PolicyTestError,
    PolicyTestRun,
    load_cases,
    policy_test_files,
    run_case,
    run_cases,
)
from tether.session._replay import Baseline, ReplayChange, ReplayReport, replay, replay_session
from tether.session._session import MAX_OUTPUT_CHARS, Session, call_hash
from tether.session._snapshot import SnapshotPolicy
from tether.session._trial import ArgumentLabel, HistoryStep, Trial, TrialError, trial
from tether.session._wrap import guarded

__all__ = [
    "ArgumentLabel",
    "CaseResult",
    "HistoryStep",
    "PolicyCase",
    "PolicyTestError",
    "PolicyTestRun",
    "Trial",
    "TrialError",
    "load_cases",
    "policy_test_files",
    "run_case",
    "run_cases",
    "trial",
    "MAX_OUTPUT_CHARS",
    "SnapshotPolicy",
    "Admission",
    "AgentSession",
    "Baseline",
    "Gate",
    "Guard",
    "Outcome",
    "ReplayChange",
    "ReplayReport",
    "Session",
    "call_hash",
    "error_text",
    "guarded",
    "policy_document",
    "replay",
    "replay_session",
    "stored_policy",
]
