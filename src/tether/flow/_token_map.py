"""A provenance epoch's token map, saved and restored as two flat lists.

A token map takes a normalised token core to one packed integer: the id of the combined label of
the sources in the epoch that hold the core (``value >> TOKEN_SRC_BITS``, an index into the index's
label table) and one of those sources (``value & TOKEN_SRC_MASK``), the one whose label the
combined label covers. Saving the maps spares a restore from tokenising every indexed text again.

A restore refuses a map that could not have come from the sources it names, with vectorised checks:
every value names a source of its own epoch and a known label, and that label covers the named
source's label with the same integrity (a combined label is never below a source it came from,
and a trusted source is never vouched for by an untrusted label). A core missing from a map only
makes its lookups stricter (a value found nowhere takes the context label).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tether.flow._labels import Label

TOKEN_SRC_BITS = 40
TOKEN_SRC_MASK = (1 << TOKEN_SRC_BITS) - 1


def save(tokens: dict[str, int]) -> list[list[Any]]:
    """The map as two JSON-able lists (cores, packed values)."""
    return [list(tokens), list(tokens.values())]


def restore(saved: Any, first: int, end: int, source_labels: list[Label], labels: list[Label]) -> dict[str, int]:
    """The map :func:`save` gave, for the epoch of sources ``first`` to ``end`` (``source_labels[i]`` is
    source ``first + i``'s label; ``labels`` the index's label table); raises ``ValueError`` when it is
    inconsistent (module docstring)."""
    keys, values = saved
    packed = np.array(values)
    if len(keys) != len(values) or (packed.size and packed.dtype.kind != "i"):
        raise ValueError("snapshot token map is malformed")
    try:
        tokens = dict(zip(keys, values, strict=True))
    except TypeError as exc:
        raise ValueError("snapshot token map is malformed") from exc
    if len(tokens) != len(keys):
        raise ValueError("snapshot token map repeats a token")
    if not tokens:
        return tokens
    lids = packed >> TOKEN_SRC_BITS
    srcs = packed & TOKEN_SRC_MASK
    if int(packed.min()) < 0 or int(lids.max()) >= len(labels) or int(srcs.min()) < first or int(srcs.max()) >= end:
        raise ValueError("snapshot token map names a source outside its epoch or an unknown label")
    ids: dict[Label, int] = {}
    source_ids = np.array([ids.setdefault(lab, len(ids)) for lab in source_labels], dtype=np.int64)
    distinct = list(ids)
    pairs = np.sort(lids * len(distinct) + source_ids[srcs - first])
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
    for pair in pairs.tolist():
        combined, own = labels[pair // len(distinct)], distinct[pair % len(distinct)]
        if combined.untrusted != own.untrusted or not own <= combined:
            raise ValueError("snapshot token map gives a token a label below the source it names")
    return tokens
