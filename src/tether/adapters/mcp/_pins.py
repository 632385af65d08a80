"""Tool-definition pinning: a server's tool definitions, trusted on first use, changes held for a human.

Pins are events, not a side table: each upstream server has a pin session in
the event store (id ``mcp-pins:<key>``) run under a small built-in policy. The
first listing of a server pins every definition (``pin.first``, allowed); any
later new or changed definition is a ``pin.change`` call that asks, so it waits
in the same approval machinery as a tool call and a human's answer is a
hash-chained ``approval_answered`` event. The current pins are a fold over that
session, so several proxies and the CLI can share one store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tether._decision import ToolCall
from tether.errors import SessionError
from tether.policy._compiled import Policy
from tether.session import Finding, Guard, Session
from tether.session._state import SessionState
from tether.store._chain import EventStore

PIN_SESSION_PREFIX = "mcp-pins:"
"""Pin sessions' ids start with this; the rest is the server's pin key."""

_PIN_POLICY = Policy.from_yaml(
    """
tether: 1
name: mcp-pins
description: Tool-definition pins of one MCP server. A new or changed definition needs a human.
approval_timeout_s: 3153600000
tools:
  pin.first:
    description: The server's first listing, trusted on first use.
    effect: read
    additional_args: allow
  pin.change:
    description: A tool definition that differs from its pin, or a tool the server did not list at first.
    effect: write
    additional_args: allow
    ask:
      - name: definition-changed
        when: {always: true}
        reason: the tool definition is new or changed since the server was pinned
""",
    source="<mcp-pins>",
)

PinStatus = Literal["pinned", "pending", "refused"]
"""``pinned``: approved; ``pending``: waits for a human; ``refused``: a human said no."""


def definition_hash(name: str, description: str | None, input_schema: Mapping[str, Any] | None) -> str:
    """Hash of what a client is shown of a tool: its name, description and input schema."""
    canonical = json.dumps(
        {"name": name, "description": description or "", "inputSchema": input_schema or {}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """The parts of an MCP tool definition that are pinned."""

    name: str
    """The tool's name."""
    description: str | None
    """Its description (text the model reads, so an injection vector)."""
    input_schema: Mapping[str, Any]
    """Its JSON Schema for arguments."""

    @property
    def hash(self) -> str:
        """The definition's pin hash."""
        return definition_hash(self.name, self.description, self.input_schema)


@dataclass(frozen=True, slots=True)
class PinRecord:
    """One definition the pin book has seen and what a human (or first use) made of it."""

    call_id: str
    """Id of the pin call in the pin session (what ``tether mcp pins approve`` takes)."""
    tool: str
    """The tool's name."""
    hash: str
    """The definition's hash."""
    status: PinStatus
    """Whether it is pinned, waits for a human, or was refused."""
    definition: Mapping[str, Any] = field(default_factory=dict)
    """The definition as listed (name, description, inputSchema)."""


class PinBook:
    """The pins of one upstream server, kept as events in ``store``."""

    def __init__(self, store: EventStore, key: str) -> None:
        self.key = key
        """The server's pin key (names its pin session)."""
        self.session_id = PIN_SESSION_PREFIX + key
        """Id of the pin session."""
        self._guard = Guard(_PIN_POLICY, store)
        self._session: Session | None = None
        if store.read(self.session_id, 0):
            self._session = self._guard.resume_session(self.session_id)

    @property
    def is_new(self) -> bool:
        """True until the server's first listing has been pinned."""
        return self._session is None

    def records(self) -> list[PinRecord]:
        """Every definition seen, oldest first (after folding in other processes' answers)."""
        if self._session is None:
            return []
        self._session.refresh()
        out: list[PinRecord] = []
        for rec in self._session.state.calls.values():
            args = rec.args if isinstance(rec.args, dict) else {}
            approval = self._session.state.approvals.status(rec.call_id, self._guard.clock())
            if rec.verdict == "allow" or approval == "approved":
                status: PinStatus = "pinned"
            elif approval == "pending":
                status = "pending"
            else:
                status = "refused"
            out.append(PinRecord(rec.call_id, str(args.get("tool", "")), str(args.get("hash", "")), status, args.get("definition", {})))
        return out

    def pinned(self) -> dict[str, str]:
        """The approved hash of each tool (the latest approval wins)."""
        return {r.tool: r.hash for r in self.records() if r.status == "pinned"}

    def sync(self, tools: Iterable[ToolDefinition]) -> dict[str, PinStatus]:
        """Compare a listing with the pins; pin everything on first use, hold new or changed definitions.

        Returns each listed tool's status for the definition listed now.
        """
        tools = list(tools)
        if self._session is None:
            self._session = self._guard.start_session(
                f"tool-definition pins of MCP server {self.key}", principal="tether-mcp", session_id=self.session_id
            )
            for tool in tools:
                self._propose("pin.first", tool, None)
        seen = {(r.tool, r.hash): r.status for r in self.records()}
        pinned = self.pinned()
        out: dict[str, PinStatus] = {}
        for tool in tools:
            digest = tool.hash
            status = "pinned" if pinned.get(tool.name) == digest else seen.get((tool.name, digest))
            if status is None or (status == "pinned" and pinned.get(tool.name) != digest):
                # Unseen, or an older approved definition coming back after a newer one: ask again.
                self._propose("pin.change", tool, pinned.get(tool.name))
                status = "pending"
            out[tool.name] = status
        return out

    def _propose(self, kind: str, tool: ToolDefinition, previous: str | None) -> None:
        assert self._session is not None
        definition = {"name": tool.name, "description": tool.description or "", "inputSchema": dict(tool.input_schema)}
        args = {"tool": tool.name, "hash": tool.hash, "previous_hash": previous, "definition": definition}
        self._session.check(kind, args)

    def answer(self, call_id: str, approved: bool, *, by: str, note: str = "") -> PinRecord:
        """A human approves or refuses a pending definition (logged as an approval answer)."""
        if self._session is None:
            raise SessionError(f"no pins for server {self.key!r}")
        self._session.answer(call_id, approved, by=by, note=note)
        for rec in self.records():
            if rec.call_id == call_id:
                return rec
        raise SessionError(f"no pin {call_id!r} for server {self.key!r}")  # pragma: no cover - answer() raised first


def pin_keys(store: EventStore) -> list[str]:
    """The pin keys of every server with pins in ``store``."""
    return [s.session_id[len(PIN_SESSION_PREFIX) :] for s in store.sessions() if s.session_id.startswith(PIN_SESSION_PREFIX)]


class PinGate:
    """What a proxy knows of its server's tools: the listed definitions and which of them are pinned.

    Its :attr:`detector` goes into the proxy's guard, so a call to a tool whose
    listed definition is not approved is denied there, with the reason logged.
    With ``pins=None`` pinning is off and every listed tool passes.
    """

    def __init__(self, pins: PinBook | None) -> None:
        self.pins = pins
        """The server's pin book, or None when pinning is off."""
        self.detector = PinDetector(self)
        """The detector to give the proxy's :class:`~tether.Guard`."""
        self._listed: dict[str, str] = {}
        self._visible: set[str] = set()
        self._status: dict[str, PinStatus] = {}

    def update(self, tools: Sequence[ToolDefinition]) -> set[str]:
        """Take a new listing; return the names of the tools a client may see and call."""
        self._listed = {t.name: t.hash for t in tools}
        if self.pins is None:
            self._visible = set(self._listed)
        else:
            self._status = self.pins.sync(tools)
            self._visible = {name for name, status in self._status.items() if status == "pinned"}
        return set(self._visible)

    def finding(self, tool: str) -> Finding | None:
        """Why a call to ``tool`` must be denied on pinning grounds, or None."""
        if tool in self._visible:
            return None
        digest = self._listed.get(tool)
        if digest is None:
            return Finding("deny", f"the MCP server did not list a tool named {tool!r}")
        if self.pins is not None and self.pins.pinned().get(tool) == digest:
            self._visible.add(tool)  # a human approved it since the last listing
            return None
        return Finding(
            "deny",
            f"the definition of tool {tool!r} is new or changed since the server was pinned ({self._status.get(tool, 'pending')}); "
            "a human must approve it with `tether mcp pins approve`",
        )


class PinDetector:
    """A guard detector that denies calls to tools whose listed definition is not pinned."""

    name = "mcp-pins"

    def __init__(self, gate: PinGate) -> None:
        self._gate = gate

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        """Deny unless the server listed the tool and its definition is approved."""
        return self._gate.finding(str(call.tool))
