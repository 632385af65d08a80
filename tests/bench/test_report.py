"""The bench's HTML report: rendered with the oversight UI's templates and a matplotlib plot."""

from __future__ import annotations

from pathlib import Path

from tether.bench import write_html

MODES = ("autonomous", "careful_human", "careful_endorsing", "rubber_stamp")


def _section(asr: float) -> dict[str, object]:
    rates = {m: asr for m in MODES}
    return {
        "benign_utility": {m: 1.0 for m in MODES},
        "utility_under_attack": {m: 0.75 for m in MODES},
        "asr": rates,
        "asr_tool_reachable": rates,
        "pairs": 144,
        "user_tasks": 16,
        "asks_per_task": 0.5,
        "denied_legitimate_calls": 0,
        "errors": 0,
        "oracle_asks_careful": 40,
        "oracle_asks_endorsing": 31,
        "human_decisions_per_100_asks_endorsing": 77.5,
    }


def test_report_page(tmp_path: Path) -> None:
    report = {
        "banking": _section(0.0),
        "overall": _section(0.0),
        "version": "v1.2",
        "agents": ["oracle", "worst-case"],
        "policy_hash": {"banking": "sha256:" + "ab" * 32},
        "notes": ["<b>a note</b> with markup"],
    }
    out = tmp_path / "report.html"
    write_html(report, out)
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "Tether on AgentDojo v1.2" in page
    assert '<img src="data:image/svg+xml;base64,' in page
    assert "careful endorsing" in page and "31 with approve and remember (77.5 per 100)" in page
    assert "&lt;b&gt;a note&lt;/b&gt;" in page  # escaped, like every value the templates show
    assert "<svg" not in page.split("<body>", 1)[1].split("<script", 1)[0]  # the plot is an image, not inline markup


def test_report_page_shows_each_plan_variant(tmp_path: Path) -> None:
    base = {"banking": _section(0.0), "overall": _section(0.0), "version": "v1.2", "agents": ["oracle"], "policy_hash": {}, "notes": []}
    planned = {"banking": _section(0.0), "overall": _section(0.0)}
    out = tmp_path / "report.html"
    write_html(base, out)
    assert out.read_text().count("not run") >= 4  # scope, perfect, imperfect and realistic plans
    write_html({**base, "with_realistic_plans": planned}, out)
    page = out.read_text()
    section = page.split("With a realistic plan", 1)[1].split("<h4>", 1)[0]
    assert "not run" not in section and "144" in section


def test_a_report_with_the_task_scope_only_renders(tmp_path: Path) -> None:
    """``--scope on`` puts every figure under ``with_task_scope`` (the page used to fail on it)."""
    report = {"with_task_scope": {"banking": _section(0.0), "overall": _section(0.0)}, "version": "v1.2", "agents": [], "notes": []}
    out = tmp_path / "report.html"
    write_html(report, out)
    assert "With task scope" in out.read_text()
