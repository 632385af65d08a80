"""The framework examples run offline as shipped: the injection denied, the note written, the payment
run only when the human approves it, the log verified."""

from __future__ import annotations

import importlib

import pytest

from tether.examples import _inbox

EXAMPLES = [("langgraph", "langgraph_agent"), ("pydantic_ai", "pydantic_ai_agent"), ("agents", "openai_agents_agent")]


@pytest.mark.parametrize(("package", "example"), EXAMPLES)
@pytest.mark.parametrize("approve", [True, False])
def test_example_runs_offline(package: str, example: str, approve: bool, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip(package)
    module = importlib.import_module(f"tether.examples.{example}")
    _inbox.EFFECTS.clear()
    assert module.main(["--approve"] if approve else []) == 0
    out = capsys.readouterr().out
    assert "tether denied this call: DENY send_email" in out and "untrusted data" in out
    paid = ["paid 20.0 to alice@example.com"] if approve else []
    assert ["noted: lunch with Alice, Friday noon", *paid] == _inbox.EFFECTS
    assert "chain verified" in out
