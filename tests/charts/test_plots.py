"""Charts are real matplotlib SVG documents, with nothing in them that runs, and tool text drawn, not parsed."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from tether.charts import ask_waits, asr_utility, budget_use, data_uri, decisions_over_time

T0 = 1_800_000_000.0


def _check(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "<script" not in svg and "onload" not in svg and 'href="http' not in svg
    return root


def test_each_chart_is_an_svg_document() -> None:
    _check(decisions_over_time([(T0 + i * 7, ("allow", "ask", "deny")[i % 3]) for i in range(200)]))
    _check(decisions_over_time([]))
    _check(budget_use([("calls", 10, 50), ("spend", 990.0, 1000.0), ("writes", 3, None)]))
    _check(budget_use([]))
    _check(ask_waits([(2.0, "approved"), (40.0, "refused"), (300.0, "timed out")]))
    _check(ask_waits([]))
    _check(asr_utility([("Tether", 0.0, 0.8, "#1f6feb")], [("Progent", 0.0)]))


def test_tool_text_is_drawn_not_parsed_and_the_output_is_deterministic() -> None:
    evil = "</svg><script>alert(1)</script> \u202egnp.exe"
    svg = budget_use([(evil, 1, 2)])
    _check(svg)
    assert "<script" not in svg and "\u202e" not in svg  # drawn as glyph paths (a comment names it, escaped)
    assert svg == budget_use([(evil, 1, 2)])


def test_data_uri_round_trips() -> None:
    svg = ask_waits([(1.0, "approved")])
    uri = data_uri(svg)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == svg
