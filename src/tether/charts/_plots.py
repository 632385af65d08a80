"""The charts, each a function from plain data to an SVG document (text)."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Sequence

from matplotlib.figure import Figure

from tether._display import visible_text

_COLORS = {"allow": "#1a7f37", "ask": "#bf8700", "deny": "#cf222e"}
_LOCK = threading.Lock()  # matplotlib's text and font caches are not thread-safe


def data_uri(svg: str) -> str:
    """``data:image/svg+xml;base64,...`` for an ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "tether"})
    return out.getvalue()


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    rc = matplotlib.rcParams
    rc["svg.hashsalt"] = "tether"  # stable ids: the same data gives the same document
    rc["svg.fonttype"] = "path"  # text as glyph paths: no font needed to view it, nothing parsed as markup
    rc["font.size"] = 9.0
    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def decisions_over_time(decisions: Sequence[tuple[float, str]], *, buckets: int = 24) -> str:
    """Allowed, asked and denied calls per time slice (stacked bars), from (UTC time, verdict) pairs."""
    with _LOCK:
        fig = _figure(6.4, 2.2)
        ax = fig.subplots()
        if not decisions:
            ax.text(0.5, 0.5, "no decisions yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return _svg(fig)
        start = min(t for t, _ in decisions)
        end = max(t for t, _ in decisions)
        width = max((end - start) / buckets, 1.0)
        edges = [start + i * width for i in range(buckets + 1)]
        counts = {v: [0] * buckets for v in _COLORS}
        for t, verdict in decisions:
            if verdict in counts:
                counts[verdict][min(int((t - start) / width), buckets - 1)] += 1
        lefts = [e / 86400.0 for e in edges[:-1]]  # matplotlib's dates: days since its epoch, 1970-01-01 UTC
        bottom = [0] * buckets
        bar_width = width * 0.9 / 86400  # in days, matplotlib's date unit
        for verdict, color in _COLORS.items():
            ax.bar(lefts, counts[verdict], width=bar_width, bottom=bottom, color=color, label=verdict, align="edge")
            bottom = [b + c for b, c in zip(bottom, counts[verdict], strict=True)]
        ax.xaxis_date()
        ax.set_ylabel("calls")
        ax.legend(loc="upper left", ncols=3, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.autofmt_xdate()
        return _svg(fig)


def budget_use(budgets: Sequence[tuple[str, float, float | None]]) -> str:
    """Each budget with a limit as a bar of the share used, labelled ``used / limit``."""
    limited = [(name, used, limit) for name, used, limit in budgets if limit]
    with _LOCK:
        fig = _figure(6.4, 0.45 * max(len(limited), 1) + 0.6)
        ax = fig.subplots()
        if not limited:
            ax.text(0.5, 0.5, "no budget limits in this policy", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return _svg(fig)
        names = [visible_text(name) for name, _, _ in limited]  # hidden characters drawn as marks
        shares = [min(used / limit, 1.0) if limit else 0.0 for _, used, limit in limited]
        colors = ["#cf222e" if s >= 1.0 else "#bf8700" if s >= 0.8 else "#1f6feb" for s in shares]
        ax.barh(names, [1.0] * len(names), color="#eaeef2")
        ax.barh(names, shares, color=colors)
        for i, (_, used, limit) in enumerate(limited):
            ax.text(1.01, i, f"{used:g} / {limit:g}", va="center")
        ax.set_xlim(0, 1.25)
        ax.invert_yaxis()
        ax.set_xticks([0, 0.5, 1.0], ["0%", "50%", "100%"])
        ax.spines[["top", "right"]].set_visible(False)
        return _svg(fig)


def ask_waits(waits: Sequence[tuple[float, str]]) -> str:
    """How long answered asks waited for their answer (seconds), by outcome: approved, refused, timed out."""
    with _LOCK:
        fig = _figure(6.4, 2.2)
        ax = fig.subplots()
        if not waits:
            ax.text(0.5, 0.5, "no ask answered yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return _svg(fig)
        groups = {"approved": "#1a7f37", "refused": "#cf222e", "timed out": "#6e7781"}
        data = [[w for w, outcome in waits if outcome == g] for g in groups]
        ax.hist([d for d in data], bins=12, stacked=True, color=list(groups.values()), label=list(groups))
        ax.set_xlabel("seconds until answered")
        ax.set_ylabel("asks")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        return _svg(fig)


def asr_utility(points: Sequence[tuple[str, float, float, str]], lines: Sequence[tuple[str, float]]) -> str:
    """Utility under attack (y) against attack success rate (x): (name, asr, utility, colour) points,
    and (name, asr) vertical lines for anchors published without a utility figure."""
    with _LOCK:
        fig = _figure(6.0, 4.2)
        ax = fig.subplots()
        for name, asr in lines:
            ax.axvline(asr, color="#6e7781", linestyle="--", linewidth=1)
            ax.annotate(f"{name} (ASR only)", (asr, 0.98), xytext=(4, 0), textcoords="offset points", color="#6e7781", va="top")
        for name, asr, util, color in points:
            ax.scatter([asr], [util], color=color, s=36, zorder=3)
            ax.annotate(name, (asr, util), xytext=(6, 4), textcoords="offset points")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.xaxis.set_major_formatter("{x:.0%}")
        ax.yaxis.set_major_formatter("{x:.0%}")
        ax.set_xlabel("attack success rate")
        ax.set_ylabel("utility under attack")
        ax.grid(alpha=0.3)
        return _svg(fig)
