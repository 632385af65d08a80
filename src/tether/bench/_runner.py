"""Which episodes a bench run has, and the executors that run them (local or Ray).

Both executors return results in the order of the episode list, so a local run
and a Ray run of the same episodes give identical results (apart from timings).

The Ray executor sends one task per user task (its benign episode and all its
pairs, so a worker reuses each pair's environment and checks), largest first, and
warms every worker (imports, suites, policies) before the clock for the episodes
starts, so the start-up cost can be reported apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from tether.adapters.agentdojo import load_suites
from tether.bench._episodes import AgentKind, BenchContext, EpisodeResult, EpisodeSpec, PlanKind, run_episode
from tether.errors import ConfigError

Executor = Literal["local", "ray"]
"""Where episodes run."""
Progress = Callable[[int], None]
"""Called with the number of episodes just finished."""


def episode_specs(
    suites: Sequence[str],
    agents: Sequence[AgentKind] = ("oracle", "worst-case"),
    *,
    scopes: Sequence[bool] = (False, True),
    baseline: bool = True,
    version: str = "v1.2",
    plans: Sequence[PlanKind] = ("off",),
) -> list[EpisodeSpec]:
    """Every benign user task and every (user, injection) pair, for each agent, scope and plan kind.

    The benign episodes are run with the oracle (the worst-case agent sees no
    injection there, so it behaves the same). ``baseline`` adds the no-defense
    worst-case run. Episodes of one pair are adjacent (they share an environment).
    """
    loaded = load_suites(list(suites), version)
    specs: list[EpisodeSpec] = []
    for name, suite in loaded.items():
        for user_id in suite.user_tasks:
            for plan in plans:
                for scoped in scopes:
                    specs.append(EpisodeSpec(name, user_id, None, "oracle", scoped, plans=plan))
            if baseline:
                specs.append(EpisodeSpec(name, user_id, None, "oracle", False, defended=False))
            for inj_id in suite.injection_tasks:
                for agent in agents:
                    for plan in plans:
                        for scoped in scopes:
                            specs.append(EpisodeSpec(name, user_id, inj_id, agent, scoped, plans=plan))
                if baseline:
                    specs.append(EpisodeSpec(name, user_id, inj_id, "worst-case", False, defended=False))
    return specs


def run_local(specs: Sequence[EpisodeSpec], ctx: BenchContext, progress: Progress | None = None) -> list[EpisodeResult]:
    """Run the episodes one after another in this process."""
    results: list[EpisodeResult] = []
    for spec in specs:
        results.append(run_episode(spec, ctx))
        if progress is not None:
            progress(1)
    return results


_WORKER_CONTEXTS: dict[tuple[tuple[tuple[str, str], ...], str, str | None], BenchContext] = {}


def _worker_context(policy_texts: dict[str, str], version: str, db: str | None) -> BenchContext:
    key = (tuple(sorted(policy_texts.items())), version, db)
    ctx = _WORKER_CONTEXTS.get(key)
    if ctx is None:
        ctx = _WORKER_CONTEXTS[key] = BenchContext(policy_texts, version, db=db)
    return ctx


def _warm(policy_texts: dict[str, str], version: str, suites: list[str], db: str | None) -> None:
    """Load every suite and policy in this worker, and open the shared store (takes seconds,
    so the warm-up tasks sent at once, one per CPU, run side by side, one on each worker)."""
    ctx = _worker_context(policy_texts, version, db)
    ctx.store()
    for suite in suites:
        ctx.data(suite)
        ctx.policy(suite)
        ctx.runtime(suite)


def _run_batch(policy_texts: dict[str, str], version: str, db: str | None, specs: list[EpisodeSpec]) -> list[EpisodeResult]:
    ctx = _worker_context(policy_texts, version, db)
    return [run_episode(spec, ctx) for spec in specs]


def _by_user_task(specs: Sequence[EpisodeSpec]) -> Iterator[list[int]]:
    """Indices of the specs, grouped by (suite, user task), in order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault((spec.suite, spec.user_task), []).append(i)
    yield from groups.values()


def run_ray(
    specs: Sequence[EpisodeSpec],
    ctx: BenchContext,
    progress: Progress | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    timing: dict[str, float] | None = None,
) -> list[EpisodeResult]:
    """Run the episodes on a Ray cluster (a local one unless ``address`` is given).

    With ``ctx.db`` set, every worker opens that store (a ``postgresql://`` URL for a cluster
    of machines) and logs its episodes' sessions there: one auditable log for the whole run.

    ``timing["startup_s"]`` gets the seconds spent starting Ray and warming its workers.
    """
    started = time.perf_counter()
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in the bench extra
        raise ConfigError("the Ray executor needs ray: pip install 'tether[bench]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is not None:
            kwargs["address"] = address
        elif workers is not None:
            kwargs["num_cpus"] = workers
        ray.init(**kwargs)
    try:
        policy_ref = ray.put(ctx.policy_texts)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        suites = sorted({spec.suite for spec in specs})
        warm = ray.remote(num_cpus=1)(_warm)
        ray.get([warm.remote(policy_ref, ctx.version, suites, ctx.db) for _ in range(cpus)])
        if timing is not None:
            timing["startup_s"] = time.perf_counter() - started
        remote = ray.remote(num_cpus=1)(_run_batch)
        groups = sorted(_by_user_task(specs), key=len, reverse=True)
        pending = {remote.remote(policy_ref, ctx.version, ctx.db, [specs[i] for i in group]): group for group in groups}
        out: list[EpisodeResult | None] = [None] * len(specs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                group = pending.pop(ref)
                for i, result in zip(group, ray.get(ref), strict=True):
                    out[i] = result
                if progress is not None:
                    progress(len(group))
        return [r for r in out if r is not None]
    finally:
        if started_here:
            ray.shutdown()


def run(
    specs: Sequence[EpisodeSpec],
    ctx: BenchContext,
    executor: Executor = "local",
    progress: Progress | None = None,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    timing: dict[str, float] | None = None,
) -> tuple[list[EpisodeResult], float]:
    """Run the episodes; return the results (in order) and the wall time in seconds.

    With Ray, ``timing["startup_s"]`` gets the part of that time spent starting
    Ray and warming its workers (0 for the local executor).
    """
    started = time.perf_counter()
    if timing is not None:
        timing["startup_s"] = 0.0
    if executor == "ray":
        results = run_ray(specs, ctx, progress, address=ray_address, workers=workers, timing=timing)
    elif executor == "local":
        results = run_local(specs, ctx, progress)
    else:
        raise ConfigError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    return results, time.perf_counter() - started
