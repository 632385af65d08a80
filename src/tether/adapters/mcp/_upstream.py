"""Connections to the real (upstream) MCP server: a subprocess on stdio, or a streamable HTTP URL."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tether import __version__
from tether.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the real server is: a command to start (stdio) or a streamable HTTP URL. Exactly one."""

    command: Sequence[str] = ()
    """Program and arguments of a stdio server."""
    url: str | None = None
    """Endpoint of a streamable HTTP server."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for a stdio server."""

    def __post_init__(self) -> None:
        if bool(self.command) == (self.url is not None):
            raise ConfigError("give the upstream MCP server as a command or as a URL (exactly one)")

    def describe(self) -> str:
        """The command line or URL, for logs and task texts."""
        return self.url if self.url is not None else " ".join(self.command)

    def pin_key(self) -> str:
        """A stable key naming this server's pins: readable stem plus a hash of the full command or URL."""
        text = self.describe()
        stem = self.url if self.url is not None else " ".join(part.rsplit("/", 1)[-1] for part in self.command[:2])
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-")[:48] or "server"
        return f"{slug}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


CLIENT_INFO = types.Implementation(name="tether-mcp", version=__version__)


@asynccontextmanager
async def connect(upstream: Upstream, *, errlog: TextIO = sys.stderr) -> AsyncIterator[ClientSession]:
    """An initialised client session with the upstream server, closed (and the process ended) on exit."""
    if upstream.url is not None:
        async with streamable_http_client(upstream.url) as (read, write), ClientSession(read, write, client_info=CLIENT_INFO) as session:
            await session.initialize()
            yield session
        return
    params = StdioServerParameters(command=upstream.command[0], args=list(upstream.command[1:]), env=upstream.env or None)
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write, client_info=CLIENT_INFO) as session:
        await session.initialize()
        yield session


async def list_all_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool the server lists, following pagination."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(1000):
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
