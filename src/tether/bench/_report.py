"""Bench reports: a JSON document and a self-contained HTML page (the oversight UI's templates, a matplotlib plot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ANCHORS: tuple[tuple[str, float, float | None], ...] = (
    ("undefended GPT-4o (published)", 0.477, None),
    ("CaMeL, o3 (published)", 0.0, 0.77),
    ("Progent (published)", 0.0, None),
)
"""Published (name, ASR, utility) anchors; None where the issue gives no utility figure."""


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """Write the report as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _points(report: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    points: list[tuple[str, float, float, str]] = []
    # A run with the task scope only (--scope on) has its figures under with_task_scope.
    overall = report.get("overall") or (report.get("with_task_scope") or {}).get("overall") or {"asr": {}, "utility_under_attack": {}}
    for mode in ("autonomous", "careful_human", "rubber_stamp"):
        asr, util = overall["asr"].get(mode), overall["utility_under_attack"].get(mode)
        if asr is not None and util is not None:
            points.append((f"Tether ({mode})", asr, util, "#1f6feb"))
    base = report.get("baseline", {}).get("overall")
    if base and base["asr"] is not None and base["utility_under_attack"] is not None:
        points.append(("no defense (worst-case agent)", base["asr"], base["utility_under_attack"], "#d1242f"))
    for name, asr, util in ANCHORS:
        if util is not None:
            points.append((name, asr, util, "#6e7781"))
    return points


def svg_plot(report: dict[str, Any]) -> str:
    """Utility under attack (y) against ASR (x), Tether beside the baseline and published anchors
    (an SVG document drawn by matplotlib)."""
    from tether.charts import asr_utility

    return asr_utility(_points(report), [(name, asr) for name, asr, util in ANCHORS if util is None])


MODES = ("autonomous", "careful_human", "careful_endorsing", "rubber_stamp")
"""The ways of answering an ask, in the report's column order."""


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """A single self-contained page, rendered with the oversight UI's templates: plot, tables
    (with and without task scope), the human's load with and without endorsements, notes."""
    from tether.charts import data_uri
    from tether.server import page_templates

    suites = {k: v for k, v in report.items() if k in ("banking", "slack", "travel", "workspace", "overall")}
    page = (
        page_templates()
        .get_template("bench_report.html")
        .render(
            report=report,
            suites=suites,
            scoped=report.get("with_task_scope") or {},
            planned={k: v for k, v in (report.get("with_plans") or {}).items() if k != "with_task_scope"},
            imperfect={k: v for k, v in (report.get("with_imperfect_plans") or {}).items() if k != "with_task_scope"},
            realistic={k: v for k, v in (report.get("with_realistic_plans") or {}).items() if k != "with_task_scope"},
            modes=[m for m in MODES if all(m in v["asr"] for v in suites.values())],
            plot=data_uri(svg_plot(report)),
            pct=_pct,
            who=None,
            flash=[],
            nonce="",
            csrf="",
        )
    )
    Path(path).write_text(page, encoding="utf-8")


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f}%"
