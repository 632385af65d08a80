"""Token cores of large sources, as one sorted numpy array per epoch instead of a dict entry per core.

A 1 MB tool output holds about 140,000 distinct token cores; a Python dict entry for each costs
more than everything else recording the output does. A large source's cores are found in
vectorised steps instead (:func:`core_spans`, the same cores as :func:`tether.flow._tokens.token_cores`),
hashed with a polynomial hash over their bytes (Horner's rule, one byte position per vectorised round),
deduplicated within the source (equal hashes whose bytes are equal), and merged into the epoch's
array: one 64-bit word per (source, distinct core), the core's hash in the high bits and a row
number in the low bits, sorted, with the row's source and byte position beside it.

The hash only finds candidates: a lookup (:meth:`CoreArray.sources_of`) accepts a row only when the
named source holds the core's bytes at the named position as a whole token
(:func:`tether.flow._tokens.bounded_at`), so neither a hash collision nor a forged snapshot can make
a source hold a value it does not. Candidates per lookup are bounded (``MAX_CANDIDATES``); past the
bound the caller reports an incomplete answer, as for the gram index.
"""

from __future__ import annotations

import base64
from bisect import bisect_right
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.flow._tokens import bounded_at, core_mask

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]

BASE = 0x100000001B3  # odd: the polynomial hash's base (invertible modulo 2**64)
_M64 = (1 << 64) - 1
MAX_CANDIDATES = 16
"""Most rows verified by one lookup in one epoch's array."""


_FINISH = 0xD6E8FEB86659FD93  # odd: the finishing multiply is a bijection


def core_hash(core: bytes) -> int:
    """The hash of one core's bytes (what :func:`core_spans` computes for every core)."""
    h = 0
    for b in core:
        h = (h * BASE + b) & _M64
    h = ((h ^ (h >> 32)) * _FINISH) & _M64
    return h ^ (h >> 29)


def _finish(h: U64) -> U64:
    # A bijection that spreads short cores (whose polynomial hash is small) over the high bits,
    # which the sorted arrays key on.
    h = (h ^ (h >> np.uint64(32))) * np.uint64(_FINISH)
    out: U64 = h ^ (h >> np.uint64(29))
    return out


def core_spans(raw: npt.NDArray[np.uint8], max_len: int) -> tuple[I64, I64, U64]:
    """Start, length and hash of every token core of a normalised text's bytes (cores longer than
    ``max_len`` left out). A core is a maximal run of bytes that are neither delimiters nor
    stripped edge punctuation (:func:`tether.flow._tokens.core_mask`)."""
    keep = core_mask(raw)
    edges = np.diff(np.concatenate(([False], keep, [False])).view(np.int8))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    ok = lengths <= max_len
    starts, lengths = starts[ok], lengths[ok]
    # Horner's rule for every core at once, one byte position per round: cores ordered longest
    # first (a radix sort of small lengths), so the cores still running are a prefix.
    order = np.argsort(-lengths.astype(np.int16), kind="stable")
    at = starts[order]
    running = np.searchsorted(-lengths[order], -np.arange(1, int(lengths.max(initial=0)) + 1), side="right")
    h = np.zeros(at.size, dtype=np.uint64)
    base = np.uint64(BASE)
    for k, count in enumerate(running.tolist()):
        h[:count] = h[:count] * base + raw[at[:count] + k]
    hashes = np.empty_like(h)
    hashes[order] = _finish(h)
    return starts.astype(np.int64), lengths.astype(np.int64), hashes


def _same_bytes(raw: npt.NDArray[np.uint8], a: I64, b: I64, lengths: I64) -> npt.NDArray[np.bool_]:
    """For each pair: whether ``raw[a:a+len]`` equals ``raw[b:b+len]``, compared 8 bytes at a time."""
    padded = np.concatenate((raw, np.zeros(8, dtype=np.uint8)))
    words = np.lib.stride_tricks.as_strided(padded, shape=(raw.size, 8), strides=(1, 1), writeable=False)
    same = np.ones(lengths.size, dtype=bool)
    left = np.arange(lengths.size)
    offset = 0
    while left.size:
        rest = lengths[left] - offset
        x = words[a[left] + offset].view("<u8").reshape(left.size)
        y = words[b[left] + offset].view("<u8").reshape(left.size)
        # Bytes past the core are the high bytes of a little-endian word: masked off.
        keep = np.where(rest >= 8, np.uint64(_M64), (np.uint64(1) << (np.minimum(rest, 7).astype(np.uint64) * np.uint64(8))) - np.uint64(1))
        same[left[((x ^ y) & keep) != 0]] = False
        offset += 8
        left = left[(rest > 8) & same[left]]
    return same


def distinct_cores(raw: npt.NDArray[np.uint8], max_len: int) -> tuple[I64, I64, U64]:
    """:func:`core_spans`, one occurrence per distinct core (two cores are merged only when their
    bytes are equal; a hash collision keeps both)."""
    starts, lengths, hashes = core_spans(raw, max_len)
    if not starts.size:
        return starts, lengths, hashes
    bits = max(1, (starts.size - 1).bit_length())
    packed = np.sort(((hashes >> np.uint64(bits)) << np.uint64(bits)) | np.arange(starts.size, dtype=np.uint64))
    rows = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    top = packed >> np.uint64(bits)
    dup = np.zeros(rows.size, dtype=bool)
    cand = np.flatnonzero(top[1:] == top[:-1])  # pairs (cand, cand + 1) of equal hash prefixes
    if cand.size:
        a, b = rows[cand], rows[cand + 1]
        same = (lengths[a] == lengths[b]) & (hashes[a] == hashes[b])
        same[same] = _same_bytes(raw, starts[a[same]], starts[b[same]], lengths[a[same]])
        dup[cand[same] + 1] = True
    rows = np.sort(rows[~dup])  # text order: older positions first (any occurrence would do)
    return starts[rows], lengths[rows], hashes[rows]


class CoreArray:
    """The cores of an epoch's large sources (module docstring)."""

    __slots__ = ("firsts", "keys", "pos", "sources")

    ROW_BITS = 28
    """Low bits of a key holding its row (an epoch holds fewer than 2**28 cores)."""

    def __init__(self) -> None:
        self.keys: U64 = np.zeros(0, dtype=np.uint64)
        """``hash >> ROW_BITS << ROW_BITS | row``, sorted."""
        self.pos: U32 = np.zeros(0, dtype=np.uint32)
        """Per row: the core's byte position in its source."""
        self.sources: list[int] = []
        """The large sources, in the order added."""
        self.firsts: list[int] = []
        """The first row of each of ``sources`` (a source's rows are consecutive)."""

    def add(self, src: int, data: bytes, max_len: int) -> None:
        """Add one source's distinct cores."""
        raw = np.frombuffer(data, dtype=np.uint8)
        starts, _, hashes = distinct_cores(raw, max_len)
        first = self.pos.size
        rows = np.arange(first, first + starts.size, dtype=np.uint64)
        shift = np.uint64(self.ROW_BITS)
        self.keys = np.sort(np.concatenate((self.keys, ((hashes >> shift) << shift) | rows)))
        self.pos = np.concatenate((self.pos, starts.astype(np.uint32)))
        self.sources.append(src)
        self.firsts.append(first)

    def sources_of(self, core: bytes, text_of: Any) -> tuple[list[int], bool]:
        """The sources holding ``core`` as a whole token (``text_of(src)`` gives a source's bytes), and
        whether the answer is complete (at most ``MAX_CANDIDATES`` rows are verified)."""
        if not self.keys.size:
            return [], True
        shift = self.ROW_BITS
        want = core_hash(core) >> shift
        i = int(np.searchsorted(self.keys, np.uint64(want << shift)))
        keys, n, mask = self.keys.item, self.keys.size, (1 << shift) - 1
        found: list[int] = []
        checked = 0
        while i < n and (key := keys(i)) >> shift == want:
            if checked == MAX_CANDIDATES:
                return found, False
            checked += 1
            row = key & mask
            src = self.sources[bisect_right(self.firsts, row) - 1]
            pos = int(self.pos[row])
            text = text_of(src)
            if text.startswith(core, pos) and bounded_at(text, pos, len(core)):
                found.append(src)
            i += 1
        return found, True

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return int(self.keys.nbytes + self.pos.nbytes) + 16 * len(self.sources)

    def save(self) -> list[Any]:
        """The arrays as base64 text, then the sources and their first rows."""
        keys = base64.b64encode(self.keys.astype("<u8").tobytes()).decode("ascii")
        pos = base64.b64encode(self.pos.astype("<u4").tobytes()).decode("ascii")
        return [keys, pos, list(self.sources), list(self.firsts)]

    @classmethod
    def restore(cls, saved: Any, first: int, end: int) -> CoreArray:
        """The array :meth:`save` gave, for the epoch of sources ``first`` to ``end``; raises
        ``ValueError`` unless its rows are well formed (what they claim is verified on every lookup)."""
        try:
            keys_b64, pos_b64, sources, firsts = saved
            keys = np.frombuffer(base64.b64decode(str(keys_b64)), dtype="<u8").astype(np.uint64, copy=False)
            pos = np.frombuffer(base64.b64decode(str(pos_b64)), dtype="<u4").astype(np.uint32, copy=False)
            sources, firsts = [int(x) for x in sources], [int(x) for x in firsts]
        except (TypeError, ValueError) as exc:
            raise ValueError("snapshot core array is malformed") from exc
        n = pos.size
        if keys.size != n or n >= 1 << cls.ROW_BITS or len(sources) != len(firsts):
            raise ValueError("snapshot core array is malformed")
        runs_ok = sources == sorted(set(sources)) and firsts == sorted(set(firsts)) and all(first <= s < end for s in sources)
        if not runs_ok or (n and (not firsts or firsts[0] != 0 or firsts[-1] >= n)) or (not n and sources):
            raise ValueError("snapshot core array names a source outside its epoch or rows out of order")
        if n:
            rows = (keys & np.uint64((1 << cls.ROW_BITS) - 1)).astype(np.int64)
            if bool((keys[1:] < keys[:-1]).any()) or bool((np.bincount(rows, minlength=n) != 1).any()):
                raise ValueError("snapshot core array is unsorted or names a row twice")
        out = cls()
        out.keys, out.pos, out.sources, out.firsts = keys, pos, sources, firsts
        return out
