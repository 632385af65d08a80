"""AgentDojo adapter: suites and exact injected environments for the bench, and ``TetherDefense``."""

from tether.adapters.agentdojo._defense import TetherDefense
from tether.adapters.agentdojo._suites import SUITE_NAMES, SUPPORTED_VERSIONS, SuiteData, load_suites

__all__ = ["SUITE_NAMES", "SUPPORTED_VERSIONS", "SuiteData", "TetherDefense", "load_suites"]
