"""Serve MCP on stdin/stdout with asyncio pipes (no thread hop per message), with a message size limit.

The SDK's ``stdio_server`` reads and writes through worker threads, three hops
per tool call; on a pipe the event loop can do it directly. A line longer than
``max_message_bytes`` is dropped (reported to the server loop as a parse error)
instead of being buffered. Falls back to the SDK transport when stdin or stdout
is not a pipe.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
from mcp.shared.message import SessionMessage

MAX_MESSAGE_BYTES = 8 << 20
"""Default limit on one JSON-RPC message from the client."""


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@asynccontextmanager
async def pipe_stdio(
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> AsyncIterator[tuple[anyio.abc.ObjectReceiveStream[SessionMessage | Exception], anyio.abc.ObjectSendStream[SessionMessage]]]:
    """Read and write streams for ``Server.run`` over this process's stdin and stdout."""
    if not (_is_pipe(0) and _is_pipe(1)):
        from mcp.server.stdio import stdio_server

        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=max_message_bytes)
    read_fd, write_fd = os.dup(0), os.dup(1)
    # Stray output of this process must not corrupt the wire: fd 1 now goes to stderr, fd 0 reads nothing.
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    read_pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
    write_pipe, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(write_pipe, protocol, None, loop)
    to_server, from_client = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    to_client, from_server = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_loop() -> None:
        async with to_server:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    print(f"tether-mcp: dropped a message over {max_message_bytes} bytes", file=sys.stderr, flush=True)
                    await to_server.send(ValueError(f"message over {max_message_bytes} bytes"))
                    continue
                if not line:
                    return
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:  # the server loop answers parse errors
                    await to_server.send(exc)
                    continue
                await to_server.send(SessionMessage(message))

    async def write_loop() -> None:
        async with from_server:
            async for item in from_server:
                writer.write(item.message.model_dump_json(by_alias=True, exclude_unset=True).encode("utf-8") + b"\n")
                await writer.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_loop)
            tg.start_soon(write_loop)
            yield from_client, to_client
            tg.cancel_scope.cancel()
    finally:
        read_pipe.close()
        write_pipe.close()
