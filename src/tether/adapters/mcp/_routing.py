"""Where the proxy sends what it does not answer itself: the routing strategies' common shape, and a lone server's.

A lone server (:class:`DirectRouting`) gets every other request the protocol
defines under the client's id, checked first where it carries data (a
resource URI, a prompt's arguments, a completion's values). A gateway (:class:`~._gateway.GatewayRouting`) answers
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
from tether.adapters.mcp._protocol import CLIENT_REQUESTS, GUARDED_REQUESTS, guarded_args

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
        """A method MCP does not define that the policy names (checked as a call of that name first)."""
        ...

    def refuse_initialize(self, failed: Sequence[InitFailure], ready: Sequence[ServerConn]) -> dict[str, Any] | None:
        """The answer to ``initialize`` when too few servers initialised (None: answer normally)."""
        ...

    def initialize_result(self, ready: Sequence[ServerConn], shown: Mapping[str, str | None], params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``initialize`` result for the client, given each ready server's instructions as they may be shown."""
        ...


class DirectRouting:
    """One server behind the proxy: names are its own and every request the protocol knows is relayed to it."""

    def __init__(self, peer: Peer, guarding: Guarding, server: ServerConn) -> None:
        self._peer = peer
        self._guarding = guarding
        self._server = server

    def handlers(self) -> Mapping[str, Handler]:
        """Every client request the protocol defines, other than those the dispatch table answers: relayed."""
        return dict.fromkeys((m for m in CLIENT_REQUESTS if m not in ("initialize", "tools/list", "tools/call")), self._relay)

    async def _relay(self, msg: Message) -> None:
        """Relay the request (checked first when it carries data; its answer recorded where the model reads it)."""
        if msg.method in GUARDED_REQUESTS:
            refusal = await self._guarding.request(msg.method, guarded_args(msg.method, msg.params), related=msg.id)
            if refusal is not None:
                await self._peer.reply(msg.id, refusal)
                return
        await self._peer.relay(self._server, msg, self._guarding.post_for(msg))

    async def fallback(self, msg: Message) -> None:
        """A method the policy names: checked as a call of that name with its params, then relayed."""
        args = {k: v for k, v in msg.params.items() if k != "_meta"}
        refusal = await self._guarding.request(msg.method, args, related=msg.id)
        if refusal is not None:
            await self._peer.reply(msg.id, refusal)
            return
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
