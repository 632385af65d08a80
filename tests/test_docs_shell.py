"""Every shell example in README.md and docs/*.md runs (issue 16).

Each fenced ```bash block runs with ``bash -e -o pipefail`` in a fresh temporary folder,
with this checkout's ``tether`` first on PATH. A block that cannot run here is marked in the
document, right above it, with ``<!-- not run: REASON -->``; it is reported as skipped with
its reason (``pytest -ra`` lists them), never left out silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tether import Policy
from tether.examples import shipped_policy
from tether.session import load_cases, run_cases

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- not run: (?P<reason>.*?) -->\n)?```bash\n(?P<code>.*?)```", re.DOTALL)
PINNED = {
    ("README.md", 3): "the set-up commands of a fresh clone: tests/test_readme.py pins them and CI runs the second one",
}
"""Blocks that cannot carry a marker (the README's first lines are pinned), with their reason."""
TIMEOUT_S = 60


def blocks() -> list[tuple[str, int, str, str | None]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))  # the ```bash line, 1-based
            name = str(doc.relative_to(ROOT))
            out.append((name, line, match.group("code"), match.group("reason") or PINNED.get((name, line))))
    return out


BLOCKS = blocks()


def test_there_are_runnable_examples() -> None:
    assert sum(1 for *_, reason in BLOCKS if reason is None) >= 4


@pytest.mark.parametrize(("doc", "line", "code", "reason"), BLOCKS, ids=[f"{d}:{n}" for d, n, _, _ in BLOCKS])
def test_shell_example_runs(doc: str, line: int, code: str, reason: str | None, tmp_path: Path) -> None:
    if reason is not None:
        pytest.skip(f"{doc}:{line} not run: {reason}")
    env = {k: v for k, v in os.environ.items() if k not in ("TETHER_DB", "COLUMNS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, f"{doc}:{line} failed ({proc.returncode}):\n{code}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_the_documented_policy_test_cases_pass() -> None:
    """docs/policy.md's ``yaml-test`` block is a real test file for tether:email_assistant."""
    text = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    found = re.search(r"```yaml-test\n(.*?)```", text, re.DOTALL)
    assert found is not None
    shipped = shipped_policy("tether:email_assistant")
    assert shipped is not None and yaml.safe_load(found.group(1))["cases"]
    run = run_cases(Policy.from_yaml(shipped.text), load_cases("docs/policy.md", found.group(1)))
    assert not run.failed, [r.problem for r in run.failed]
