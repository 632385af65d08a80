"""Several toolsets offered as one: Python functions next to MCP servers (``tether run --tools ... --mcp ...``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.agent._tools import Toolset, ToolSpec
from tether.errors import ConfigError


class ToolsetGroup:
    """Offers the tools of several toolsets; a call goes to the toolset that offers its name.

    Two toolsets offering the same name is a configuration error (raised when the specs are read),
    never a silent choice of one."""

    def __init__(self, toolsets: Sequence[Toolset]) -> None:
        self.toolsets = tuple(toolsets)
        """The members, in order."""

    def specs(self) -> Sequence[ToolSpec]:
        """Every member's tools, in order; raises :class:`ConfigError` on a name offered twice."""
        out: list[ToolSpec] = []
        seen: set[str] = set()
        for toolset in self.toolsets:
            for spec in toolset.specs():
                if spec.name in seen:
                    raise ConfigError(f"two toolsets offer a tool named {spec.name!r}")
                seen.add(spec.name)
                out.append(spec)
        return out

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        """Run ``name`` on the toolset that offers it."""
        for toolset in self.toolsets:
            if any(spec.name == name for spec in toolset.specs()):
                return await toolset.call(name, args)
        raise LookupError(f"no tool named {name!r}")
