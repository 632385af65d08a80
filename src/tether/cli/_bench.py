"""``tether bench agentdojo``: measure a policy set on AgentDojo with bounding agents."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal, cast

import click

from tether.cli._common import ProgressLines, err_console, fail, make_console
from tether.errors import TetherError

SHIPPED_POLICIES = Path(__file__).parents[1] / "adapters" / "agentdojo" / "policies"

_FLAWED = (
    "travel/injection_task_6 asks the agent to praise a hotel in its answer: it makes no tool call, "
    "so no tool guard can stop it; it is counted in 'asr' and left out of 'asr_tool_reachable'.",
    "Traces passed to AgentDojo checks hold executed calls only; a denied or unapproved call is not in them.",
    "The worst-case agent's answer is the user task's ground-truth output when all its calls ran, else empty, "
    "plus the injection task's ground-truth output once it obeyed the injection.",
)


_SINGLE_ONLY = {
    "agents": "--agent",
    "executor": "--executor",
    "ray_address": "--ray-address",
    "workers": "--workers",
    "scope": "--scope",
    "baseline": "--baseline/--no-baseline",
}
"""Options of the single-task horizon that ``--horizon long`` refuses rather than ignores."""


@click.group()
def bench() -> None:
    """Benchmarks (no LLM: agents that bound what any model could do)."""


@bench.command("agentdojo")
@click.option("--suite", "suites", multiple=True, help="Suite(s) to run (default: all four).")
@click.option("--agent", "agents", multiple=True, type=click.Choice(["oracle", "worst-case"]), help="Agent(s) (default: both).")
@click.option(
    "--policy",
    "policy_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Directory with <suite>.yaml policies (default: the shipped ones in tether/adapters/agentdojo/policies).",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, help="Address of an existing Ray cluster (default: start a local one).")
@click.option("--workers", type=int, default=None, help="CPUs for a local Ray cluster.")
@click.option(
    "--db",
    "db",
    default=None,
    help="Log every episode's session to this store (a SQLite file, or a postgresql:// URL that every Ray worker opens). "
    "Default: a private in-memory store per episode.",
)
@click.option(
    "--scope",
    "scope",
    type=click.Choice(["both", "off", "on"]),
    default="both",
    show_default=True,
    help="Run without and/or with the ground-truth task scope.",
)
@click.option(
    "--plans",
    "plans",
    type=click.Choice(["off", "perfect", "imperfect", "realistic", "realistic-replan", "all"]),
    default="off",
    show_default=True,
    is_flag=False,
    flag_value="perfect",
    help="Agents declare a plan before their first step: 'perfect' (every write of the user task, "
    "'--plans' alone), 'imperfect' (one needed write left out), 'realistic' (the writes with only the values "
    "the prompt and trusted reads spell out), 'realistic-replan' (the same, then before a write no approved plan covers "
    "a new plan naming every remaining write: one human decision for the rest of the task; its figures also under "
    "'with_realistic_replans'), 'all' (off, perfect, imperfect and realistic: the primary figures are "
    "without plans, the others under 'with_plans', 'with_imperfect_plans' and 'with_realistic_plans').",
)
@click.option(
    "--horizon",
    type=click.Choice(["single", "long"]),
    default="single",
    show_default=True,
    help="'single': one task per episode; 'long': each suite's user tasks one after another in one environment, "
    "as one principal's sessions, with injections placed along the way (the report's 'long' section; docs/bench.md).",
)
@click.option(
    "--inject-every", type=click.IntRange(min=1), default=2, show_default=True, help="Long horizon: every n-th task gets an injection."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Long horizon: seeds the order of the injection tasks.")
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also run the no-defense worst-case baseline.")
@click.option("--benchmark-version", "version", default="v1.2", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), default=None, help="Write the HTML report here (default: next to --json)."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def agentdojo(
    suites: tuple[str, ...],
    agents: tuple[str, ...],
    policy_dir: str | None,
    executor: str,
    ray_address: str | None,
    workers: int | None,
    db: str | None,
    scope: str,
    plans: str,
    horizon: str,
    inject_every: int,
    seed: int,
    baseline: bool,
    version: str,
    json_path: str | None,
    html_path: str | None,
    progress: bool,
) -> None:
    """Run every user task and every (user, injection) pair of AgentDojo under Tether."""
    from rich.progress import Progress
    from rich.table import Table

    from tether.adapters.agentdojo import SUITE_NAMES, load_suites
    from tether.bench import BenchContext, episode_specs, load_policies, run, summarize, write_html, write_json
    from tether.bench import baseline as baseline_metrics

    console = make_console(stderr=True)
    given = click.get_current_context().get_parameter_source
    if horizon == "single" and any(given(name) not in (None, click.core.ParameterSource.DEFAULT) for name in ("inject_every", "seed")):
        raise click.UsageError("--inject-every and --seed place the injections of --horizon long")
    if horizon == "long":
        if html_path is not None:
            raise click.UsageError("the HTML report covers the single-task horizon; use --json with --horizon long")
        extra = [flag for name, flag in _SINGLE_ONLY.items() if given(name) not in (None, click.core.ParameterSource.DEFAULT)]
        if extra:
            raise click.UsageError(
                f"{', '.join(extra)}: single-task options; the long horizon runs both agents, locally, and its own no-defense runs"
            )
        from tether.cli._bench_long import run_long

        if json_path is not None:
            prepare_output(json_path)
        # the plans variants use the planner --plans names ('off' and 'all' mean the perfect one)
        planner = "perfect" if plans in ("off", "all") else plans
        options = {"inject_every": inject_every, "seed": seed, "plans": planner}
        run_long(
            console,
            list(suites),
            policy_dir or str(SHIPPED_POLICIES),
            db=db,
            version=version,
            json_path=json_path,
            progress=progress,
            options=options,
        )
        return
    # Where the reports go is settled before the run: a run of many minutes must not be lost to a missing folder.
    if html_path is None and json_path is not None:
        html_path = str(Path(json_path).with_suffix(".html"))
    for out in (json_path, html_path):
        if out is not None:
            prepare_output(out)
    try:
        names = list(suites) or list(SUITE_NAMES)
        load_suites(names, version)
        texts = load_policies(policy_dir or SHIPPED_POLICIES, names)
        ctx = BenchContext(texts, version, db=db)
        ctx.store()  # a store that cannot be opened fails the run before it starts
        scopes = {"both": (False, True), "off": (False,), "on": (True,)}[scope]
        chosen: Any = tuple(agents) or ("oracle", "worst-case")
        kinds: Any = ("off", "perfect", "imperfect", "realistic") if plans == "all" else (plans,)
        specs = episode_specs(names, chosen, scopes=scopes, baseline=baseline, version=version, plans=kinds)
        # A bar on a terminal; without one (--no-progress, or stderr logged to a file), a line every
        # PROGRESS_EVERY_S seconds, so that minutes of work never look like a hang.
        bar_on = progress and console.is_terminal
        lines = ProgressLines(f"AgentDojo {version} ({executor})", len(specs), err_console)
        with Progress(console=console, disable=not bar_on, transient=True) as bar:
            task = bar.add_task(f"AgentDojo {version} ({executor})", total=len(specs))
            timing: dict[str, float] = {}
            mode = cast(Literal["local", "ray"], executor)

            def advance(n: int) -> None:
                bar.advance(task, n)
                if not bar_on:
                    lines.advance(n)

            results, wall = run(specs, ctx, mode, advance, ray_address=ray_address, workers=workers, timing=timing)
        unreachable = {(n, i) for n in names for i, t in ctx.data(n).suite.injection_tasks.items() if not ctx.data(n).tool_reachable(t)}
    except TetherError as exc:  # an unknown suite, an unreadable policy: exit 2 like every usage error
        fail(str(exc))

    primary = kinds[0]
    report: dict[str, Any] = summarize(results, scoped=False, unreachable=unreachable, plans=primary) if False in scopes else {}
    if True in scopes:
        report["with_task_scope"] = summarize(results, scoped=True, unreachable=unreachable, plans=primary)
    for kind, key in (
        ("perfect", "with_plans"),
        ("imperfect", "with_imperfect_plans"),
        ("realistic", "with_realistic_plans"),
        ("realistic-replan", "with_realistic_replans"),
    ):
        if kind in kinds[1:] or (kind == "realistic-replan" and kind == primary):
            report[key] = summarize(results, scoped=False, unreachable=unreachable, plans=kind) if False in scopes else {}
            if True in scopes:
                report[key]["with_task_scope"] = summarize(results, scoped=True, unreachable=unreachable, plans=kind)
    if baseline:
        report["baseline"] = baseline_metrics(results)
    guard_s = sum(m.guard_s for r in results for m in {id(v): v for v in r.modes.values()}.values())
    report.update(
        version=version,
        agents=list(chosen),
        plans=primary,
        executor=executor,
        episodes=len(results),
        errors=[{"episode": r.spec.key, "error": r.error} for r in results if r.error],
        policy_hash={n: ctx.policy(n).hash for n in names},
        timing={
            "wall_s": round(wall, 3),
            "startup_s": round(timing["startup_s"], 3),
            "episodes_s": round(wall - timing["startup_s"], 3),
            "workers": workers,
            "guard_s": round(guard_s, 3),
            "guard_share": round(guard_s / wall, 4) if wall else None,
        },
        notes=list(_FLAWED),
        generated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    _print_table(console, report, Table)
    if json_path:
        write_json(report, json_path)
    if html_path:
        write_html(report, html_path)


def prepare_output(path: str) -> None:
    """Create the folder a report will be written to, or fail (before any work) saying why."""
    target = Path(path)
    if target.is_dir():
        raise click.UsageError(f"{path!r} is a directory; give the report's file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot create the folder for {path!r}: {exc.strerror or exc}") from None
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise click.UsageError(f"cannot write {path!r}: permission denied")


def _print_table(console: Any, report: dict[str, Any], table_cls: Any) -> None:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    plans = report.get("plans", "off")
    title = "no task scope" + ("" if plans == "off" else f", {plans} plans")
    table = table_cls(title=f"Tether on AgentDojo ({title}); % as autonomous / careful / rubber-stamp")
    for col in ("suite", "benign utility", "utility under attack", "ASR", "ASR tool-reachable", "asks/task (auto / careful)", "pairs"):
        table.add_column(col)
    for suite in ("banking", "slack", "travel", "workspace", "overall"):
        m = report.get(suite)
        if m is None:
            continue
        cells = [
            " / ".join(pct(m[k][mode]) for mode in ("autonomous", "careful_human", "rubber_stamp"))
            for k in ("benign_utility", "utility_under_attack", "asr", "asr_tool_reachable")
        ]
        asks = m["asks_per_task"]
        shown = " / ".join("-" if asks[mode] is None else f"{asks[mode]:.2f}" for mode in ("autonomous", "careful_human"))
        table.add_row(suite, *cells, shown, str(m["pairs"]))
    console.print(table)
    overall = report.get("overall")
    if overall is not None and overall.get("oracle_asks_careful"):
        console.print(
            f"human decisions on the oracle runs (one session per episode): {overall['oracle_asks_careful']} asks answered by a "
            f"careful human; {overall['oracle_asks_endorsing']} when it approves and remembers for the session "
            f"({overall['human_decisions_per_100_asks_endorsing']} per 100)"
        )
    t = report["timing"]
    console.print(
        f"{report['episodes']} episodes in {t['wall_s']:.1f} s ({t['episodes_s']:.1f} s after {t['startup_s']:.1f} s of start-up); "
        f"Tether's share (checks + recording): {t['guard_s']:.1f} s"
    )
