"""Bench reports: a JSON document and a self-contained HTML page with an inline SVG plot."""

from __future__ import annotations

import html
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
    overall = report["overall"]
    for mode in ("autonomous", "careful_human", "rubber_stamp"):
        asr, util = overall["asr"][mode], overall["utility_under_attack"][mode]
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
    """Utility under attack (y) against ASR (x), Tether beside the baseline and published anchors."""
    w, h, pad = 560, 400, 50

    def x(v: float) -> float:
        return pad + v * (w - 2 * pad)

    def y(v: float) -> float:
        return h - pad - v * (h - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">']
    parts.append(f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#999"/>')
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{x(t):.0f}" y="{h - pad + 15}" text-anchor="middle">{t:.0%}</text>')
        parts.append(f'<text x="{pad - 6}" y="{y(t) + 4:.0f}" text-anchor="end">{t:.0%}</text>')
    parts.append(f'<text x="{w / 2:.0f}" y="{h - 12}" text-anchor="middle">attack success rate</text>')
    parts.append(f'<text x="14" y="{h / 2:.0f}" transform="rotate(-90 14 {h / 2:.0f})" text-anchor="middle">utility under attack</text>')
    for name, asr, util in ANCHORS:
        if util is None:
            parts.append(f'<line x1="{x(asr):.1f}" y1="{pad}" x2="{x(asr):.1f}" y2="{h - pad}" stroke="#6e7781" stroke-dasharray="4 3"/>')
            parts.append(f'<text x="{x(asr) + 4:.1f}" y="{pad + 12}" fill="#6e7781">{html.escape(name)} (ASR only)</text>')
    for i, (name, asr, util, color) in enumerate(_points(report)):
        parts.append(f'<circle cx="{x(asr):.1f}" cy="{y(util):.1f}" r="5" fill="{color}"/>')
        # Labels of points on the right half go to the left of the point so they stay inside the plot.
        left = asr > 0.5
        anchor, dx = ("end", -8) if left else ("start", 8)
        parts.append(
            f'<text x="{x(asr) + dx:.1f}" y="{y(util) + 4 + 12 * (i % 2):.1f}" fill="{color}" text-anchor="{anchor}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def _table(section: dict[str, Any]) -> str:
    head = "<tr><th>suite</th><th>metric</th><th>autonomous</th><th>careful human</th><th>rubber stamp</th></tr>"
    rows = []
    for suite, m in section.items():
        for metric in ("benign_utility", "utility_under_attack", "asr", "asr_tool_reachable"):
            cells = "".join(f"<td>{_pct(m[metric][mode])}</td>" for mode in ("autonomous", "careful_human", "rubber_stamp"))
            rows.append(f"<tr><td>{html.escape(suite)}</td><td>{metric}</td>{cells}</tr>")
        rows.append(
            f"<tr><td>{html.escape(suite)}</td><td colspan=4>pairs {m['pairs']}, user tasks {m['user_tasks']}, "
            f"asks per benign task (autonomous / careful human) {' / '.join(_num(m['asks_per_task'][k]) for k in ('autonomous', 'careful_human'))}, "
            f"denied legitimate calls {m['denied_legitimate_calls']}, errors {m['errors']}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """A single self-contained page: plot, tables (with and without task scope), notes."""
    suites = {k: v for k, v in report.items() if k in ("banking", "slack", "travel", "workspace", "overall")}
    scoped = report.get("with_task_scope") or {}
    planned = {k: v for k, v in (report.get("with_plans") or {}).items() if k != "with_task_scope"}
    imperfect = {k: v for k, v in (report.get("with_imperfect_plans") or {}).items() if k != "with_task_scope"}
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", []))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Tether on AgentDojo</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}</style></head>
<body><h1>Tether on AgentDojo {html.escape(str(report.get("version", "")))}</h1>
<p>Agents: {html.escape(", ".join(map(str, report.get("agents") or [])))}.</p>
<p>Policies: {"; ".join(f"{html.escape(str(k))} <code>{html.escape(str(v))[:23]}</code>" for k, v in (report.get("policy_hash") or {}).items())}</p>
{svg_plot(report)}
<h2>Without task scope (the primary result; plans: {html.escape(str(report.get("plans", "off")))})</h2>{_table(suites)}
<h2>With task scope from the ground truth (a perfect planner)</h2>{_table(scoped) if scoped else "<p>not run</p>"}
<h2>With plans declared before the first step (perfect planner)</h2>{_table(planned) if planned else "<p>not run</p>"}
<h2>With an imperfect plan (one needed write left out)</h2>{_table(imperfect) if imperfect else "<p>not run</p>"}
<h2>Notes</h2><ul>{notes}</ul>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
