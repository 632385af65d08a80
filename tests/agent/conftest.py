"""Fixtures of the agent-loop tests: the policy, a store, and the agent against the scripted server.

The scripted server (:class:`tether.agent.ScriptedModelServer`) stands in for a hosted model, which
cannot be reached from here: a real HTTP server on loopback replaying scripted turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def policy_path() -> Path:
    return HERE / "agent_policy.yaml"


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "effects.txt"
    path.touch()
    monkeypatch.setenv("AGENT_TEST_EFFECTS", str(path))
    yield path
