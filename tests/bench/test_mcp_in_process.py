"""The in-process MCP proxy benchmark runs and reports its keys (timings live in docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "mcp_in_process.py"


def test_the_in_process_proxy_benchmark_runs_both_paths() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--calls", "30", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["calls_per_path"] == 30
    assert set(report) >= {"proxy_p50_us", "proxy_p99_us", "guard_p50_us", "guard_p99_us", "plumbing_p50_us"}
    assert report["proxy_p50_us"] > 0 and report["guard_p50_us"] > 0
