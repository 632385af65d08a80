"""The README starts with exactly two set-up commands, and CI runs the second one verbatim."""

from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_two_commands_first() -> None:
    head = (ROOT / "README.md").read_text().split("```bash", 1)[0]
    assert head.strip().startswith("# Tether") and head.count("\n") <= 2
    commands = readme_commands()
    assert len(commands) == 2
    assert "tether demo" in commands[0] or "tether bench" in commands[0]
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
