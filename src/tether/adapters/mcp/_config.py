"""The proxy's settings, the names it reserves, and the failures its parts share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

DENIED = -32010
"""JSON-RPC error code of a server request Tether refused (an implementation-defined code)."""

SAMPLING = "sampling/createMessage"
"""Policy tool name of the model's answers to a server's sampling requests."""
ELICITATION = "elicitation/create"
"""Policy tool name of a server's questions to the human."""
ROOTS = "roots/list"
"""Policy tool name of the client's answers to a server's ``roots/list`` (the roots it sends the server)."""
PSEUDO_TOOLS = (
    SAMPLING,
    ELICITATION,
    ROOTS,
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/get",
    "completion/complete",
)
"""Names a server may not list as tools: the policy uses them for the protocol's data paths
(the server's requests, and the client's requests that carry data to a server)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProxyConfig:
    """How the proxy behaves; the defaults suit an interactive client."""

    call_timeout_s: float = 120.0
    """An upstream tool call that takes longer fails (and the agent is told)."""
    elicit: bool = True
    """Ask the human through MCP elicitation when the client supports it."""
    approval_poll_s: float = 0.25
    """The longest wait between looks for an answer given in the store (``tether approvals``);
    the store wakes the wait as soon as one is appended."""
    ask_timeout_s: float = 50.0
    """Longest wait for a human's answer (the policy's ``approval_timeout_s`` may be shorter).
    Below the 60 s request timeout common MCP clients use, so the client hears the refusal."""
    progress_interval_s: float = 5.0
    """While an ask waits, a progress notification this often (when the client sent a progressToken)."""
    hide_denied: bool = False
    """Leave out of ``tools/list`` the tools the policy denies whatever the arguments."""
    max_message_bytes: int = 8 << 20
    """Longest JSON-RPC message accepted from the client; a longer one gets an error answer."""
    max_server_message_bytes: int = 64 << 20
    """Longest message accepted from a server; a longer answer becomes an error for the client."""
    restart: bool = True
    """Start a server that exited (or never started) again, with backoff, while the proxy runs."""
    restart_backoff_s: float = 1.0
    """Wait before the first restart; doubled after each failed try, up to ``restart_backoff_max_s``."""
    restart_backoff_max_s: float = 60.0
    """Longest wait between restarts."""
    restart_reset_s: float = 60.0
    """A server up this long before it exits is restarted after the shortest wait again."""


class UpstreamFailure(Exception):
    """The server did not answer a forwarded request (crash, hang, refused)."""


def announce(log: TextIO, text: str) -> None:
    """One line on the proxy's log (stderr by default): what a person running the proxy must see."""
    print(f"tether-mcp: {text}", file=log, flush=True)
