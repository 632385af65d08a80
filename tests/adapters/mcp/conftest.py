"""Fixtures for the MCP proxy tests (helpers live in ``mcp_helpers.py``)."""

from mcp_helpers import errlog, fs_server_bin

__all__ = ["errlog", "fs_server_bin"]
