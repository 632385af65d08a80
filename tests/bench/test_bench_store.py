"""``tether bench`` with a shared store: Ray workers open one PostgreSQL database from its URL
and the whole run lands in one log that verifies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tether.bench._episodes import BenchContext, load_policies
from tether.bench._runner import episode_specs, run
from tether.events import SessionStarted
from tether.store import open_store

POLICIES = Path(__file__).resolve().parents[2] / "src" / "tether" / "adapters" / "agentdojo" / "policies"


@pytest.mark.ray
def test_a_ray_run_writes_one_auditable_log_to_postgres(postgres_url: str) -> None:
    specs = episode_specs(["banking"], scopes=(False,), baseline=False)[:12]
    ctx = BenchContext(load_policies(POLICIES, ["banking"]), db=postgres_url)
    results, _ = run(specs, ctx, "ray", workers=2)
    assert not any(r.error for r in results)
    store = open_store(postgres_url, must_exist=True)
    report = store.verify()
    assert report.ok
    # One session per episode mode that ran, each tagged with its episode, none lost or doubled.
    logged: Counter[tuple[str, str]] = Counter()
    for summary in store.sessions():
        first = store.read(summary.session_id, 0, limit=1)[0].event()
        assert isinstance(first, SessionStarted)
        logged[(first.metadata["episode"], first.metadata["mode"])] += 1
    ran = Counter((r.spec.key, mode) for r in results for mode in r.modes if _ran(r.modes, mode))
    assert logged == ran and report.sessions == sum(ran.values())
    store.close()


def _ran(modes: dict[str, object], mode: str) -> bool:
    """A mode ran its own session unless it reused the autonomous run's result (no asks)."""
    return mode == "autonomous" or modes[mode] is not modes["autonomous"]
