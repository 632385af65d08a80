"""PydanticAI under Tether: a wrapper toolset that checks every call.

Needs the ``pydantic-ai`` extra (``pip install 'tether-guard[pydantic-ai]'``).
"""

from tether.adapters.pydantic_ai._toolset import TetherToolset, guarded

__all__ = ["TetherToolset", "guarded"]
