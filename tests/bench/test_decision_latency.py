"""The decision-latency benchmark and its peers (Cedar, Microsoft's Agent Governance Toolkit).

Timings are not asserted here (they live in docs/benchmarks.md); what is asserted is that every
engine the benchmark times decides the sample calls as its policy file says, that a wrong
engine is caught, and that the script runs, with its JSON keys, both with AGT installed and
without it (then saying it was skipped).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tether import Guard, Policy, SQLiteStore

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "benchmarks"
SCRIPT = BENCH / "decision_latency.py"


def load_peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_peers", BENCH / "decision_peers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


peers = load_peers()


def tether() -> Any:
    stateless = peers.stateless_policy(Policy.from_file(peers.POLICIES / "agent20.yaml"))
    session = Guard(stateless, SQLiteStore(":memory:")).start_session("benchmark task")
    return peers.tether_engine(stateless, session.state)


def test_tether_decides_the_samples_as_stated() -> None:
    peers.check_samples(tether())


@pytest.mark.parametrize("make", [peers.cedar_peer, peers.agt_peer], ids=["cedar", "agt"])
def test_every_peer_engine_decides_the_samples_as_its_policy_says(make: Any) -> None:
    peer = make()
    if peer.skipped:
        pytest.skip(peer.skipped)
    assert peer.engines and peer.version
    for engine in peer.engines:
        peers.check_samples(engine)


def test_a_peer_that_expresses_less_than_claimed_is_caught() -> None:
    engine = tether()
    allow_all = peers.Engine("allow_all", peers.AGT_GOVERN, "-", engine.prepare, lambda call: None, lambda _: True)
    with pytest.raises(AssertionError, match="tool allow-list"):
        peers.check_samples(allow_all)


def test_gaps_are_listed_per_policy() -> None:
    # What only the stricter AGT evaluators can say, govern()'s engine cannot.
    govern = peers.cannot_express(peers.AGT_GOVERN)
    assert "regular-expression pattern" in govern and "maximum string length" in govern
    assert "regular-expression pattern" not in peers.cannot_express(peers.AGT_SHARED)
    assert "a second required argument" in peers.cannot_express(peers.AGT_EVALUATOR)
    assert "unexpected arguments" in peers.cannot_express(peers.CEDAR)


def run_script(*, hide_agt: bool) -> tuple[dict[str, Any], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    hide = "sys.modules.update(agentmesh=None, agent_os=None)" if hide_agt else "pass"
    code = f"import runpy, sys\n{hide}\nsys.argv = [{str(SCRIPT)!r}, '--smoke', '--json']\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    sys_path_fix = f"import sys; sys.path.insert(0, {str(BENCH)!r})\n"
    done = subprocess.run([sys.executable, "-c", sys_path_fix + code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


EXISTING_KEYS = ["p50_us", "p99_us", "history_ratio", "check_with_log_p50_us", "check_with_log_p99_us", "cedar_ratio"]


def test_script_runs_without_agt_and_says_it_was_skipped() -> None:
    results, stderr = run_script(hide_agt=True)
    assert "AGT skipped" in stderr
    assert results["agt"]["skipped"]
    assert results["agt_ratio"] is None and results["agt_logged_ratio_p50"] is None and results["agt_logged_ratio_p99"] is None
    for key in EXISTING_KEYS:
        assert key in results
    assert results["stateless"]["tether_p50_us"] > 0


def test_script_reports_agt_beside_tether() -> None:
    if peers.agt_peer().skipped:
        pytest.skip("agent-governance-toolkit-core is not installed")
    results, _ = run_script(hide_agt=False)
    for key in [*EXISTING_KEYS, "agt_ratio", "agt_logged_ratio_p50", "agt_logged_ratio_p99"]:
        assert results[key] > 0, key
    agt = results["agt"]
    assert agt["engines"][agt["fastest"]]["same_rules"]
    assert agt["engines"][peers.AGT_GOVERN]["cannot_express"] == peers.cannot_express(peers.AGT_GOVERN)
    logged = agt["logged"]
    assert logged["agt_audit_entries"] == len(peers.SAMPLES) + logged["warmup_calls"] + logged["calls"]
