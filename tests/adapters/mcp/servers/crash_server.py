"""A real MCP server that dies: it answers ``count`` calls and exits (status 3) in the middle of the Nth.

``--exit-after N`` (default 2). ``CRASH_LOG`` names a file that gets a line
per start, so tests see restarts.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

EXIT_AFTER = int(sys.argv[sys.argv.index("--exit-after") + 1]) if "--exit-after" in sys.argv else 2
calls = 0


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    schema = {"type": "object", "properties": {}}
    return types.ListToolsResult(tools=[types.Tool(name="count", description="Counts the calls it got.", input_schema=schema)])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    global calls
    calls += 1
    if calls >= EXIT_AFTER:
        os._exit(3)  # mid-call: the proxy never gets an answer
    return types.CallToolResult(content=[types.TextContent(type="text", text=str(calls))])


server = Server("crasher", version="1", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    path = os.environ.get("CRASH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"start {os.getpid()}\n")
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
