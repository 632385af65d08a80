"""AgentDojo adapter: suites and exact injected environments for the bench, and ``TetherDefense``."""

from tether.adapters.agentdojo._defense import TetherDefense
from tether.adapters.agentdojo._suites import (
    SUITE_NAMES,
    SUPPORTED_VERSIONS,
    SuiteData,
    UnchangedSharer,
    exact_copy,
    load_suites,
    security_broken,
    utility_ok,
)

__all__ = [
    "SUITE_NAMES",
    "SUPPORTED_VERSIONS",
    "SuiteData",
    "TetherDefense",
    "UnchangedSharer",
    "exact_copy",
    "load_suites",
    "security_broken",
    "utility_ok",
]
