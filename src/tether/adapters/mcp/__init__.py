"""Guard any MCP server: ``tether mcp --policy FILE -- <server command>``.

The proxy is an MCP server that starts (or connects to) the real one and
forwards the protocol, checking every ``tools/call`` with the guard first,
labelling every result, pinning tool definitions, and logging every step in
the event store. Needs the ``mcp`` extra (``pip install tether-guard[mcp]``).
"""

from tether.adapters.mcp._pins import (
    PIN_SESSION_PREFIX,
    PinBook,
    PinDetector,
    PinGate,
    PinRecord,
    PinStatus,
    ToolDefinition,
    definition_hash,
    pin_keys,
)
from tether.adapters.mcp._policy_init import starting_policy
from tether.adapters.mcp._proxy import APPROVAL_SCHEMA, GuardedProxy, ProxyConfig, result_text, tool_error
from tether.adapters.mcp._serve import ServeOptions, check_loopback, serve
from tether.adapters.mcp._upstream import Upstream, connect, list_all_tools

__all__ = [
    "APPROVAL_SCHEMA",
    "PIN_SESSION_PREFIX",
    "GuardedProxy",
    "PinBook",
    "PinDetector",
    "PinGate",
    "PinRecord",
    "PinStatus",
    "ProxyConfig",
    "ServeOptions",
    "ToolDefinition",
    "Upstream",
    "check_loopback",
    "connect",
    "definition_hash",
    "list_all_tools",
    "pin_keys",
    "result_text",
    "serve",
    "starting_policy",
    "tool_error",
]
