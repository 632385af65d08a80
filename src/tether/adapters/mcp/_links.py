"""Byte links between the proxy and its peers: this process's stdio, a server subprocess, or SDK streams.

A link yields frames (a line of bytes, an already-parsed message, an
:class:`~._jsonrpc.Oversized` line, or None at the end) and sends JSON-RPC
objects. Lines are read with a size limit: a longer line is skipped up to its
newline, keeping only its edges (so its id can still be answered), instead of
being buffered whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TextIO

from tether.adapters.mcp._jsonrpc import EDGE_BYTES, Id, Oversized, dumps
from tether.errors import RuntimeFailure

Frame = bytes | dict[str, Any] | Oversized | None
"""What a link yields: a line, a parsed message (SDK links), an over-long line, or None when it closed."""

CHUNK = 1 << 16


class UpstreamError(RuntimeFailure):
    """An upstream MCP server could not be started or reached."""


class Link(Protocol):
    """A JSON-RPC connection to one peer."""

    async def recv(self) -> Frame:
        """The next frame (None once the peer has gone)."""
        ...

    async def send(self, obj: dict[str, Any], *, related: Id | None = None) -> None:
        """Send one message; ``related`` names the client request it belongs to (HTTP routes on it)."""
        ...

    async def close(self) -> None:
        """Stop the link (and its process)."""
        ...


class LineReader:
    """Newline-delimited frames from a chunk source, with a per-line size limit."""

    def __init__(self, read_chunk: Callable[[], Awaitable[bytes]], limit: int) -> None:
        self._read = read_chunk
        self._limit = limit
        self._buf = bytearray()
        self._scan = 0
        self._eof = False

    async def next(self) -> bytes | Oversized | None:
        """The next line without its newline, an :class:`Oversized` marker, or None at the end."""
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl != -1:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scan = 0
                return line
            if len(self._buf) > self._limit:
                return await self._skip()
            if self._eof:
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                return None
            self._scan = len(self._buf)
            chunk = await self._read()
            if not chunk:
                self._eof = True
            self._buf += chunk

    async def _skip(self) -> Oversized:
        """Drop the rest of an over-long line, keeping its first and last bytes."""
        head = bytes(self._buf[:EDGE_BYTES])
        size = len(self._buf)
        tail = bytes(self._buf[-EDGE_BYTES:])
        self._buf.clear()
        while True:
            chunk = await self._read()
            if not chunk:
                self._eof = True
                return Oversized(size, head, tail)
            nl = chunk.find(b"\n")
            if nl == -1:
                size += len(chunk)
                tail = (tail + chunk)[-EDGE_BYTES:]
                continue
            size += nl
            tail = (tail + chunk[:nl])[-EDGE_BYTES:]
            self._buf += chunk[nl + 1 :]
            self._scan = 0
            return Oversized(size, head, tail)


class _Writer:
    """Writes lines to an asyncio write transport, or to a plain file descriptor."""

    def __init__(self, writer: asyncio.StreamWriter | None, fd: int | None) -> None:
        self._writer = writer
        self._fd = fd
        self._closed = False

    async def write(self, data: bytes) -> None:
        if self._closed:
            return
        if self._writer is not None:
            if self._writer.is_closing():
                self._closed = True
                return
            self._writer.write(data)
            transport = self._writer.transport
            if transport.get_write_buffer_size() > CHUNK:
                try:
                    await self._writer.drain()
                except (ConnectionError, BrokenPipeError):
                    self._closed = True
            return
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._closed = True

    def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class StdioLink:
    """This process's stdin and stdout, taken over for JSON-RPC.

    Stray output of the process must not corrupt the wire: once open, fd 1
    goes to stderr and fd 0 reads nothing. Pipes are read on the event loop
    directly; anything else (a file, a terminal) through a thread.
    """

    def __init__(self, reader: LineReader, writer: _Writer) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, limit: int) -> StdioLink:
        """Take over stdin and stdout."""
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.dup(0), os.dup(1)
        pipes = _is_pipe(read_fd) and _is_pipe(write_fd)
        os.dup2(2, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if not pipes:

            async def read_blocking() -> bytes:
                return await loop.run_in_executor(None, os.read, read_fd, CHUNK)

            return cls(LineReader(read_blocking, limit), _Writer(None, write_fd))
        stream = asyncio.StreamReader(limit=CHUNK)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0))
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0))
        writer = asyncio.StreamWriter(transport, protocol, None, loop)

        async def read_pipe() -> bytes:
            return await stream.read(CHUNK)

        return cls(LineReader(read_pipe, limit), _Writer(writer, None))

    async def recv(self) -> Frame:
        """The next line from stdin."""
        return await self._reader.next()

    async def send(self, obj: dict[str, Any], *, related: Id | None = None) -> None:
        """Write one message to stdout."""
        await self._writer.write(dumps(obj))

    async def close(self) -> None:
        """Stop writing."""
        self._writer.close()


class ProcessLink:
    """A stdio MCP server: a child process in its own process group, spoken to over its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, reader: LineReader, writer: _Writer, describe: str) -> None:
        self.proc = proc
        """The server process."""
        self.describe = describe
        """Its command line, for messages."""
        self._reader = reader
        self._writer = writer

    @classmethod
    async def start(cls, command: Sequence[str], env: Mapping[str, str] | None, *, limit: int, errlog: TextIO = sys.stderr) -> ProcessLink:
        """Start ``command``; a command that cannot be started raises :class:`UpstreamError` with one line."""
        describe = " ".join(command)
        try:
            errfd: int | None = errlog.fileno()
        except (AttributeError, OSError, ValueError):
            errfd = None
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errfd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                limit=CHUNK,
            )
        except OSError as exc:
            raise UpstreamError(f"could not start the MCP server `{describe}`: {exc.strerror or exc}") from None
        assert proc.stdout is not None and proc.stdin is not None
        stdout = proc.stdout

        async def read_chunk() -> bytes:
            return await stdout.read(CHUNK)

        return cls(proc, LineReader(read_chunk, limit), _Writer(proc.stdin, None), describe)

    async def recv(self) -> Frame:
        """The next line the server wrote."""
        return await self._reader.next()

    async def send(self, obj: dict[str, Any], *, related: Id | None = None) -> None:
        """Write one message to the server's stdin."""
        await self._writer.write(dumps(obj))

    async def close(self) -> None:
        """Close its stdin, then end the process group: politely, then firmly."""
        self._writer.close()
        proc = self.proc
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if proc.returncode is not None:
                break
            if sig is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
        if proc.returncode is None:  # pragma: no cover - SIGKILL always ends it
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children it left behind (npx starts node)
