"""A principal's ledger, folded: what all sessions of one principal share.

The ledger is its own hash-chained stream in the event store, under the pseudo session
id ``principal:<name>``. It holds the principal-scoped endorsements and, when the policy
sets ``principal_budgets``, one reservation per allowed call of any of the principal's
sessions. A session folds the ledger's new events before deciding; a reservation is
appended with ``expect_seq`` before the session logs its allow, so two sessions (in any
processes) can never both take the last unit of a shared budget. Nothing here reads a
clock or the store.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from tether._decision import Reason
from tether.approvals import EndorsementBook
from tether.events import BudgetReleased, BudgetReserved, EndorsementAdded, EndorsementRevoked, Event
from tether.policy import Policy

LEDGER_PREFIX = "principal:"
"""Stream ids of principals' ledgers start with this; no session may take such an id."""

MAX_RESERVATIONS = 8192
"""Recent reservations remembered by call (a session retrying its append must find its own);
the totals keep counting every reservation ever made."""


def ledger_id(principal: str) -> str:
    """The stream id of ``principal``'s ledger."""
    return LEDGER_PREFIX + principal


@dataclass(frozen=True, slots=True)
class Reservation:
    """One call's share of the principal's budgets."""

    tool: str
    write: bool
    spend: float
    time: float


@dataclass(slots=True)
class LedgerState:
    """A principal's ledger folded: endorsements and the use of the fleet budgets."""

    principal: str
    endorsements: EndorsementBook = field(default_factory=EndorsementBook)
    """Principal-scoped endorsements."""
    calls: int = 0
    writes: int = 0
    spend: float = 0.0
    per_tool: Counter[str] = field(default_factory=Counter)
    rate_times: dict[str, deque[float]] = field(default_factory=dict)
    reservations: OrderedDict[tuple[str, str], Reservation] = field(default_factory=OrderedDict)
    last_seq: int = 0
    last_hash: str = ""

    def apply(self, event: Event, policy: Policy) -> None:
        """Fold one ledger event."""
        if isinstance(event, EndorsementAdded):
            self.endorsements.added(event)
        elif isinstance(event, EndorsementRevoked):
            self.endorsements.revoked(event)
        elif isinstance(event, BudgetReserved):
            key = (event.for_session, event.call_id)
            if key in self.reservations:
                return
            item = Reservation(event.tool, event.write, max(0.0, event.spend), event.time)
            self.reservations[key] = item
            if len(self.reservations) > MAX_RESERVATIONS:
                self.reservations.popitem(last=False)
            self._count(item, +1, policy)
        elif isinstance(event, BudgetReleased):
            gone = self.reservations.pop((event.for_session, event.call_id), None)
            if gone is not None:
                self._count(gone, -1, policy)

    def _count(self, item: Reservation, sign: int, policy: Policy) -> None:
        self.calls += sign
        self.writes += sign if item.write else 0
        self.spend += sign * item.spend
        self.per_tool[item.tool] += sign
        if sign < 0:
            return  # a released call's time stays in its rate windows: conservative
        for rule, limit, window in policy.principal_rate_rules_for(item.tool):
            times = self.rate_times.setdefault(rule, deque())
            times.append(item.time)
            while times and (times[0] <= item.time - window or len(times) > limit):
                times.popleft()

    def reserved(self, session_id: str, call_id: str) -> bool:
        """Whether this call already holds its share (it reserved, then lost a race on its own session)."""
        return (session_id, call_id) in self.reservations


def check_principal_budgets(
    policy: Policy, ledger: LedgerState, tool: str, write: bool, spend: float, now: float, denials: list[Reason]
) -> None:
    """Append a reason for every principal budget the call would exceed."""
    budgets = policy.spec.principal_budgets
    if budgets is None:
        return
    who = repr(ledger.principal)
    if budgets.max_calls is not None and ledger.calls + 1 > budgets.max_calls:
        denials.append(
            Reason("budget", "principal_budgets.max_calls", f"the call budget of {budgets.max_calls} shared by {who}'s sessions is used up")
        )
    if budgets.max_writes is not None and write and ledger.writes + 1 > budgets.max_writes:
        denials.append(
            Reason(
                "budget", "principal_budgets.max_writes", f"the write budget of {budgets.max_writes} shared by {who}'s sessions is used up"
            )
        )
    if budgets.max_spend is not None and spend and ledger.spend + spend > budgets.max_spend:
        denials.append(
            Reason(
                "budget",
                "principal_budgets.max_spend",
                f"spending {spend!r} would exceed the spend budget of {budgets.max_spend!r} shared by {who}'s sessions (spent {ledger.spend!r})",
            )
        )
    limit = budgets.tool_calls.get(tool)
    if limit is not None and ledger.per_tool.get(tool, 0) + 1 > limit:
        denials.append(
            Reason(
                "budget",
                f"principal_budgets.tool_calls.{tool}",
                f"the budget of {limit} call(s) to {tool!r} shared by {who}'s sessions is used up",
            )
        )
    for rule, limit, window in policy.principal_rate_rules_for(tool):
        recent = sum(1 for t in ledger.rate_times.get(rule, ()) if t > now - window)
        if recent + 1 > limit:
            denials.append(Reason("rate", rule, f"rate limit of {limit} call(s) per {window:g} s shared by {who}'s sessions reached"))
