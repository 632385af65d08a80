"""The taint memory's stores of piece keys: an exact open-addressing table and an overflow filter.

Both take 56-bit piece keys (:func:`tether.flow._hashing.piece_keys`) in bulk, as numpy arrays:
inserting or probing a whole value (or a whole output) is a few vectorised rounds, not a Python
loop per piece.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tether.flow._hashing import U64

SLOT_BYTES = 8
"""Bytes per slot of the exact table."""
_MIN_SLOTS = 1024
_S8 = np.uint64(8)
_S24 = np.uint64(24)
_S32 = np.uint64(32)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M64 = (1 << 64) - 1
_SCALAR_TAIL = 48
_FILTERED = 4096  # lookups in one batch past which the bit filter picks the keys to probe
KEY_BITS = 56
"""Bits of a piece key (:func:`tether.flow._hashing.piece_keys`)."""  # pending keys below which probing goes on one key at a time

IDS = npt.NDArray[np.uint8]


def table_slots(max_entries: int) -> int:
    """Slots of a full table for ``max_entries`` pieces (at most 80% of them used)."""
    return -(-max_entries * 5 // 4) + 1 if max_entries > 0 else 0


def _home(keys: U64, size: int) -> npt.NDArray[np.int64]:
    # The top 32 bits of the key scaled to the table: any size works, so the table can grow by
    # re-placing what it holds.
    return (((keys >> _S24) * np.uint64(size)) >> _S32).astype(np.int64)


class GramTable:
    """Open addressing with linear probing; a slot holds ``key << 8 | label id`` (0: empty).

    It doubles when half full, up to ``max_slots`` (which keeps it at most 80% full at the entry
    limit). Inserting a batch places its keys round by round: each pending key reads its slot;
    a key found is overwritten, an empty slot is claimed by the first pending key (in batch
    order) that wants it, and every other key moves one slot on. The layout therefore depends only
    on the sequence of batches, the same in every process, and every key stays reachable from its
    home slot (no slot ever becomes empty).

    Until the table reaches ``max_slots``, a bit filter of the keys held (between 4 and 8 bits per
    slot, indexed by a key's top bits; every key held has its bit set) lets a large batch of lookups
    (a 1 MB output) probe only the keys that may be there. It costs at most 1 byte per slot of a
    table at most half its final size, so the table never holds more than ``SLOT_BYTES * max_slots``
    bytes; at full size the filter is dropped and every key is probed.
    """

    __slots__ = ("_shift", "count", "filter", "max_slots", "slots")

    def __init__(self, max_slots: int, slots: U64 | None = None, count: int = 0) -> None:
        self.max_slots = max_slots
        self.slots: U64 = slots if slots is not None else np.zeros(min(max_slots, _MIN_SLOTS), dtype=np.uint64)
        self.count = count
        self.filter: IDS = np.zeros(0, dtype=np.uint8)
        self._shift = np.uint64(0)
        self._build_filter()

    def _build_filter(self) -> None:
        if self.slots.size >= self.max_slots:
            self.filter = np.zeros(0, dtype=np.uint8)  # full size: within the memory bound only without it
            return
        bits = max(3, (8 * self.slots.size).bit_length() - 1)  # a power of two, at most 8 bits per slot
        self._shift = np.uint64(KEY_BITS - bits)
        self.filter = np.zeros(1 << (bits - 3), dtype=np.uint8)
        held = self.slots[self.slots != 0]
        self._mark(held >> _S8)

    def _mark(self, keys: U64) -> None:
        if not self.filter.size:
            return
        at = (keys >> self._shift).astype(np.int64)
        np.bitwise_or.at(self.filter, at >> 3, (1 << (at & 7)).astype(np.uint8))

    def _may_hold(self, keys: U64) -> npt.NDArray[np.bool_]:
        at = (keys >> self._shift).astype(np.int64)
        held: npt.NDArray[np.bool_] = ((self.filter[at >> 3] >> (at & 7).astype(np.uint8)) & 1).astype(bool)
        return held

    def get(self, keys: U64) -> IDS:
        """The label id stored for each key (0 when absent)."""
        out = np.zeros(keys.size, dtype=np.uint8)
        slots = self.slots
        size = slots.size
        if keys.size > _FILTERED and self.filter.size:
            pending = np.flatnonzero(self._may_hold(keys))  # only these can be in the table
            want = keys[pending]
        else:
            pending = np.arange(keys.size)
            want = keys
        pos = _home(want, size)
        while pending.size > _SCALAR_TAIL:
            v = slots[pos]
            hit = (v >> _S8) == want
            out[pending[hit]] = (v[hit] & np.uint64(0xFF)).astype(np.uint8)
            more = (v != 0) & ~hit
            pending, want, pos = pending[more], want[more], pos[more] + 1
            pos[pos == size] = 0
        # The few long probe runs left: one key at a time (a vectorised round costs more).
        item = slots.item
        for j, k, i in zip(pending.tolist(), want.tolist(), pos.tolist(), strict=True):
            while v_ := item(i):
                if v_ >> 8 == k:
                    out[j] = v_ & 0xFF
                    break
                i = i + 1 if i + 1 < size else 0
        return out

    def get_few(self, keys: list[int]) -> set[int]:
        """The label ids stored for any of a few keys (a short output's), probed in plain Python:
        for a few dozen keys this costs less than one vectorised round."""
        item = self.slots.item
        size = self.slots.size
        found: set[int] = set()
        for key in keys:
            i = (((key >> 24) * size) & _M64) >> 32  # _home, with numpy's 64-bit wrap-around
            while v := item(i):
                if v >> 8 == key:
                    found.add(v & 0xFF)
                    break
                i = i + 1 if i + 1 < size else 0
        return found

    def put(self, keys: U64, ids: IDS) -> int:
        """Store (or overwrite) each key with its id (a repeated key must repeat its id); returns how many were new.

        The caller keeps the count within what ``max_slots`` allows."""
        fresh = int(keys.size)  # an upper bound, for growing before placing
        while (self.count + fresh) * 2 > self.slots.size and self.slots.size < self.max_slots:
            self._resize(min(self.max_slots, 2 * self.slots.size))
        added = _place(self.slots, keys, (keys << _S8) | ids.astype(np.uint64))
        self.count += added
        self._mark(keys)
        return added

    def _resize(self, size: int) -> None:
        old = self.slots[self.slots != 0]
        self.slots = np.zeros(size, dtype=np.uint64)
        _place(self.slots, old >> _S8, old)
        self._build_filter()


def _place(slots: U64, keys: U64, values: U64) -> int:
    size = slots.size
    pos = _home(keys, size)
    pending = np.arange(keys.size)
    added = 0
    while pending.size > _SCALAR_TAIL:
        v = slots[pos]
        hit = (v != 0) & ((v >> _S8) == keys[pending])
        slots[pos[hit]] = values[pending[hit]]
        empty = v == 0
        if empty.any():
            # The first pending key (in batch order) wanting an empty slot takes it.
            winners = np.flatnonzero(empty)[first_of_each(pos[empty])]
            slots[pos[winners]] = values[pending[winners]]
            added += int(winners.size)
            hit[winners] = True
            empty[winners] = False
        # Losers of an empty slot read it again (now taken); keys meeting another key move on.
        step = ~hit & ~empty
        pos = pos + step
        pos[pos == size] = 0
        keep = ~hit
        pending, pos = pending[keep], pos[keep]
    # The few keys left, one at a time in batch order (a vectorised round costs more).
    item = slots.item
    for j, i in zip(pending.tolist(), pos.tolist(), strict=True):
        key, value = int(keys[j]), int(values[j])
        while v_ := item(i):
            if v_ >> 8 == key:
                break
            i = i + 1 if i + 1 < size else 0
        else:
            added += 1
        slots[i] = value
    return added


def check_layout(slots: U64, count: int) -> IDS:
    """The label ids a restored table uses; raises unless it holds ``count`` pieces, each reachable
    from its home slot (no empty slot between its home and where it lies), so that a table
    changed outside this module cannot lose pieces silently."""
    size = slots.size
    used = slots != 0
    if int(used.sum()) != count or count >= size:
        raise ValueError("snapshot gram table holds a different number of pieces than it says")
    at = np.flatnonzero(used)
    home = _home(slots[at] >> _S8, size)
    # The nearest empty slot before each piece, going round the end (the table is never full).
    empty = np.flatnonzero(~used)
    before = np.searchsorted(empty, at)
    last_empty = np.where(before > 0, empty[np.maximum(before - 1, 0)], empty[-1] - size)
    # A piece at i is reachable when its home lies in (last_empty, i], cyclically.
    if not bool((((at - home) % size) < (at - last_empty)).all()):
        raise ValueError("snapshot gram table has a piece that lookups cannot reach")
    counts = np.bincount((slots[used] & np.uint64(0xFF)).astype(np.int64), minlength=256)
    return np.flatnonzero(counts).astype(np.uint8)


def first_of_each(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Index of the first occurrence of each distinct value (in increasing value order).

    One sort of ``value << b | index`` (a plain sort: ``np.unique`` and stable argsorts cost several
    times more on large arrays)."""
    n = int(values.size)
    if not n:
        return np.zeros(0, dtype=np.int64)
    bits = max(1, (n - 1).bit_length())
    top = int(values.max())
    if top.bit_length() + bits > 63:
        return np.unique(values, return_index=True)[1]  # too wide to pack (never at realistic sizes)
    packed = np.sort((values << bits) | np.arange(n, dtype=np.int64))
    keys = packed >> bits
    first = np.concatenate(([True], keys[1:] != keys[:-1]))
    out: npt.NDArray[np.int64] = packed[first] & ((1 << bits) - 1)
    return out


class Bloom:
    """A fixed-size Bloom filter over piece keys (two positions per key)."""

    __slots__ = ("bits", "nbits", "set_bits")

    def __init__(self, nbits: int) -> None:
        self.bits = np.zeros(nbits // 8, dtype=np.uint8)
        self.nbits = nbits
        self.set_bits = 0

    def _positions(self, keys: U64) -> npt.NDArray[np.int64]:
        n = np.uint64(self.nbits)
        first = ((keys >> _S24) * n) >> _S32
        second = (((keys * _MIX2) >> _S32) * n) >> _S32
        return np.concatenate((first, second)).astype(np.int64)

    def add(self, keys: U64) -> None:
        """Add every key."""
        pos = self._positions(keys)
        np.bitwise_or.at(self.bits, pos >> 3, (1 << (pos & 7)).astype(np.uint8))
        self.set_bits = int(np.bitwise_count(self.bits).sum(dtype=np.int64))

    def any_of(self, keys: U64) -> bool:
        """Whether the filter may have seen any of ``keys``."""
        if not keys.size:
            return False
        pos = self._positions(keys)
        hit = (self.bits[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1
        half = keys.size
        return bool((hit[:half] & hit[half:]).any())

    @property
    def saturated(self) -> bool:
        """More than half the bits are set: treat everything as a hit."""
        return self.set_bits * 2 > self.nbits
