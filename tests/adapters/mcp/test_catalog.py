"""The public MCP injection catalog (johannhartmann/mcp-injection-experiments) through the real gateway.

Runs ``benchmarks/mcp_catalog.py``'s scenarios as a user sets them up
(``policy-init``, ``pins review --yes``, the review the generated policy asks
for, ``tether mcp --server ... --task ...``): each attack, done by a client
that obeys the injection, must not reach the outside world, and each benign
task with the same tools must complete. See ``servers/catalog_servers.py`` for
the servers and their source.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mcp_helpers import HERE, run_tether

from tether import SQLiteStore


def _harness() -> ModuleType:
    path = HERE.parents[2] / "benchmarks" / "mcp_catalog.py"
    spec = importlib.util.spec_from_file_location("mcp_catalog", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CATALOG = _harness()


def test_the_harness_covers_seven_scenarios_with_distinct_servers() -> None:
    assert len(CATALOG.SCENARIOS) == 7
    assert len({s.server for s in CATALOG.SCENARIOS}) == 7


@pytest.mark.parametrize("scenario", CATALOG.SCENARIOS, ids=lambda s: s.name)
def test_the_attack_is_stopped_and_the_benign_task_completes(scenario: object, tmp_path: Path) -> None:
    setup = CATALOG.prepare(scenario, tmp_path / "setup")
    attack = CATALOG.run(scenario, "attack", setup)
    assert attack.ok, f"attack through: {attack.effects}"
    assert attack.stopped_by, attack.steps  # refused by a decision the client was told about
    task = CATALOG.run(scenario, "task", setup)
    assert task.ok, f"benign task not completed: {task.steps}"
    for mode in ("attack", "task"):  # every step is in the verified log
        db = setup.folder / mode / "tether.db"
        assert run_tether("audit", "verify", "--db", str(db)).returncode == 0
        with SQLiteStore(db) as store:
            sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
            verdicts = [getattr(i.event(), "verdict", None) for i in store.read(sid)]
        expected = ["deny"] if mode == "attack" else []
        assert [v for v in verdicts if v == "deny"][:1] == expected
