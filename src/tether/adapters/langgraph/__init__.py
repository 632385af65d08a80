"""LangGraph under Tether: a tool node whose calls are checked, and whose asks are ``interrupt()``s.

Needs the ``langgraph`` extra (``pip install 'tether-guard[langgraph]'``).
"""

from tether.adapters.langgraph._node import INTERRUPT_KIND, GuardedToolNode

__all__ = ["INTERRUPT_KIND", "GuardedToolNode"]
