"""Information-flow labels: an integrity level, a set of confidentiality tags and, optionally,
the principals allowed to read the data.

Labels form a lattice. ``a <= b`` reads "a is at most as restrictive as b": data
labelled ``a`` may flow wherever data labelled ``b`` may. The bottom element is
trusted data with no tags; ``join`` (least upper bound) is what mixing two pieces
of data gives, and ``meet`` (greatest lower bound) is what we know of a value that
is found in two independent sources (it could have come from either).

Readers are a confidentiality dimension of their own: ``None`` means anyone may read the data
(no restriction, the bottom); a set names the only principals (canonical forms, see
:mod:`tether.flow._principals`) allowed to. Fewer readers is more restrictive, so ``join``
intersects reader sets and ``meet`` unites them.
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
    readers: frozenset[str] | None = None
    """The principals allowed to read the data (canonical forms); ``None``: anyone."""

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Label):
            return NotImplemented
        return self.integrity == other.integrity and self.tags == other.tags and self.readers == other.readers

    def __hash__(self) -> int:
        return hash((self.integrity, self.tags, self.readers))

    @property
    def untrusted(self) -> bool:
        """True when an attacker may have influenced the data."""
        return self.integrity == "untrusted"

    def join(self, other: Label) -> Label:
        """Least upper bound: the label of data derived from both."""
        if self is other:
            return self
        integrity: Integrity = "untrusted" if self.integrity == "untrusted" or other.integrity == "untrusted" else "trusted"
        return _make(integrity, self.tags | other.tags, _fewer(self.readers, other.readers))

    def meet(self, other: Label) -> Label:
        """Greatest lower bound: what is known of a value found in both sources."""
        if self is other:
            return self
        integrity: Integrity = "trusted" if self.integrity == "trusted" or other.integrity == "trusted" else "untrusted"
        return _make(integrity, self.tags & other.tags, _more(self.readers, other.readers))

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Label):
            return NotImplemented
        integrity_ok = self.integrity == "trusted" or other.integrity == "untrusted"
        if not (integrity_ok and self.tags <= other.tags):
            return False
        return self.readers is None or (other.readers is not None and other.readers <= self.readers)

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
        """A short human-readable form, e.g. ``untrusted+secret`` or ``trusted+readers(a@x.com,b@x.com)``."""
        parts = [self.integrity, *sorted(self.tags)]
        if self.readers is not None:
            parts.append(f"readers({','.join(sorted(self.readers))})")
        return "+".join(parts)

    def to_json(self) -> dict[str, object]:
        """The JSON form stored in events (``readers`` only when the readers are restricted)."""
        out: dict[str, object] = {"integrity": self.integrity, "tags": sorted(self.tags)}
        if self.readers is not None:
            out["readers"] = sorted(self.readers)
        return out

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
        readers = data.get("readers")
        if readers is not None and (not isinstance(readers, list) or not all(isinstance(r, str) for r in readers)):
            raise ValueError(f"label readers must be a list of strings, got {readers!r}")
        return label(integrity, tags, readers)


def _fewer(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Readers of data derived from both: only those allowed to read each (``None`` is anyone)."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    return a & b


def _more(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Readers of a value found in both: those allowed to read either."""
    if a is None or b is None:
        return None
    return a if a is b else a | b


_INTERNED: dict[tuple[Integrity, frozenset[str], frozenset[str] | None], Label] = {}


def _make(integrity: Integrity, tags: frozenset[str], readers: frozenset[str] | None = None) -> Label:
    key = (integrity, tags, readers)
    found = _INTERNED.get(key)
    if found is None:
        found = Label(integrity, tags, readers)
        if len(_INTERNED) < 4096:  # labels are few in practice; never grow without bound
            _INTERNED[key] = found
    return found


def label(integrity: Integrity = "trusted", tags: Iterable[str] = (), readers: Iterable[str] | None = None) -> Label:
    """Build (and intern) a label; ``readers`` (canonical principals) restricts who may read the data."""
    return _make(integrity, frozenset(tags), None if readers is None else frozenset(readers))


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
