"""docs/policy.md cannot drift: its YAML examples validate and every format key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from tether import Policy
from tether.policy import _schema

DOC = (Path(__file__).parents[2] / "docs" / "policy.md").read_text()
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_validate(example: str) -> None:
    Policy.from_yaml(example)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


MODELS: list[type[BaseModel]] = [
    _schema.PolicySpec,
    _schema.ToolSpec,
    _schema.ArgSpec,
    _schema.FlowRule,
    _schema.Condition,
    _schema.OutputLabel,
    _schema.RuleSpec,
    _schema.Budgets,
    _schema.PrincipalBudgets,
    _schema.Checkin,
    _schema.Rate,
    _schema.Limits,
    _schema.ToolBudget,
    _schema.Defaults,
    _schema.EffectDefaults,
    _schema.ReadersSettings,
    _schema.OutflowSettings,
    _schema.PlanSettings,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert re.search(rf"[`{{ ,]{re.escape(key)}[`:]", DOC), f"{model.__name__}.{key} is not documented in docs/policy.md"


def test_every_model_of_the_format_is_listed() -> None:
    # A new model in the schema must be documented too.
    found = {
        obj for obj in vars(_schema).values() if isinstance(obj, type) and issubclass(obj, _schema._Strict) and obj is not _schema._Strict
    }
    assert found == set(MODELS)


INVALID = re.search(r"```yaml-invalid\n(.*?)```", DOC, re.DOTALL)
CHECK_OUTPUT = re.search(r"```text\n(invalid checked\.yaml.*?)```", DOC, re.DOTALL)


def test_documented_check_output_is_what_check_prints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tether.cli import main

    assert INVALID is not None and CHECK_OUTPUT is not None
    path = tmp_path / "checked.yaml"
    path.write_text(INVALID.group(1))
    result = CliRunner().invoke(main, ["policy", "check", str(path)], catch_exceptions=False)
    printed = [" ".join(line.split()) for line in result.output.replace(str(tmp_path) + "/", "").splitlines() if line.strip()]
    assert result.exit_code == 2
    assert printed == CHECK_OUTPUT.group(1).strip().splitlines()
