"""One proxy run: one client, its server(s) and one Tether session, wired together.

The parts, from the wire inwards: :class:`~._peer.Peer` (JSON-RPC ids,
correlation, relaying), :class:`~._dispatch.Dispatcher` (a table of handlers
by method), a routing strategy (:class:`~._routing.DirectRouting` for a lone
server, :class:`~._gateway.GatewayRouting` for several),
:class:`~._catalog.Catalog` (what the client is offered and where each name
goes) and :class:`~._guarding.Guarding` (every guarded path through the
session's :class:`~tether.session.Gate`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from tether.adapters.mcp._catalog import Catalog, ServerConn
from tether.adapters.mcp._config import ProxyConfig
from tether.adapters.mcp._dispatch import Dispatcher
from tether.adapters.mcp._gateway import GatewayRouting
from tether.adapters.mcp._guarding import Guarding
from tether.adapters.mcp._links import Link
from tether.adapters.mcp._peer import Peer
from tether.adapters.mcp._routing import DirectRouting, Routing
from tether.adapters.mcp._supervise import StartLink, StatusBoard, Supervisor
from tether.policy import Policy
from tether.session import Session


class Proxy:
    """Serves one client for one Tether session, in front of one server or a gateway of several."""

    def __init__(
        self,
        client: Link,
        servers: Sequence[ServerConn],
        session: Session,
        policy: Policy,
        *,
        config: ProxyConfig,
        db_path: str,
        gateway: bool,
        gateway_info: Mapping[str, Any] | None = None,
        log: TextIO = sys.stderr,
        start_link: StartLink | None = None,
        status_folder: str | None = None,
    ) -> None:
        servers = list(servers)
        self.peer = Peer(client, servers, config=config, default_server=None if gateway else servers[0], log=log)
        """The JSON-RPC plumbing."""
        self.guarding = Guarding(session, self.peer, config=config, db_path=db_path, log=log)
        """The guard of every call, request and text the model reads."""
        self.peer.on_refused = self.guarding.refused
        self.catalog = Catalog(servers, self.guarding, policy, gateway=gateway, hide_denied=config.hide_denied)
        """What the client is offered (the pin detector asks it about each call)."""
        routing: Routing
        if gateway:
            routing = GatewayRouting(self.peer, self.guarding, self.catalog, gateway_info or {})
        else:
            routing = DirectRouting(self.peer, self.guarding, servers[0])
        self._dispatcher = Dispatcher(self.peer, self.guarding, self.catalog, routing)
        self._board = StatusBoard(status_folder, servers, session_id=session.id)
        self.supervisor = Supervisor(self.peer, self.catalog, self.guarding, config, start_link, self._board)
        """Starts servers that exit again (``start_link``: how; None: they stay down)."""

    async def run(self) -> None:
        """Serve until the client goes away; no approval outlives the proxy."""
        self._board.write()
        try:
            await self.peer.run(self._dispatcher)
        finally:
            self.guarding.refuse_pending("the proxy stopped before a human answered")
            self.guarding.refusals.flush()
            await self.supervisor.close()
