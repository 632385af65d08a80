"""How many legitimate values the permitting matchers refuse, and how many bypass attempts
they let through, on the corpus in ``benchmarks/data/matcher_corpus.yaml`` (issue 16).

The corpus was written for issue 16 by the same project that wrote the matchers, so it is not
a held-out corpus: it checks that the spellings every consumer reads alike are accepted and
that the known tricks stay refused. Target: 0 bypasses; at most 2% of legitimate values refused.

Usage: python benchmarks/matcher_corpus.py [--quick] [--json] [--show]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from tether.policy._matchers import Paths, build_matcher

CORPUS = Path(__file__).parent / "data" / "matcher_corpus.yaml"


def measure(show: bool = False) -> dict[str, Any]:
    groups = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["groups"]
    out: dict[str, Any] = {"legitimate": 0, "refused": [], "bypass": 0, "let_through": []}
    for group in groups:
        paths = Paths(group.get("home", "/root"), group.get("workdir", group.get("home", "/root")))
        matcher = build_matcher(group["matcher"], group["entries"], paths)
        for value in group["legitimate"]:
            value = value.encode().decode("unicode_escape") if "\\u" in value else value
            out["legitimate"] += 1
            if not matcher.accepts(value):
                out["refused"].append({"matcher": group["matcher"], "value": value, "why": matcher.refusal(value)})
        for value in group["bypass"]:
            value = value.encode().decode("unicode_escape") if "\\u" in value else value
            out["bypass"] += 1
            if matcher.accepts(value):
                out["let_through"].append({"matcher": group["matcher"], "value": value})
    out["refused_share"] = round(len(out["refused"]) / out["legitimate"], 4)
    if not show:
        out["refused"] = [r["value"] for r in out["refused"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the corpus is small: the same as a full run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--show", action="store_true", help="say why each legitimate value was refused")
    args = parser.parse_args()
    result = measure(show=args.show)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"bypass attempts let through: {len(result['let_through'])} of {result['bypass']}")
    print(f"legitimate values refused: {len(result['refused'])} of {result['legitimate']} ({100 * result['refused_share']:.1f}%)")
    for item in result["let_through"]:
        print(f"  let through: {item}")
    for item in result["refused"]:
        print(f"  refused: {item}")


if __name__ == "__main__":
    main()
