"""Fixtures for the MCP proxy tests (helpers live in ``mcp_helpers.py``)."""

from mcp_helpers import errlog, everything_cmd, fs_server_bin

__all__ = ["errlog", "everything_cmd", "fs_server_bin"]
