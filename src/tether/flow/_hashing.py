"""Gram hashes computed in bulk (numpy), the same in every process.

Two hashes, each vectorised over a whole text so that no Python code runs per gram:

* :func:`piece_keys`, for the taint memory: the 56-bit key of every ``RUN``-character gram of a
  normalised text. A gram of ASCII characters is read as a 64-bit big-endian number (its 8 bytes),
  any other gram is mixed from its code points and marked with the top bit; either is then
  multiplied by an odd constant (a bijection on 64 bits) and the low 8 bits dropped. Distinct
  grams share a key with probability about 2**-56, and a shared key can only taint more.
* :func:`sample_hashes`, for the provenance index: a 32-bit hash of every ``K``-byte gram of UTF-8
  text starting at a multiple of ``STEP``; :func:`sample_hash` is the same for one gram (lookups).

Python's ``hash()`` is salted per process and is never used here: snapshots and layouts must
mean the same thing in every process.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RUN = 8
"""Common run (normalised characters) that carries a long value into an output."""
K = 6
"""Provenance gram length in bytes."""
STEP = 3
"""Sampling stride of indexed provenance gram positions."""

U64 = npt.NDArray[np.uint64]

MIX = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection on 64-bit keys
_MIX_NP = np.uint64(MIX)
_CP_MUL = np.uint64(0xFF51AFD7ED558CCD)  # odd multiplier folding code points of a non-ASCII gram
HASHED = 1 << 63  # set on keys of non-ASCII grams; an ASCII gram's key never has it
_HASHED_NP = np.uint64(HASHED)
_SAMPLE_MUL = 0xC6A4A7935BD1E995  # odd multiplier of the provenance gram hash
_SAMPLE_MUL_NP = np.uint64(_SAMPLE_MUL)
_M64 = (1 << 64) - 1
_S8 = np.uint64(8)
_S32 = np.uint64(32)
_S29 = np.uint64(29)

EMPTY: U64 = np.zeros(0, dtype=np.uint64)


def code_points(text: str) -> npt.NDArray[np.uint32]:
    """The code points of ``text`` as an array (UTF-32, no copy beyond the encoding)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _ascii_keys(data: npt.NDArray[np.uint8] | npt.NDArray[np.uint32], n: int) -> U64:
    """For each of the ``n`` windows of 8 values below 256: the values read as one big-endian 64-bit number."""
    keys = data[:n].astype(np.uint64) << np.uint64(56)
    for j in range(1, RUN):
        keys |= data[j : j + n].astype(np.uint64) << np.uint64(8 * (RUN - 1 - j))
    return keys


def piece_keys(text: str) -> U64:
    """The 56-bit key of every ``RUN``-character gram of ``text``, in text order (see the module docstring)."""
    n = len(text) - RUN + 1
    if n <= 0:
        return EMPTY
    if text.isascii():
        # Each gram is its 8 bytes read big-endian: the grams starting at r, r + 8, r + 16, ... are
        # the bytes from r on read as big-endian 64-bit words (no copy), for each r < 8.
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        keys = np.empty(n, dtype=np.uint64)
        for r in range(min(RUN, n)):
            m = (raw.size - r) // RUN
            keys[r::RUN] = raw[r : r + RUN * m].view(">u8")
    else:
        cps = code_points(text)
        wide = cps >= 128
        # Windows holding a non-ASCII code point: a sliding count of them over RUN positions.
        counts = np.concatenate(([0], np.cumsum(wide, dtype=np.int64)))
        hashed = (counts[RUN : RUN + n] - counts[:n]) > 0
        keys = _ascii_keys(np.where(wide, 0, cps), n)
        if hashed.any():
            idx = np.flatnonzero(hashed)
            mixed = np.zeros(idx.size, dtype=np.uint64)
            for j in range(RUN):
                mixed = (mixed ^ cps[idx + j].astype(np.uint64)) * _CP_MUL
                mixed ^= mixed >> _S29
            keys[idx] = mixed | _HASHED_NP
    keys *= _MIX_NP
    keys >>= _S8
    return keys


def piece_key(gram: str) -> int:
    """:func:`piece_keys` for one gram of exactly ``RUN`` characters, in plain Python (reference)."""
    data = gram.encode("utf-8")
    if len(data) == RUN:
        key = int.from_bytes(data, "big")
    else:
        key = 0
        for ch in gram:
            key = ((key ^ ord(ch)) * int(_CP_MUL)) & _M64
            key ^= key >> 29
        key |= HASHED
    return ((key * MIX) & _M64) >> 8


def strided_hashes(buf: bytes, count: int) -> U64:
    """32-bit hashes of the ``K``-byte grams of ``buf`` starting at ``0, STEP, ..., STEP * (count - 1)``;
    ``buf`` must hold 8 bytes from the last start. Each gram is read with the two bytes after it as
    one big-endian 64-bit word of an overlapping view (one copy), then shifted down to its ``K`` bytes."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    windows = np.lib.stride_tricks.as_strided(raw, shape=(count, 8), strides=(STEP, 1), writeable=False)
    grams = np.ascontiguousarray(windows).view(">u8").reshape(count).astype(np.uint64) >> np.uint64(8 * (8 - K))
    return (grams * _SAMPLE_MUL_NP) >> _S32


def sample_hashes(data: bytes) -> tuple[npt.NDArray[np.int64], U64]:
    """Start positions and 32-bit hashes of every ``K``-byte gram of ``data`` starting at a multiple of ``STEP``."""
    m = (len(data) - K) // STEP + 1
    if m <= 0:
        return np.zeros(0, dtype=np.int64), EMPTY
    starts = np.arange(0, STEP * m, STEP, dtype=np.int64)
    return starts, strided_hashes(data + bytes(8 - K), m)


def sample_hash(gram: bytes) -> int:
    """:func:`sample_hashes` for one ``K``-byte gram (lookups)."""
    return ((int.from_bytes(gram, "big") * _SAMPLE_MUL) & _M64) >> 32
