"""The permitting matchers on ``benchmarks/data/matcher_corpus.yaml`` (issue 16): no bypass
attempt is accepted, and at most 2% of the legitimate values are refused (the figures are in
docs/benchmarks.md, from ``python benchmarks/matcher_corpus.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tether.policy._matchers import Paths, build_matcher

CORPUS = yaml.safe_load((Path(__file__).parents[2] / "benchmarks" / "data" / "matcher_corpus.yaml").read_text(encoding="utf-8"))["groups"]


def _value(text: str) -> str:
    return text.encode().decode("unicode_escape") if "\\u" in text else text


def _cases(kind: str) -> list[tuple[str, list[str], Paths, str]]:
    out = []
    for g in CORPUS:
        paths = Paths(g.get("home", "/root"), g.get("workdir", g.get("home", "/root")))
        out += [(g["matcher"], g["entries"], paths, _value(v)) for v in g[kind]]
    return out


@pytest.mark.parametrize(("key", "entries", "paths", "value"), _cases("bypass"), ids=lambda x: repr(x) if isinstance(x, str) else "")
def test_no_bypass_attempt_is_accepted(key: str, entries: list[str], paths: Paths, value: str) -> None:
    assert not build_matcher(key, entries, paths).accepts(value)


def test_legitimate_values_are_accepted() -> None:
    cases = _cases("legitimate")
    refused = [(key, value) for key, entries, paths, value in cases if not build_matcher(key, entries, paths).accepts(value)]
    assert len(refused) <= 0.02 * len(cases), refused
