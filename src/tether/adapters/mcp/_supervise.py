"""Servers that exit are started again; what each server is doing is written where ``tether mcp status`` reads it.

A gateway must outlive its servers: one that never starts, or exits, takes
only its own tools away. When a server's link ends, the :class:`Supervisor`
lists the tools again (the server's disappear; the client is sent
``notifications/tools/list_changed``), and calls to it are denied with the
reason (the catalog asks :func:`~._catalog.down_reason`). Requests that were
waiting for it were already answered with errors by the peer. It is then
started again after a backoff (1 s, doubling to 60 s by default; back to the
shortest wait once it had stayed up a minute), initialised with the client's
own ``initialize`` params, and its tools come back (another
``list_changed``).

Each proxy run writes its servers' health to a small JSON file, one per run,
in a folder beside the event store (``<db>-mcp-status/``), replaced
atomically on every change and removed when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether.adapters.mcp._catalog import Catalog, ServerConn
from tether.adapters.mcp._config import ProxyConfig, UpstreamFailure
from tether.adapters.mcp._guarding import Guarding
from tether.adapters.mcp._links import Link, ProcessLink
from tether.adapters.mcp._peer import Peer, server_status
from tether.adapters.mcp._upstream import Upstream

StartLink = Callable[[Upstream], Awaitable[Link]]
"""Starts (or connects to) a server again; raises on failure. The link is closed when the proxy stops."""

_LISTS = (("tools", "notifications/tools/list_changed"), ("prompts", "notifications/prompts/list_changed"),
          ("resources", "notifications/resources/list_changed"))  # fmt: skip


class DeadLink:
    """The link of a server that could not be started: it ends at once, and says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """Why the server is not running (``could not start: ...``)."""

    async def recv(self) -> None:
        """Nothing ever comes."""
        return None

    async def send(self, obj: dict[str, Any], *, related: Any = None) -> None:
        """Nothing is sent (the peer refuses to send to a server that is not alive)."""

    async def close(self) -> None:
        """Nothing to close."""


class StatusBoard:
    """The health of one proxy run's servers, as a JSON file others read (``tether mcp status``)."""

    def __init__(self, folder: str | None, servers: Sequence[ServerConn], *, session_id: str) -> None:
        self._servers = list(servers)
        self._path = None if folder is None else Path(folder) / f"{os.getpid()}-{id(self):x}.json"
        self._started = _now()
        self._session_id = session_id

    def write(self) -> None:
        """Replace the file with the servers' state now (a failure to write is not the proxy's failure)."""
        if self._path is None:
            return
        data = {
            "pid": os.getpid(),
            "session": self._session_id,
            "started": self._started,
            "updated": _now(),
            "servers": [
                {
                    "name": s.name or s.label,
                    "state": s.state if s.alive or s.state != "up" else "down",
                    "restarts": s.restarts,
                    "last_error": s.last_error,
                    "up_for_s": round(time.monotonic() - s.up_since, 1) if s.up_since is not None and s.state == "up" else None,
                }
                for s in self._servers
            ],
        }
        with contextlib.suppress(OSError):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self._path)

    def remove(self) -> None:
        """The run ended: its file goes."""
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()


def status_folder(db_path: str) -> str | None:
    """Where the proxies using the store at ``db_path`` write their status (None for an in-memory store)."""
    return None if db_path == ":memory:" else f"{os.path.abspath(db_path)}-mcp-status"


def read_status(db_path: str) -> list[dict[str, Any]]:
    """Every status file of proxies on this store, newest first; ``running`` says whether its process still runs."""
    folder = status_folder(db_path)
    out: list[dict[str, Any]] = []
    if folder is None or not os.path.isdir(folder):
        return out
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data["running"] = _alive(data.get("pid"))
            out.append(data)
    return sorted(out, key=lambda d: str(d.get("updated", "")), reverse=True)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Supervisor:
    """Notices servers going down, tells the client, and starts them again with backoff."""

    def __init__(
        self, peer: Peer, catalog: Catalog, guarding: Guarding, config: ProxyConfig, start: StartLink | None, board: StatusBoard
    ) -> None:
        self._peer = peer
        self._catalog = catalog
        self._guarding = guarding
        self._config = config
        self._start = start
        self._board = board
        self._links: list[Link] = []
        self._why: dict[ServerConn, str] = {}
        peer.on_down = self.down

    def down(self, server: ServerConn, why: str | None = None) -> None:
        """A server's link ended (or it could not be started): note why, take its tools away, start it again later."""
        ended = f"exited{server_status(server)}" if isinstance(server.link, ProcessLink) else "its connection closed"
        why = why or self._why.pop(server, None) or getattr(server.link, "reason", None) or ended
        if server.state == "up" and server.up_since is not None and time.monotonic() - server.up_since >= self._config.restart_reset_s:
            server.failures = 0
        server.failures += 1
        server.last_error = why
        restart = self._config.restart and self._start is not None and server.spec is not None
        server.state = "down" if restart else "stopped"
        server.up_since = None
        self._board.write()
        self._peer.spawn(self._after(server, restart))

    async def _after(self, server: ServerConn, restart: bool) -> None:
        await self._lists_changed(server)
        if not restart:
            return
        delay = min(self._config.restart_backoff_max_s, self._config.restart_backoff_s * 2 ** (server.failures - 1))
        self._guarding.say(f"the MCP server {server.label} is down ({server.last_error}); starting it again in {delay:g} s")
        await asyncio.sleep(delay)
        while self._peer.client_init is None:  # nothing to initialise it with before the client's initialize
            await asyncio.sleep(0.2)
        assert self._start is not None and server.spec is not None
        try:
            link = await self._start(server.spec)
        except Exception as exc:
            self.down(server, f"could not start: {exc}")
            return
        self._links.append(link)
        server.restarts += 1
        self._peer.attach(server, link)
        try:
            answer = await self._peer.call_server(
                server, self._peer.new_id(), "initialize", self._peer.client_init, max(self._config.call_timeout_s, 30.0)
            )
        except UpstreamFailure as exc:
            await self._failed(server, link, f"did not initialise: {exc}")
            return
        if not isinstance(answer.get("result"), dict):
            await self._failed(server, link, f"did not initialise: {answer.get('error')}")
            return
        server.init = answer["result"]
        await link.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        server.state, server.up_since = "up", time.monotonic()
        self._guarding.say(f"the MCP server {server.label} is up again (restart {server.restarts})")
        self._board.write()
        await self._lists_changed(server)

    async def _failed(self, server: ServerConn, link: Link, why: str) -> None:
        """A restarted server that did not initialise: close its link; its reader notes it down (with ``why``)."""
        if server.alive and server.link is link:  # else its link already ended and it was noted down
            self._why[server] = why
        await link.close()

    async def _lists_changed(self, server: ServerConn) -> None:
        """List the tools again (a down server's disappear) and tell an initialised client what changed.

        Before the client's ``initialize`` is answered nothing is listed: the other servers are not
        initialised yet, so a listing then would miss their tools (and count as done)."""
        if not self._peer.client_ready:
            return
        before = set(self._catalog.tools)
        with contextlib.suppress(UpstreamFailure):
            await self._catalog.refresh(self._peer.fetch_all)
        changed = {"tools": before != set(self._catalog.tools)}
        for capability in ("prompts", "resources"):
            changed[capability] = capability in server.capabilities
        for capability, method in _LISTS:
            if changed.get(capability):
                with contextlib.suppress(Exception):
                    await self._peer.notify(method, {}, related=None)

    async def close(self) -> None:
        """Close the links this supervisor started (the first ones belong to whoever started them)."""
        for link in self._links:
            with contextlib.suppress(Exception):
                await link.close()
        self._board.remove()
