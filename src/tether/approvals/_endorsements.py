"""The fold of endorsements: values a human approved once for one argument of one tool.

An endorsement ("approve and remember") makes a value count as trusted for that tool
argument in the flow check, until it expires or is revoked. Values are compared by their
canonical form (:func:`tether.policy.canonical_value`, the same equality as the policy's
``equals``), so case, Unicode form or percent-encoding cannot make an endorsed value
match a different one, and a value with hidden characters matches nothing. Expiry is
judged at the decision's ``now``: the fold reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.events import EndorsementAdded, EndorsementRevoked, EndorsementScope
from tether.policy import canonical_value

MAX_ENDORSEMENTS = 4096
"""Live endorsements one book keeps; past that the oldest are forgotten (which only means
their values are asked about again)."""


@dataclass(frozen=True, slots=True)
class Endorsement:
    """One live endorsement."""

    id: str
    """The id of its ``endorsement_added`` event."""
    scope: EndorsementScope
    """``session`` or ``principal``."""
    principal: str
    """The principal it was given for."""
    origin_session: str
    """The session where it was given."""
    tool: str
    """The tool."""
    arg: str
    """The top-level argument."""
    value: Any
    """The value as the human saw it."""
    canonical: str
    """Its canonical form."""
    expires_at: float | None
    """When it stops holding (None: until revoked)."""
    by: str
    """Who gave it."""
    time: float
    """When."""
    call_id: str
    """The asked call that was approved with it, if any."""

    def live(self, now: float) -> bool:
        """Whether it holds at ``now``."""
        return self.expires_at is None or now <= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (snapshots, the API)."""
        return {
            "id": self.id,
            "scope": self.scope,
            "principal": self.principal,
            "origin_session": self.origin_session,
            "tool": self.tool,
            "arg": self.arg,
            "value": self.value,
            "canonical": self.canonical,
            "expires_at": self.expires_at,
            "by": self.by,
            "time": self.time,
            "call_id": self.call_id,
        }


class EndorsementBook:
    """Live endorsements of one session or one principal's ledger, folded from their events."""

    __slots__ = ("_by_id", "_by_key")

    def __init__(self) -> None:
        self._by_id: dict[str, Endorsement] = {}
        self._by_key: dict[tuple[str, str, str], list[Endorsement]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def added(self, event: EndorsementAdded) -> None:
        """Fold an ``endorsement_added`` event (one whose canonical form is not the value's is ignored)."""
        if canonical_value(event.value) != event.canonical:
            return  # a forged or broken event never endorses anything
        self._forget_expired(event.time)
        self._put(
            Endorsement(
                event.id,
                event.scope,
                event.principal,
                event.origin_session,
                event.tool,
                event.arg,
                event.value,
                event.canonical,
                event.expires_at,
                event.by,
                event.time,
                event.call_id,
            )
        )
        while len(self._by_id) > MAX_ENDORSEMENTS:
            self._drop(next(iter(self._by_id)))

    def revoked(self, event: EndorsementRevoked) -> bool:
        """Fold an ``endorsement_revoked`` event; True when it withdrew a live endorsement."""
        return self._drop(event.endorsement_id)

    def get(self, endorsement_id: str) -> Endorsement | None:
        """A live (not revoked) endorsement by id, expired or not."""
        return self._by_id.get(endorsement_id)

    def match(self, tool: str, arg: str, value: Any, now: float) -> Endorsement | None:
        """The endorsement that makes ``value`` trusted as ``arg`` of ``tool`` at ``now``, if any."""
        if not self._by_id:
            return None
        canonical = canonical_value(value)
        if canonical is None:
            return None
        for found in self._by_key.get((tool, arg, canonical), ()):
            if found.live(now):
                return found
        return None

    def all(self, now: float | None = None) -> list[Endorsement]:
        """Every endorsement not revoked, oldest first (only those live at ``now`` when given)."""
        return [e for e in self._by_id.values() if now is None or e.live(now)]

    def _put(self, item: Endorsement) -> None:
        self._by_id[item.id] = item
        self._by_key.setdefault((item.tool, item.arg, item.canonical), []).append(item)

    def _drop(self, endorsement_id: str) -> bool:
        item = self._by_id.pop(endorsement_id, None)
        if item is None:
            return False
        key = (item.tool, item.arg, item.canonical)
        rest = [e for e in self._by_key.get(key, ()) if e.id != endorsement_id]
        if rest:
            self._by_key[key] = rest
        else:
            self._by_key.pop(key, None)
        return True

    def _forget_expired(self, now: float) -> None:
        """Drop endorsements expired before ``now`` (an event's time: the fold stays deterministic)."""
        for item in [e for e in self._by_id.values() if not e.live(now)]:
            self._drop(item.id)

    def to_snapshot(self) -> list[dict[str, Any]]:
        """A JSON-able copy (session snapshots)."""
        return [e.to_json() for e in self._by_id.values()]

    @classmethod
    def from_snapshot(cls, data: list[dict[str, Any]]) -> EndorsementBook:
        """Rebuild what :meth:`to_snapshot` saved."""
        book = cls()
        for item in data:
            book._put(Endorsement(**item))
        return book
