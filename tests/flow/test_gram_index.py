"""The gram chains hold, bucket by bucket and in order, what per-bucket lists would hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow._gram_index import GramChains, sampled_grams
from tether.flow._hashing import sample_hashes

SHIFT, FP = 36, 8
TEXT = st.binary(min_size=0, max_size=60).map(lambda b: bytes(c % 4 + 97 for c in b))  # few distinct grams


def _walk(grams: GramChains, bucket: int) -> list[int]:
    out, at = [], int(grams.head[bucket])
    while at >= 0:
        out.append(int(grams.entry[at]))
        at = int(grams.after[at])
    return out


def _reference(sources: list[tuple[int, bytes]], buckets: int) -> list[list[int]]:
    lists: list[list[int]] = [[] for _ in range(buckets)]
    for src, text in sources:
        starts, hashes = sample_hashes(text)
        for start, h in zip(starts.tolist(), hashes.tolist(), strict=True):
            lists[h & (buckets - 1)].append(src << SHIFT | start << FP | (h >> 24) & 0xFF)
    return lists


def _check(grams: GramChains, sources: list[tuple[int, bytes]], buckets: int) -> None:
    expected = _reference(sources, buckets)
    assert grams.size == sum(map(len, expected))
    for b in range(buckets):
        assert _walk(grams, b) == expected[b], b
        assert int(grams.count[b]) == len(expected[b])
        assert (grams.tail[b] < 0) == (not expected[b])
        if expected[b]:
            assert int(grams.entry[grams.tail[b]]) == expected[b][-1]


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 3), st.lists(st.lists(TEXT, min_size=1, max_size=4), min_size=1, max_size=5), st.booleans())
def test_chains_match_per_bucket_lists_through_adds_and_drops(pins: int, epochs: list[list[bytes]], bulk: bool) -> None:
    buckets = 8
    grams = GramChains(buckets)
    pinned = [(i, bytes([97 + i % 4]) * (10 + i)) for i in range(pins)]
    live: list[list[tuple[int, bytes]]] = []
    src = pins
    for texts in epochs:
        live.append([(src + i, t) for i, t in enumerate(texts)])
        src += len(texts)
    everything = pinned + [s for epoch in live for s in epoch]
    if bulk:  # built at once, as a restore or the first lookup past the scan limit does
        which, starts, hashes = sampled_grams([t for _, t in everything])
        grams.add(which, starts, hashes, SHIFT, FP)
    else:
        for s, text in everything:
            which, starts, hashes = sampled_grams([text])
            grams.add(which + s, starts, hashes, SHIFT, FP)
    _check(grams, everything, buckets)
    count = lambda ss: sum(max((len(t) - 6) // 3 + 1, 0) for _, t in ss)  # noqa: E731
    lo = count(pinned)
    while live:
        gone = live.pop(0)
        grams.drop(lo, lo + count(gone))
        _check(grams, pinned + [s for epoch in live for s in epoch], buckets)
        # Adding after a drop links onto the renumbered chains.
        extra = (src, b"abcabcabcdab")
        which, starts, hashes = sampled_grams([extra[1]])
        grams.add(which + src, starts, hashes, SHIFT, FP)
        live.append([extra]) if not live else live[-1].append(extra)
        src += 1
        _check(grams, pinned + [s for epoch in live for s in epoch], buckets)
        if len(live) == 1:
            break
    assert np.all(grams.count >= 0)
