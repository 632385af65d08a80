"""Information-flow labels: an integrity level and a set of confidentiality tags.

Labels form a lattice. ``a <= b`` reads "a is at most as restrictive as b": data
labelled ``a`` may flow wherever data labelled ``b`` may. The bottom element is
trusted data with no tags; ``join`` (least upper bound) is what mixing two pieces
of data gives, and ``meet`` (greatest lower bound) is what we know of a value that
is found in two independent sources (it could have come from either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Integrity = Literal["trusted", "untrusted"]
"""Integrity level: ``trusted`` data comes from the user, the policy or a trusted tool."""

INTEGRITY_LEVELS: tuple[Integrity, ...] = ("trusted", "untrusted")


@dataclass(frozen=True, slots=True, eq=False)
class Label:
    """The label of a piece of data."""

    integrity: Integrity = "trusted"
    """``trusted`` or ``untrusted`` (an attacker may have chosen the data)."""
    tags: frozenset[str] = field(default_factory=frozenset)
    """Confidentiality tags such as ``secret`` or ``pii``."""

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Label):
            return NotImplemented
        return self.integrity == other.integrity and self.tags == other.tags

    def __hash__(self) -> int:
        return hash((self.integrity, self.tags))

    @property
    def untrusted(self) -> bool:
        """True when an attacker may have influenced the data."""
        return self.integrity == "untrusted"

    def join(self, other: Label) -> Label:
        """Least upper bound: the label of data derived from both."""
        if self is other:
            return self
        integrity: Integrity = "untrusted" if self.integrity == "untrusted" or other.integrity == "untrusted" else "trusted"
        return _make(integrity, self.tags | other.tags)

    def meet(self, other: Label) -> Label:
        """Greatest lower bound: what is known of a value found in both sources."""
        if self is other:
            return self
        integrity: Integrity = "trusted" if self.integrity == "trusted" or other.integrity == "trusted" else "untrusted"
        return _make(integrity, self.tags & other.tags)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Label):
            return NotImplemented
        integrity_ok = self.integrity == "trusted" or other.integrity == "untrusted"
        return integrity_ok and self.tags <= other.tags

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Label):
            return NotImplemented
        return self <= other and self != other

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Label):
            return NotImplemented
        return other <= self

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Label):
            return NotImplemented
        return other < self

    def describe(self) -> str:
        """A short human-readable form, e.g. ``untrusted+secret``."""
        return "+".join([self.integrity, *sorted(self.tags)])

    def to_json(self) -> dict[str, object]:
        """The JSON form stored in events."""
        return {"integrity": self.integrity, "tags": sorted(self.tags)}

    @staticmethod
    def from_json(data: object) -> Label:
        """Parse the form written by :meth:`to_json`."""
        if not isinstance(data, dict):
            raise ValueError(f"label must be an object, got {data!r}")
        integrity = data.get("integrity", "trusted")
        if integrity not in INTEGRITY_LEVELS:
            raise ValueError(f"unknown integrity level {integrity!r}")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"label tags must be a list of strings, got {tags!r}")
        return label(integrity, tags)


_INTERNED: dict[tuple[Integrity, frozenset[str]], Label] = {}


def _make(integrity: Integrity, tags: frozenset[str]) -> Label:
    key = (integrity, tags)
    found = _INTERNED.get(key)
    if found is None:
        found = Label(integrity, tags)
        if len(_INTERNED) < 4096:  # labels are few in practice; never grow without bound
            _INTERNED[key] = found
    return found


def label(integrity: Integrity = "trusted", tags: Iterable[str] = ()) -> Label:
    """Build (and intern) a label."""
    return _make(integrity, frozenset(tags))


TRUSTED = label("trusted")
"""Bottom of the lattice: trusted data with no confidentiality tags."""
UNTRUSTED = label("untrusted")
"""Untrusted data with no confidentiality tags."""


def join_all(labels: Iterable[Label]) -> Label:
    """Join of many labels (``TRUSTED`` for none)."""
    result = TRUSTED
    for item in labels:
        result = result.join(item)
    return result
