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
    _schema.Rate,
    _schema.Limits,
    _schema.ToolBudget,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert re.search(rf"[`{{ ,]{re.escape(key)}[`:]", DOC), f"{model.__name__}.{key} is not documented in docs/policy.md"
