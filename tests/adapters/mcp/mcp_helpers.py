"""Helpers for the MCP proxy tests: real servers (installed here if missing) and a real client.

The Python servers (``mcp-server-git``, ``mcp-server-time``) are installed into
the running interpreter with pip when absent; the npm packages (the filesystem
and "everything" reference servers, the TypeScript SDK, the MCP Inspector's
CLI) go into a cache directory (``$TETHER_TEST_CACHE`` or
``~/.cache/tether-tests``), installed together on first use (a few seconds).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2] / "src"
POLICIES = HERE / "policies"
TOY = HERE / "servers" / "toy_server.py"
TETHER = [sys.executable, "-c", "from tether.cli import main; main()"]
FS_PACKAGE = "@modelcontextprotocol/server-filesystem@2026.8.31"
NPM_PACKAGES = (
    FS_PACKAGE,
    "@modelcontextprotocol/server-everything@2026.8.31",
    "@modelcontextprotocol/sdk@1.32.2",
    "@modelcontextprotocol/inspector-cli@1.0.3",
)
PY_SERVERS = ("mcp-server-git==2026.10.19", "mcp-server-time==2026.10.19")


def env() -> dict[str, str]:
    """Environment for subprocesses: this checkout's ``src`` first on the path."""
    return {"PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment, installed with pip if missing."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *PY_SERVERS], check=True)
    return str(path)


def npm_cache() -> Path:
    """The npm test packages' folder (``node_modules`` inside), installed on first use."""
    cache = Path(os.environ.get("TETHER_TEST_CACHE", Path.home() / ".cache" / "tether-tests")) / "npm"
    marker = cache / ".installed"
    if not marker.exists() or marker.read_text() != "\n".join(NPM_PACKAGES):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install the MCP test servers and clients (Node.js >= 18)")
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), *NPM_PACKAGES], check=True, capture_output=True)
        marker.write_text("\n".join(NPM_PACKAGES))
    return cache


@pytest.fixture(scope="session")
def fs_server_bin() -> str:
    """The npm filesystem server's launcher."""
    return str(npm_cache() / "node_modules" / ".bin" / "mcp-server-filesystem")


@pytest.fixture(scope="session")
def everything_cmd() -> list[str]:
    """The command that starts ``@modelcontextprotocol/server-everything`` on stdio."""
    return [str(npm_cache() / "node_modules" / ".bin" / "mcp-server-everything"), "stdio"]


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    """A file for the proxy's stderr (the test runner's captured stderr has no file descriptor)."""
    with open(tmp_path / "proxy.log", "w+", encoding="utf-8") as fh:
        yield fh


def tether_args(*args: str) -> StdioServerParameters:
    """``tether <args>`` as a stdio server to connect to."""
    return StdioServerParameters(command=TETHER[0], args=[*TETHER[1:], *args], env=env())


def proxy_params(args: list[str]) -> StdioServerParameters:
    """``tether mcp <args>`` as a stdio server to connect to."""
    return tether_args("mcp", *args)


@asynccontextmanager
async def proxy_session(
    args: list[str], errlog: TextIO, *, elicitation: Callable[..., Any] | None = None, extra_env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """A real MCP client session with ``tether mcp <args>``."""
    params = tether_args("mcp", *args)
    if extra_env:
        params = params.model_copy(update={"env": {**(params.env or {}), **extra_env}})
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write, elicitation_callback=elicitation) as session,
    ):
        await session.initialize()
        yield session


class RawClient:
    """A ``tether mcp`` process spoken to line by line, as a client that sends whatever it likes."""

    def __init__(
        self, args: list[str], *, extra_env: dict[str, str] | None = None, stderr: Any = subprocess.DEVNULL, cwd: Path | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [*TETHER, "mcp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **env(), **(extra_env or {})},
            cwd=cwd,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        for line in self.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def send(self, message: Any) -> None:
        """Write one line: bytes as given, a str encoded, anything else as JSON."""
        data = message if isinstance(message, bytes) else message.encode() if isinstance(message, str) else json.dumps(message).encode()
        self.stdin.write(data + b"\n")
        self.stdin.flush()

    def read(self, timeout: float = 20.0) -> dict[str, Any]:
        """The next message the proxy writes (fails after ``timeout`` seconds)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer within {timeout} s") from None
        assert line, "the proxy closed its output"
        return dict(json.loads(line))

    def answer(self, want: Any, timeout: float = 20.0) -> dict[str, Any]:
        """The response with id ``want`` (skipping notifications and other answers)."""
        while True:
            msg = self.read(timeout)
            if "method" not in msg and msg.get("id") == want:
                return msg

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        """The handshake; returns the initialize result."""
        params = {"protocolVersion": "2025-11-25", "capabilities": capabilities or {}, "clientInfo": {"name": "raw", "version": "0"}}
        self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        result = self.answer("init")["result"]
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return dict(result)

    def close(self) -> int:
        """Close stdin and wait for the proxy to exit; its exit status."""
        self.stdin.close()
        code = self.proc.wait(timeout=30)
        self._pump_thread.join(timeout=10)
        self.stdout.close()
        return code


def run_tether(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``tether`` CLI in a subprocess."""
    return subprocess.run([*TETHER, *args], env={**os.environ, **env()}, capture_output=True, text=True, input=input_text, timeout=120)


class MemoryLink:
    """One end of an in-process link."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def recv(self) -> Any:
        return await self.inbox.get()

    async def send(self, obj: dict[str, Any], *, related: Any = None) -> None:
        json.dumps(obj)  # everything the proxy writes must be JSON
        await self.outbox.put(obj)

    async def close(self) -> None:
        return None


class FakeServer:
    """An MCP server in process: answers initialize and lists (``answers`` overrides any method's result);
    echoes the method (and id) of any other request; keeps everything it received."""

    def __init__(self, name: str, answers: dict[str, Any] | None = None, caps: dict[str, Any] | None = None) -> None:
        self.link = MemoryLink()
        self.name = name
        self.answers = dict(answers or {})
        self.caps = caps or {"tools": {}, "prompts": {}, "resources": {}, "completions": {}, "logging": {}}
        self.received: list[dict[str, Any]] = []

    async def serve(self) -> None:
        while True:
            msg = await self.link.outbox.get()
            self.received.append(msg)
            rid, method = msg.get("id"), msg.get("method")
            if rid is None or method is None:
                continue
            if method in self.answers:
                result: Any = self.answers[method]
            elif method == "initialize":
                result = {"protocolVersion": "2025-11-25", "capabilities": self.caps, "serverInfo": {"name": self.name, "version": "1"}}
            elif method == "tools/list":
                result = {"tools": []}
            elif method == "prompts/list":
                result = {"prompts": [{"name": "p"}]}
            else:
                result = {"echoed": method, "id": rid}
            await self.link.inbox.put(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())

    def got(self, method: str) -> list[dict[str, Any]]:
        """The messages of ``method`` this server received."""
        return [m for m in self.received if m.get("method") == method]


class FakeClient:
    """The client's end of an in-process proxy: send a message, read until the answer to an id (or a request) arrives."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link

    async def send(self, msg: dict[str, Any]) -> None:
        await self.link.inbox.put(json.dumps({"jsonrpc": "2.0", **msg}).encode())

    async def answer(self, id_: Any) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                msg = await self.link.outbox.get()
                if "method" not in msg and msg.get("id") == id_:
                    return msg

    async def request(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                msg = await self.link.outbox.get()
                if "method" in msg and "id" in msg:
                    return msg


DISPATCH_POLICY = "tether: 1\nname: dispatch\ntools: {}\n"
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}


@asynccontextmanager
async def running(
    names: list[str] | list[FakeServer],
    *,
    gateway: bool,
    initialize: bool = True,
    policy: str = DISPATCH_POLICY,
    task: str = "dispatch",
    store: Any = None,
    capabilities: dict[str, Any] | None = None,
    pins: bool = False,
    hosted: Any = None,
) -> AsyncIterator[tuple[FakeClient, list[FakeServer]]]:
    """A proxy in process (wired as ``tether mcp`` wires it: its session, pins and scope detectors) in front of fake servers."""
    from tether import SQLiteStore
    from tether.adapters.mcp import ProxyConfig, ServeOptions
    from tether.adapters.mcp._catalog import ServerConn
    from tether.adapters.mcp._pins import PinBook, PinFilter
    from tether.adapters.mcp._serve import Hosted
    from tether.policy import Policy

    client_link = MemoryLink()
    store = store or SQLiteStore(":memory:")
    servers = [n if isinstance(n, FakeServer) else FakeServer(n) for n in names]
    conns = [ServerConn(s.name if gateway else "", s.name, s.link, PinFilter(PinBook(store, s.name) if pins else None)) for s in servers]
    if hosted is None:
        hosted = Hosted.open(Policy.from_yaml(policy), store, [], ServeOptions(task=task), gateway, io.StringIO())
    proxy_task = asyncio.create_task(hosted.run(client_link, conns, ProxyConfig(call_timeout_s=2, ask_timeout_s=0.5), gateway))
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    client = FakeClient(client_link)
    try:
        if initialize:
            await client.send({"id": "init", "method": "initialize", "params": {**INIT, "capabilities": capabilities or {}}})
            assert "result" in await client.answer("init")
            await client.send({"method": "notifications/initialized"})
        yield client, servers
    finally:
        await client_link.inbox.put(None)
        await asyncio.wait_for(proxy_task, 5)
        for task_ in tasks:
            task_.cancel()
