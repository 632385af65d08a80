"""Guard any MCP server: ``tether mcp --policy FILE -- <server command>``.

The proxy is an MCP server that starts (or connects to) the real one(s) and
forwards JSON-RPC as it comes, checking every ``tools/call`` with the guard
first, labelling every result, pinning tool definitions, checking the
server's sampling and elicitation requests, and logging every step in the
event store. Several servers can sit behind one proxy (gateway mode) under one
session. The stdio proxy needs no MCP SDK; HTTP (``--http``, ``--url``) needs
the ``mcp`` extra (``pip install tether-guard[mcp]``).
"""

from tether.adapters.mcp._authorize import Authorized, authorize_oauth, forget_oauth
from tether.adapters.mcp._catalog import MAX_TOOL_NAME, gateway_tool_names
from tether.adapters.mcp._clients import CLIENTS, Client, ConfigChange, apply_change, find_client, plan_install, plan_uninstall
from tether.adapters.mcp._config import DENIED, ELICITATION, SAMPLING, ProxyConfig
from tether.adapters.mcp._content import result_text, tool_error
from tether.adapters.mcp._guarding import APPROVAL_SCHEMA
from tether.adapters.mcp._jsonrpc import Malformed, Message, classify, parse, recover_id
from tether.adapters.mcp._links import UpstreamError
from tether.adapters.mcp._lint import LintFinding, LintRule, Neighbours, lint_definition, lint_server
from tether.adapters.mcp._listing import Listing, gateway_findings, list_server
from tether.adapters.mcp._oauth_config import OAuthSettings, oauth_folder
from tether.adapters.mcp._pins import (
    INSTRUCTIONS,
    PIN_SESSION_PREFIX,
    PinBook,
    PinDetector,
    PinFilter,
    PinRecord,
    PinStatus,
    ToolDefinition,
    definition_hash,
    pin_keys,
)
from tether.adapters.mcp._policy_init import starting_policy
from tether.adapters.mcp._serve import ServeOptions, check_loopback, serve, store_path
from tether.adapters.mcp._supervise import read_status
from tether.adapters.mcp._tokens import TokenStore, token_file
from tether.adapters.mcp._toolset import McpToolError, McpToolset
from tether.adapters.mcp._upstream import Upstream, check_gateway, expand_variables, gateway_name, load_gateway, server_option

__all__ = [
    "APPROVAL_SCHEMA",
    "Authorized",
    "CLIENTS",
    "DENIED",
    "ELICITATION",
    "INSTRUCTIONS",
    "MAX_TOOL_NAME",
    "PIN_SESSION_PREFIX",
    "SAMPLING",
    "Client",
    "ConfigChange",
    "LintFinding",
    "LintRule",
    "Listing",
    "Malformed",
    "McpToolError",
    "McpToolset",
    "Message",
    "Neighbours",
    "OAuthSettings",
    "PinBook",
    "PinDetector",
    "PinFilter",
    "PinRecord",
    "PinStatus",
    "ProxyConfig",
    "ServeOptions",
    "TokenStore",
    "ToolDefinition",
    "Upstream",
    "UpstreamError",
    "apply_change",
    "authorize_oauth",
    "check_gateway",
    "check_loopback",
    "classify",
    "definition_hash",
    "expand_variables",
    "find_client",
    "forget_oauth",
    "gateway_findings",
    "gateway_name",
    "gateway_tool_names",
    "lint_definition",
    "lint_server",
    "list_server",
    "load_gateway",
    "oauth_folder",
    "parse",
    "pin_keys",
    "plan_install",
    "plan_uninstall",
    "read_status",
    "recover_id",
    "result_text",
    "serve",
    "server_option",
    "starting_policy",
    "store_path",
    "token_file",
    "tool_error",
]
