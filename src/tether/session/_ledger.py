"""A principal's ledger in the store: read it, and append to it without ever overrunning.

The ledger is a hash-chained stream like a session's (``principal:<name>``), so it works on
any :class:`~tether.store.EventStore`. Every append names the head it was decided on
(``expect_seq``); a writer that lost the race folds what it missed and decides again
inside the store's turn, exactly like a session (see ``Session._transact``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TypeVar

from tether.errors import StaleSession, StoreError
from tether.events import Event
from tether.monitor import LedgerState, ledger_id
from tether.policy import Policy
from tether.store import GENESIS, EventStore, StoredEvent, chain_break

T = TypeVar("T")


class PrincipalLedger:
    """One principal's ledger as one session sees it (not thread-safe: the session's lock covers it)."""

    def __init__(self, store: EventStore, policy: Policy, principal: str) -> None:
        self.store = store
        """Where the ledger is."""
        self.policy = policy
        """The policy its budgets are counted under (the session's)."""
        self.id = ledger_id(principal)
        """The ledger's stream id."""
        self.state = LedgerState(principal)
        """The folded ledger (read it, do not modify it)."""

    def catch_up(self) -> None:
        """Fold the events appended since the last look (every process's)."""
        self._apply(self.store.read(self.id, self.state.last_seq), check=True)

    def fold_until(self, seq: int) -> None:
        """Fold the ledger up to event ``seq`` (replay: the ledger as a past decision saw it)."""
        if seq > self.state.last_seq:
            self._apply(self.store.read(self.id, self.state.last_seq, limit=seq - self.state.last_seq), check=True)

    def _apply(self, stored: Sequence[StoredEvent], *, check: bool) -> None:
        if check:
            bad = chain_break(stored, self.state.last_seq, self.state.last_hash or GENESIS)
            if bad is not None:
                raise StoreError(
                    f"ledger {self.id!r}: event {bad.seq} does not match its hash (the log was modified); run 'tether audit verify'"
                )
        for item in stored:
            self.state.apply(item.event(), self.policy)
            self.state.last_seq = item.seq
            self.state.last_hash = item.hash

    def append(self, events: Sequence[Event], *, expect_current: bool) -> None:
        """Append ``events``; with ``expect_current``, only if nobody appended since the last fold
        (raises :class:`~tether.errors.StaleSession` otherwise, having written nothing)."""
        stored = self.store.append(self.id, events, expect_seq=self.state.last_seq if expect_current else None)
        if expect_current:
            self._apply(stored, check=False)
        else:
            self.catch_up()

    def commit(self, attempt: Callable[[], tuple[Sequence[Event], T]], retries: int) -> T:
        """Decide with ``attempt`` on the ledger as it is now and append what it returns, retrying
        inside the store's turn after losing a race; returns what ``attempt`` returned last."""
        for n in range(retries):
            with self.store.turn() if n else contextlib.nullcontext():
                self.catch_up()
                events, result = attempt()
                if not events:
                    return result
                try:
                    self.append(events, expect_current=True)
                except StaleSession:
                    continue
                return result
        raise StoreError(f"ledger {self.id!r}: lost the race to other writers {retries} times in a row")
