"""``tether bench agentdojo --horizon long``: each suite's user tasks in one environment, as one principal's sessions."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from tether.cli._common import ProgressLines, err_console, fail
from tether.errors import TetherError

_NOTES = (
    "Each suite's user tasks run in the suite's order in one persistent environment, each as a session of one principal "
    "in one store; a careful human answers every ask.",
    "Benign runs use the oracle agent and no injection; attacked runs the worst-case agent, which obeys every injection it "
    "reads in every session that reads it, with injections placed every --inject-every tasks in the vectors that task reads.",
    "Unchainable tasks (their utility check fails chained with the oracle and no guard) run in every variant but count in "
    "no utility; 'no_defense' shows which placed attacks their own security check can see in the chained state.",
)


def run_long(
    console: Any,
    suites: list[str],
    policy_dir: str,
    *,
    db: str | None,
    version: str,
    json_path: str | None,
    progress: bool,
    options: dict[str, Any],
) -> None:
    """Run the long horizon for ``suites`` (all four when empty), print it, write the JSON report
    (its folder is prepared by the caller, before the run)."""
    from tether.adapters.agentdojo import SUITE_NAMES, load_suites
    from tether.bench import BenchContext, LongOptions, load_policies, long_horizon, write_json

    started = time.perf_counter()
    try:
        names = suites or list(SUITE_NAMES)
        loaded = load_suites(names, version)
        ctx = BenchContext(load_policies(policy_dir, names), version, db=db)
        ctx.store()  # a store that cannot be opened fails the run before it starts
        chosen = LongOptions(**options)
        total = 10 * sum(len(s.user_tasks) for s in loaded.values())  # two calibration runs and four variants twice
        lines = ProgressLines(f"AgentDojo {version} long horizon", total, err_console)
        long = long_horizon(ctx, names, chosen, lines.advance if progress else None)
    except TetherError as exc:
        fail(str(exc))
    wall = time.perf_counter() - started
    report = {
        "long": long,
        "horizon": "long",
        "version": version,
        "policy_hash": {n: ctx.policy(n).hash for n in names},
        "timing": {"wall_s": round(wall, 3)},
        "notes": list(_NOTES),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print_long(console, long)
    console.print(f"long horizon: {sum(long[n]['tasks'] for n in names)} tasks per run, 10 runs, in {wall:.1f} s")
    if json_path:
        write_json(report, json_path)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_long(console: Any, long: dict[str, Any]) -> None:
    """The ``long`` section as a table, then the unchainable tasks and the targets."""
    table = Table(title="Tether on AgentDojo, long horizon (careful human; % and human decisions per task)")
    for col in (
        "suite",
        "variant",
        "ASR tool-reachable",
        "benign utility",
        "utility under attack",
        "decisions/task (all / first q / last q)",
        "under attack",
        "endorsements",
    ):
        table.add_column(col)
    for suite, section in long.items():
        if suite in ("targets", "options"):
            continue
        for variant in ("plain", "endorsements", "plans", "both"):
            m = section.get(variant)
            if m is None:
                continue
            d, a = m["human_decisions_per_task"], m["human_decisions_per_task_under_attack"]
            table.add_row(
                suite,
                variant,
                f"{_pct(m['asr_tool_reachable'])} ({m['attacks_tool_reachable']} placed)",
                _pct(m["benign_utility"]),
                _pct(m["utility_under_attack"]),
                " / ".join(_num(d[k]) for k in ("overall", "first_quarter", "last_quarter")),
                _num(a["overall"]),
                str(m["endorsements_made"]),
            )
    console.print(table)
    for suite, section in long.items():
        if suite in ("overall", "targets", "options"):
            continue
        base = section["no_defense"]
        console.print(
            f"{suite}: {len(section['unchainable'])} of {section['tasks']} tasks cannot be chained"
            + "".join(f"\n  {task}: {why}" for task, why in section["unchainable"].items())
            + f"\n  without defense {_pct(base['asr_tool_reachable'])}% of {base['attacks_tool_reachable']} placed tool-reachable attacks "
            "succeed by their own security checks",
            soft_wrap=True,
        )
    t = long["targets"]
    console.print(
        f"targets: ASR 0 on tool-reachable attacks in every variant: {'met' if t['asr_tool_reachable_zero_in_every_variant'] else 'NOT met'}; "
        f"plans and endorsements <= 0.2 decisions per task: {_num(t['both_decisions_per_task'])} "
        f"({'met' if t['both_decisions_per_task_met'] else 'NOT met'}), <= 0.05 in the last quarter: "
        f"{_num(t['both_last_quarter'])} ({'met' if t['both_last_quarter_met'] else 'NOT met'})",
        soft_wrap=True,
    )
