"""What a provenance lookup found: the sources holding a value and the label they give it.

The combination rules (see :mod:`tether.flow._provenance`): a pinned trusted source wins (the
meet of the pinned labels found), else trusted sources join their tags, else untrusted sources
join their labels. :class:`Hits` collects the sources found by one lookup, whichever structure
found them (token maps, core arrays, gram chains, a direct scan), and says when nothing found
later can change the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.flow._labels import TRUSTED, Label

__all__ = ["NOT_FOUND", "Hits", "Match", "combine"]


@dataclass(frozen=True, slots=True)
class Match:
    """The result of a provenance lookup."""

    found: bool
    """Whether any source contains the value."""
    label: Label
    """Combined label of the matching sources (see the module docstring; ``TRUSTED`` when not found)."""
    sources: tuple[str, ...]
    """Event ids of the matching sources that carry the reported label (at most 8)."""
    complete: bool = True
    """False when a bound stopped the search early: a source that was not searched could raise the label."""
    pinned: bool = False
    """Whether a pinned trusted source (the task, a policy constant) holds the value."""


NOT_FOUND = Match(found=False, label=TRUSTED, sources=())


def combine(a: Label, b: Label) -> Label:
    """The label of a value found in two sources of the same kind (both pinned or both not) labelled
    ``a`` and ``b``: a trusted source beats an untrusted one, and tags join (module docstring)."""
    if a.untrusted != b.untrusted:
        return b if a.untrusted else a
    return a.join(b)


class Hits:
    """Sources found so far for one lookup, and the label they give (module docstring)."""

    __slots__ = ("pinned", "pins", "sources", "trusted", "untrusted")

    def __init__(self, pins: int) -> None:
        self.pins = pins
        """Sources numbered below this are pinned."""
        self.sources: list[tuple[int, Label]] = []
        self.pinned: Label | None = None
        """Meet of the labels of the trusted pinned sources found."""
        self.trusted: Label | None = None
        """Join of the labels of the other trusted sources found."""
        self.untrusted: Label | None = None
        """Join of the labels of the untrusted sources found."""

    def is_pinned(self, src: int, lab: Label) -> bool:
        return src < self.pins and not lab.untrusted

    def could_change(self, src: int, lab: Label) -> bool:
        """Whether finding source ``src`` labelled ``lab`` could change the result."""
        if self.is_pinned(src, lab):
            return self.pinned is None or not self.pinned <= lab
        if self.pinned is not None:
            return False
        if lab.untrusted:
            return self.trusted is None and (self.untrusted is None or not lab <= self.untrusted)
        return self.trusted is None or not lab <= self.trusted

    def add(self, src: int, lab: Label) -> bool:
        """Record a source; True when nothing found later can change the result."""
        self.sources.append((src, lab))
        if self.is_pinned(src, lab):
            self.pinned = lab if self.pinned is None else self.pinned.meet(lab)
            return self.pinned == TRUSTED
        if lab.untrusted:
            self.untrusted = lab if self.untrusted is None else self.untrusted.join(lab)
        else:
            self.trusted = lab if self.trusted is None else self.trusted.join(lab)
        return False
