"""Where the proxy sends what it does not answer itself: the routing strategies' common shape, and a lone server's.

A lone server (:class:`DirectRouting`) gets every other request as it came,
under the client's id. A gateway (:class:`~._gateway.GatewayRouting`) answers
lists itself and routes each named prompt, resource or task to its server.
The strategy also says how ``initialize`` is answered, since a gateway merges
what its servers answered and tolerates some of them failing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from tether.adapters.mcp._catalog import ServerConn
from tether.adapters.mcp._guarding import Guarding
from tether.adapters.mcp._jsonrpc import INTERNAL_ERROR, Message
from tether.adapters.mcp._peer import Peer

Handler = Callable[[Message], Coroutine[Any, Any, None]]
"""Answers one client request (run in the request's own task)."""

InitFailure = tuple[ServerConn, Any, object]
"""A server that did not initialise: the server, its answer (or the exception), and why in words."""


class Routing(Protocol):
    """A routing strategy: the requests it handles and how ``initialize`` is answered."""

    def handlers(self) -> Mapping[str, Handler]:
        """The client requests this strategy answers, by method (each runs in its own task)."""
        ...

    async def fallback(self, msg: Message) -> None:
        """Any other client request after ``initialize`` (answered or routed at once)."""
        ...

    def refuse_initialize(self, failed: Sequence[InitFailure], ready: Sequence[ServerConn]) -> dict[str, Any] | None:
        """The answer to ``initialize`` when too few servers initialised (None: answer normally)."""
        ...

    def initialize_result(self, ready: Sequence[ServerConn], shown: Mapping[str, str | None], params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``initialize`` result for the client, given each ready server's instructions as they may be shown."""
        ...


class DirectRouting:
    """One server behind the proxy: names are its own and every other request is relayed to it."""

    def __init__(self, peer: Peer, guarding: Guarding, server: ServerConn) -> None:
        self._peer = peer
        self._guarding = guarding
        self._server = server

    def handlers(self) -> Mapping[str, Handler]:
        """None: the server answers everything the dispatch table does not."""
        return {}

    async def fallback(self, msg: Message) -> None:
        """Relay the request (its answer is recorded first where the model reads it)."""
        await self._peer.relay(self._server, msg, self._guarding.post_for(msg))

    def refuse_initialize(self, failed: Sequence[InitFailure], ready: Sequence[ServerConn]) -> dict[str, Any] | None:
        """The server's own error (or why it did not initialise) when it failed."""
        if not failed:
            return None
        server, answer, why = failed[0]
        if isinstance(answer, dict) and "error" in answer:
            return answer
        return {"error": {"code": INTERNAL_ERROR, "message": f"Tether: the MCP server {server.label} did not initialise: {why}"}}

    def initialize_result(self, ready: Sequence[ServerConn], shown: Mapping[str, str | None], params: Mapping[str, Any]) -> dict[str, Any]:
        """The server's own result, without instructions the pins withhold."""
        result = dict(ready[0].init or {})
        if shown[ready[0].name] is None:
            result.pop("instructions", None)
        return result
