"""The OpenAI Agents SDK under Tether: guarded function tools; asks as the SDK's interruptions.

Needs the ``openai-agents`` extra (``pip install 'tether-guard[openai-agents]'``).
"""

from tether.adapters.openai_agents._tools import AgentsGuard

__all__ = ["AgentsGuard"]
