"""Injection ground truths (AgentDojo's and ours) achieve their task's own security check."""

import pytest
from agentdojo.functions_runtime import FunctionsRuntime

from tether.adapters.agentdojo._ground_truth import WRITTEN
from tether.adapters.agentdojo._suites import SuiteData, load_suites, security_broken
from tether.errors import ConfigError

SUITES = load_suites()


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_injection_ground_truth_breaks_security(suite: str) -> None:
    data = SuiteData(SUITES[suite])
    for task in SUITES[suite].injection_tasks.values():
        pre = data.environment()
        now = pre.model_copy(deep=True)
        calls = data.injection_calls(task, pre.model_copy(deep=True), now)
        runtime = FunctionsRuntime(SUITES[suite].tools)
        for call in calls:
            _, error = runtime.run_function(now, call.function, call.args)
            assert error is None, (task.ID, call.function, error)
        assert security_broken(task, task.GROUND_TRUTH_OUTPUT, pre, now, calls), task.ID


def test_written_ground_truths_cover_workspace_6_to_13() -> None:
    assert sorted(i for s, i in WRITTEN if s == "workspace") == sorted(f"injection_task_{n}" for n in range(6, 14))


def test_task_counts_are_pinned() -> None:
    assert sum(len(s.user_tasks) for s in SUITES.values()) == 97
    assert sum(len(s.injection_tasks) for s in SUITES.values()) == 35
    assert sum(len(s.user_tasks) * len(s.injection_tasks) for s in SUITES.values()) == 949


def test_bad_suite_and_version_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown AgentDojo suite"):
        load_suites(["nope"])
    with pytest.raises(ConfigError, match="unsupported AgentDojo benchmark version"):
        load_suites(version="v1")


@pytest.mark.parametrize("suite", ["banking", "slack", "travel"])
def test_fast_environment_equals_agentdojo(suite: str) -> None:
    data = SuiteData(SUITES[suite])
    s = SUITES[suite]
    for user in list(s.user_tasks.values())[::5]:
        for inj in s.injection_tasks.values():
            injections = data.attack_injections(user, inj)
            assert data.environment(injections) == s.load_and_inject_default_environment(injections)
