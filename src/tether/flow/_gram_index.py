"""The provenance index's sampled-gram buckets, as chains in flat numpy arrays.

Entry ``i`` (a 64-bit word: source, position, 8 check bits; see :mod:`tether.flow._provenance`)
lies in bucket ``bucket[i]``; ``after[i]`` is the next entry of the same bucket (-1: none), and
``head``/``tail``/``count`` give each bucket's first and last entry and its size. Entries are
numbered in the order they were added (sources in order, each source's grams by position), and
a bucket's chain follows that order: walking it visits the same entries, in the same order, as a
per-bucket list would (oldest sources first), so lookups and their scan bounds are unchanged.

Adding a source or forgetting the oldest epoch is a handful of vectorised steps (one sort of the
new entries by bucket, a few scatters), never a Python loop per bucket. The arrays are derived
from the indexed texts alone, so a restored index rebuilds them (:meth:`GramChains.build`)
rather than trusting a saved copy: nothing a snapshot says can make a lookup miss a source.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tether.flow._hashing import STEP, K, sample_hashes, strided_hashes

I64 = npt.NDArray[np.int64]
_IDX_BITS = 40  # entry numbers fit in 40 bits (an index holds far fewer than 2**40 grams)
_IDX_MASK = np.int64((1 << _IDX_BITS) - 1)


def _entries_of(src: I64, starts: I64, hashes: npt.NDArray[np.uint64], src_shift: int, fp_bits: int) -> npt.NDArray[np.uint64]:
    fp = (hashes >> np.uint64(24)) & np.uint64((1 << fp_bits) - 1)
    out: npt.NDArray[np.uint64] = (src.astype(np.uint64) << np.uint64(src_shift)) | (starts.astype(np.uint64) << np.uint64(fp_bits)) | fp
    return out


def sampled_grams(texts: list[bytes]) -> tuple[I64, I64, npt.NDArray[np.uint64]]:
    """For every source in ``texts``: which source (its position in the list), start and hash of each
    sampled gram (:func:`tether.flow._hashing.sample_hashes`), all sources in one vectorised pass:
    each text is padded to a multiple of ``STEP`` bytes, so every sampled gram of the joined bytes
    starts at a multiple of ``STEP`` and one strided view hashes them all."""
    if len(texts) == 1:
        starts, hashes = sample_hashes(texts[0])
        return np.zeros(starts.size, dtype=np.int64), starts, hashes
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    counts = np.maximum((lengths - K) // STEP + 1, 0)
    total = int(counts.sum())
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint64)
    padded = lengths + (-lengths % STEP)
    pads = [bytes(p) for p in range(STEP)]
    joined = b"".join([part for text in texts for part in (text, pads[-len(text) % STEP])] + [bytes(8)])
    windows = int(padded.sum()) // STEP
    which = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    starts = (np.arange(total, dtype=np.int64) - first[which]) * STEP
    window = (np.concatenate(([0], np.cumsum(padded)[:-1]))[which] + starts) // STEP
    return which, starts, strided_hashes(joined, windows)[window]


class GramChains:
    """Sampled-gram buckets of a provenance index (module docstring)."""

    __slots__ = ("after", "bucket", "count", "entry", "head", "mask", "size", "tail")

    def __init__(self, buckets: int) -> None:
        self.mask = buckets - 1
        self.head: I64 = np.full(buckets, -1, dtype=np.int64)
        self.tail: I64 = np.full(buckets, -1, dtype=np.int64)
        self.count: I64 = np.zeros(buckets, dtype=np.int64)
        self.entry: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self.after: I64 = np.zeros(0, dtype=np.int64)
        self.bucket: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.size = 0
        """Entries held."""

    def add(self, src: I64, starts: I64, hashes: npt.NDArray[np.uint64], src_shift: int, fp_bits: int) -> None:
        """Append the grams of one or more sources (in source order, each by position) to their buckets."""
        m = int(starts.size)
        if not m:
            return
        n = self.size
        self._reserve(n + m)
        where = (hashes & np.uint64(self.mask)).astype(np.int64)
        self.entry[n : n + m] = _entries_of(src, starts, hashes, src_shift, fp_bits)
        self.bucket[n : n + m] = where
        # One sort of (bucket, entry number) groups the new entries by bucket, in order within each
        # (in place: a whole build sorts millions of entries, and every new array costs page faults).
        ordered = where
        ordered <<= _IDX_BITS
        ordered |= np.arange(n, n + m, dtype=np.int64)
        ordered.sort()
        ids = ordered & _IDX_MASK
        by = ordered >> _IDX_BITS
        same = by[1:] == by[:-1]
        after = self.after
        after[n : n + m] = -1
        after[ids[:-1][same]] = ids[1:][same]
        firsts = np.concatenate(([True], ~same))
        lasts = np.concatenate((~same, [True]))
        groups = by[firsts]
        old_tail = self.tail[groups]
        linked = old_tail >= 0
        after[old_tail[linked]] = ids[firsts][linked]
        self.head[groups[~linked]] = ids[firsts][~linked]
        self.tail[groups] = ids[lasts]
        self.count[groups] += np.diff(np.concatenate((np.flatnonzero(firsts), [m])))
        self.size = n + m

    def _reserve(self, need: int) -> None:
        if need <= self.entry.size:
            return
        cap = max(need, 2 * self.entry.size, 1024)
        for name in ("entry", "after", "bucket"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def drop(self, lo: int, hi: int) -> None:
        """Forget entries ``lo`` to ``hi`` (an epoch: every entry before ``lo`` belongs to pinned sources)."""
        if hi <= lo:
            return
        n, d = self.size, hi - lo
        after, bucket = self.after, self.bucket
        nxt = after[lo:hi]
        # The last forgotten entry of each bucket leads to its first kept one (or -1).
        last = (nxt < 0) | (nxt >= hi)
        first_kept = np.full(self.mask + 1, -1, dtype=np.int64)
        first_kept[bucket[lo:hi][last]] = nxt[last]
        # A pinned entry leading into the forgotten range is its bucket's last pinned entry.
        pinned_next = after[:lo]
        into = np.flatnonzero((pinned_next >= lo) & (pinned_next < hi))
        into_buckets = bucket[into]
        after[into] = first_kept[into_buckets]
        gone_buckets = np.unique(bucket[lo:hi][last])
        head_gone = self.head[gone_buckets] >= lo
        self.head[gone_buckets[head_gone]] = first_kept[gone_buckets[head_gone]]
        tail_gone = self.tail[gone_buckets] < hi
        last_pinned = np.full(self.mask + 1, -1, dtype=np.int64)
        last_pinned[into_buckets] = into
        self.tail[gone_buckets[tail_gone]] = last_pinned[gone_buckets[tail_gone]]
        self.count -= np.bincount(bucket[lo:hi], minlength=self.mask + 1)
        # Renumber what followed the forgotten range and close the gap.
        for arr in (self.head, self.tail, after[:lo]):
            arr[arr >= hi] -= d
        moved = after[hi:n]
        moved[moved >= 0] -= d
        after[lo : n - d] = moved.copy()
        self.entry[lo : n - d] = self.entry[hi:n].copy()
        bucket[lo : n - d] = bucket[hi:n].copy()
        self.size = n - d

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return int(self.head.nbytes + self.tail.nbytes + self.count.nbytes + self.entry.nbytes + self.after.nbytes + self.bucket.nbytes)
