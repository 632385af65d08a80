"""The vectorised token-core paths against their plain definitions: core spans and hashes, the
per-source dedupe, the plain-Python cores of short texts, and the core array's checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.flow import normalize
from tether.flow._core_array import MAX_CANDIDATES, CoreArray, core_hash, core_spans, distinct_cores
from tether.flow._normalize import _collapse_ascii
from tether.flow._staging import short_in, small_cores, word_in, word_key, words_of
from tether.flow._tokens import token_cores

TEXT = st.text(alphabet="ab1-.,_ :('é9\"x/", max_size=60).map(normalize)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_core_spans_are_the_token_cores_with_their_hashes(text: str) -> None:
    data = text.encode("utf-8")
    starts, lengths, hashes = core_spans(np.frombuffer(data, dtype=np.uint8), 256)
    cores = [data[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]
    assert {c.decode("utf-8") for c in cores} == token_cores(text) == small_cores(text)
    assert hashes.tolist() == [core_hash(c) for c in cores]
    d_starts, d_lengths, _ = distinct_cores(np.frombuffer(data, dtype=np.uint8), 256)
    distinct = [data[s : s + n] for s, n in zip(d_starts.tolist(), d_lengths.tolist(), strict=True)]
    assert len(distinct) == len(set(distinct)) == len(set(cores))


def test_a_core_array_finds_whole_tokens_only_and_bounds_its_candidates() -> None:
    texts = {7: b"alpha beta-gamma alphabet", 9: b"beta alpha"}
    array = CoreArray()
    for src, text in texts.items():
        array.add(src, text, 256)
    assert array.sources_of(b"alpha", texts.__getitem__) == ([7, 9], True)
    assert array.sources_of(b"beta-gamma", texts.__getitem__) == ([7], True)
    assert array.sources_of(b"alph", texts.__getitem__) == ([], True)
    restored = CoreArray.restore(array.save(), 7, 10)
    assert restored.sources_of(b"beta", texts.__getitem__) == ([9], True)  # "beta-gamma" is one core
    # Rows that all claim one hash (as a forged snapshot could): verified one by one, and bounded.
    forged = CoreArray()
    forged.keys = np.sort(((np.uint64(core_hash(b"alpha")) >> np.uint64(28)) << np.uint64(28)) | np.arange(40, dtype=np.uint64))
    forged.pos = np.zeros(40, dtype=np.uint32)
    forged.sources, forged.firsts = [7], [0]
    found, complete = forged.sources_of(b"alpha", texts.__getitem__)
    assert found == [7] * MAX_CANDIDATES and not complete


def test_a_malformed_core_array_is_refused() -> None:
    array = CoreArray()
    array.add(7, b"alpha beta", 256)
    keys, pos, sources, firsts = array.save()
    for bad in (
        [keys, pos, [5], firsts],  # a source outside the epoch
        [CoreArray().save()[0], pos, sources, firsts],  # positions without keys
        [keys, pos, sources, [1]],  # the first source's rows do not start at row 0
        ["not base64!", pos, sources, firsts],
    ):
        with pytest.raises(ValueError):
            CoreArray.restore(bad, 7, 10)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \t\n\x1c\x1fc\r", max_size=80))
def test_long_ascii_whitespace_collapses_as_split_and_join(text: str) -> None:
    assert _collapse_ascii(text) == " ".join(text.split())


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab_.-1 é,'", max_size=40).map(normalize), st.sampled_from(["ab", "a_b", "1,1", "ab.a", "-1", "é", "b-"]))
def test_a_short_value_is_found_in_a_text_as_by_its_words(text: str, value: str) -> None:
    cores = token_cores(text)
    by_words = word_key(value) in words_of(text, cores) and word_in(value, text, cores)
    assert short_in(text, value) == by_words
