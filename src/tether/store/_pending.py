"""Reading the pending-approvals index a page at a time: the queries both stores run.

A store lives for weeks. A session abandoned with an ask outstanding leaves a request that
nobody answers (it is denied when its session next looks, which may be never), so a
week-old store can hold thousands of stale requests. The readers that serve people (the
oversight service, ``tether approvals``, ``tether session list``) filter, page and count in
the database, so each request decodes the rows it shows and no more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from tether.store._chain import PendingApproval

_COLUMNS = "session_id, call_id, tool, args, summary, requested_at, expires_at"
_ORDER = "requested_at, session_id, call_id"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what the pending queries need."""

    mark: str
    """The parameter placeholder."""
    starts_with: str
    """A test that a text ``{column}`` starts with one parameter (``{mark}``): no pattern, case counts."""
    no_limit: str
    """What follows ``LIMIT`` for no limit (an ``OFFSET`` needs a ``LIMIT`` before it in SQLite)."""
    holds_nul: bool
    """Whether its text columns can hold U+0000 (PostgreSQL's cannot, and refuses it as a parameter:
    a filter text with one matches nothing there, and is not sent)."""


SQLITE = Dialect(mark="?", starts_with="instr({column}, {mark}) = 1", no_limit="-1", holds_nul=True)
POSTGRES = Dialect(mark="%s", starts_with="starts_with({column}, {mark})", no_limit="ALL", holds_nul=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingFilter:
    """Which pending requests a reader wants (every one when nothing is set)."""

    live_at: float | None = None
    """Only requests expiring at this time (UTC Unix) or later: expired ones count as denied."""
    session_id: str | None = None
    """Only the requests of this session."""
    call_prefix: str | None = None
    """Only the requests whose call id starts with this (a person names a call by a prefix of its id)."""
    hide: Sequence[str] = ()
    """Leave out the sessions whose id starts with one of these (streams that are not agent runs)."""

    def __post_init__(self) -> None:
        # One prefix given as a string must not be taken for a sequence of one-letter prefixes.
        object.__setattr__(self, "hide", (self.hide,) if isinstance(self.hide, str) else tuple(self.hide))

    def where(self, dialect: Dialect) -> tuple[str, list[object]]:
        """The ``WHERE`` clause (empty when nothing is filtered) and its parameters."""
        clauses: list[str] = []
        params: list[object] = []

        def text(clause: str, value: str, *, negated: bool = False) -> None:
            if "\x00" in value and not dialect.holds_nul:
                if not negated:
                    clauses.append("1 = 0")  # nothing stored holds it; leaving it out hides nothing
                return
            clauses.append(("NOT " if negated else "") + clause)
            params.append(value)

        if self.live_at is not None:
            clauses.append(f"expires_at >= {dialect.mark}")
            params.append(float(self.live_at))
        if self.session_id is not None:
            text(f"session_id = {dialect.mark}", self.session_id)
        if self.call_prefix is not None:
            text(dialect.starts_with.format(column="call_id", mark=dialect.mark), self.call_prefix)
        for prefix in self.hide:
            text(dialect.starts_with.format(column="session_id", mark=dialect.mark), prefix, negated=True)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def page_query(dialect: Dialect, which: PendingFilter, limit: int | None, offset: int) -> tuple[str, tuple[object, ...]]:
    """The query of the requests ``which`` selects, oldest first, at most ``limit`` from ``offset``."""
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError(f"a page needs a limit and an offset of 0 or more, got limit={limit!r}, offset={offset!r}")
    where, params = which.where(dialect)
    sql = f"SELECT {_COLUMNS} FROM approvals{where} ORDER BY {_ORDER}"
    if limit is not None or offset:
        sql += f" LIMIT {dialect.no_limit if limit is None else int(limit)} OFFSET {int(offset)}"
    return sql, tuple(params)


def count_query(dialect: Dialect, which: PendingFilter) -> tuple[str, tuple[object, ...]]:
    """The query of how many requests ``which`` selects in each session."""
    where, params = which.where(dialect)
    return f"SELECT session_id, count(*) FROM approvals{where} GROUP BY session_id", tuple(params)


def pending_from_rows(rows: Sequence[Any]) -> list[PendingApproval]:
    """The requests of rows read by :func:`page_query`."""
    return [PendingApproval(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5], r[6]) for r in rows]


class PendingIndex(ABC):
    """The reads of the pending-approvals index, written once for both stores (a base of each):
    a store names its SQL dialect and how it runs a read."""

    pending_dialect: ClassVar[Dialect]
    """How this store's database spells the queries."""

    @abstractmethod
    def _all(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        """Run one read; its rows."""

    def pending_approvals(
        self,
        *,
        live_at: float | None = None,
        session_id: str | None = None,
        call_prefix: str | None = None,
        hide: Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PendingApproval]:
        """Approval requests without an answer in the log, oldest first (see ``EventStore.pending_approvals``)."""
        which = PendingFilter(live_at=live_at, session_id=session_id, call_prefix=call_prefix, hide=hide)
        return pending_from_rows(self._all(*page_query(self.pending_dialect, which, limit, offset)))

    def pending_counts(self, *, live_at: float | None = None, session_id: str | None = None, hide: Sequence[str] = ()) -> dict[str, int]:
        """How many pending requests each session has (see ``EventStore.pending_counts``)."""
        which = PendingFilter(live_at=live_at, session_id=session_id, hide=hide)
        return {str(r[0]): int(r[1]) for r in self._all(*count_query(self.pending_dialect, which))}
