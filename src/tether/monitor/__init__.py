"""The monitor: the pure core of every decision, with no store, no clock and no I/O.

* :class:`SessionState`: a session folded from its events (labels, counters, approvals).
* :func:`decide`: ``(policy, state, call, call_hash, now) -> Decision``, deterministic.
* :func:`tighten` with :class:`Detector`\\ s: optional checks that may only make a decision stricter.
* :func:`result_label`: the label a tool's output is recorded with (:func:`result_labels`: and its records' readers).
* :class:`LedgerState`: a principal's ledger folded (shared endorsements and fleet budgets).
* :func:`decide_plan`: the decision on a declared plan (:mod:`tether.monitor._plans`).

The session shell (:mod:`tether.session`) feeds it events and commits what it decides.
"""

from tether.monitor._decide import decide, spend_of
from tether.monitor._detectors import Detector, Finding, tighten
from tether.monitor._labelling import result_label, result_labels
from tether.monitor._ledger import LEDGER_PREFIX, LedgerState, ledger_id
from tether.monitor._plan_book import PLAN_TOOL, PlanRecord, matches, plans_from_json, plans_to_json
from tether.monitor._plans import decide_plan
from tether.monitor._shape import check_shape
from tether.monitor._state import MAX_CALL_RECORDS, CallRecord, SessionState
from tether.monitor._view import CheckView, Leaf

__all__ = [
    "LEDGER_PREFIX",
    "MAX_CALL_RECORDS",
    "PLAN_TOOL",
    "CallRecord",
    "CheckView",
    "Detector",
    "Finding",
    "Leaf",
    "LedgerState",
    "SessionState",
    "check_shape",
    "decide",
    "ledger_id",
    "PlanRecord",
    "decide_plan",
    "matches",
    "plans_from_json",
    "plans_to_json",
    "result_label",
    "result_labels",
    "spend_of",
    "tighten",
]
