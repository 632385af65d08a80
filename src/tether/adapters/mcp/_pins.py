"""Tool-definition pinning: a server's tool definitions, trusted on first use, changes held for a human.

Pins are events, not a side table: each upstream server has a pin session in
the event store (id ``mcp-pins:<key>``) run under a small built-in policy. The
first listing of a server pins every definition (``pin.first``, allowed); any
later new or changed definition is a ``pin.change`` call that asks, so it waits
in the same approval machinery as a tool call and a human's answer is a
hash-chained ``approval_answered`` event. The current pins are a fold over that
session's events, so several proxies and the CLI can share one store.

A definition is everything a client is shown of a tool (every member of the
listed object), or the server's instructions (pinned as ``#instructions``). A
definition a human approved (a changed one, or a first-use pin confirmed by
:meth:`PinBook.review`) is *reviewed*: the proxy records it as trusted text;
first-use pins are not reviewed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tether._decision import ToolCall
from tether.errors import SessionError
from tether.events import ApprovalAnswered, CallProposed, DecisionMade
from tether.monitor import Finding, SessionState
from tether.policy import Policy
from tether.session import Gate, Guard, Session
from tether.store import EventStore

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
"""``pinned``: callable (first use or approved); ``pending``: waits for a human; ``refused``: a human said no."""

INSTRUCTIONS = "#instructions"
"""Pin name of the server's ``instructions`` (text the model reads, pinned like a tool definition)."""


def definition_hash(definition: Mapping[str, Any]) -> str:
    """Hash of everything a client is shown of a tool: name, title, description, schemas, annotations, icons, ``_meta``."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """One tool definition as the server listed it (or the server's instructions, named ``#instructions``)."""

    name: str
    """The tool's name."""
    data: Mapping[str, Any]
    """The whole definition object, as the proxy passes it to clients."""

    @property
    def hash(self) -> str:
        """The definition's pin hash (covers every member)."""
        return definition_hash(self.data)

    @property
    def text(self) -> str:
        """The definition as the model reads it (canonical JSON)."""
        return json.dumps(self.data, sort_keys=True, ensure_ascii=False, default=str)


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
    """The definition as listed."""
    reviewed: bool = False
    """True when a human approved this definition (a first-use pin is not reviewed)."""


@dataclass(slots=True)
class _Fold:
    tool: str
    hash: str
    definition: Any
    verdict: str = "pending"
    answer: bool | None = None


class PinBook:
    """The pins of one upstream server, kept as events in ``store``."""

    def __init__(self, store: EventStore, key: str) -> None:
        self.key = key
        """The server's pin key (names its pin session)."""
        self.session_id = PIN_SESSION_PREFIX + key
        """Id of the pin session."""
        self._guard = Guard(_PIN_POLICY, store)
        self._store = store
        self._seen = 0
        self._folded: dict[str, _Fold] = {}
        self._session: Session | None = None
        if store.read(self.session_id, 0):
            self._session = self._guard.resume_session(self.session_id)

    @property
    def is_new(self) -> bool:
        """True until the server's first listing has been pinned."""
        return self._session is None

    def records(self) -> list[PinRecord]:
        """Every definition seen, oldest first (after folding in other processes' answers).

        Folded from the pin session's events, not from the session's bounded
        in-memory state, so no pin is ever forgotten however many there are.
        """
        if self._session is None:
            return []
        self._session.refresh()
        for item in self._store.read(self.session_id, self._seen):
            self._seen = item.seq
            event = item.event()
            if isinstance(event, CallProposed) and event.tool in ("pin.first", "pin.change"):
                args = event.args if isinstance(event.args, dict) else {}
                definition = args.get("definition", {})
                self._folded[event.call_id] = _Fold(str(args.get("tool", "")), str(args.get("hash", "")), definition)
            elif isinstance(event, DecisionMade) and event.call_id in self._folded:
                self._folded[event.call_id].verdict = event.verdict
            elif isinstance(event, ApprovalAnswered) and event.call_id in self._folded:
                fold = self._folded[event.call_id]
                if fold.answer is None:
                    fold.answer = event.allowed
        out: list[PinRecord] = []
        for call_id, fold in self._folded.items():
            if fold.verdict == "allow" or fold.answer is True:
                status: PinStatus = "pinned"
            elif fold.verdict == "ask" and fold.answer is None:
                status = "pending"
            else:
                status = "refused"
            definition = fold.definition if isinstance(fold.definition, dict) else {}
            out.append(PinRecord(call_id, fold.tool, fold.hash, status, definition, reviewed=fold.answer is True))
        return out

    def pinned(self) -> dict[str, str]:
        """The approved hash of each tool (the latest approval wins)."""
        return {r.tool: r.hash for r in self.records() if r.status == "pinned"}

    def reviewed(self) -> set[tuple[str, str]]:
        """``(tool, hash)`` of every definition a human approved."""
        return {(r.tool, r.hash) for r in self.records() if r.reviewed}

    def review(self, tools: Iterable[ToolDefinition], *, by: str, note: str = "") -> list[PinRecord]:
        """A human approves these definitions as listed: pending ones are answered, first-use pins confirmed.

        Returns the records made or answered (definitions already reviewed are left as they are).
        """
        tools = list(tools)
        self.sync(tools)
        done = self.reviewed()
        pending = {(r.tool, r.hash): r for r in self.records() if r.status == "pending"}
        out: list[PinRecord] = []
        for tool in tools:
            key = (tool.name, tool.hash)
            if key in done:
                continue
            if key not in pending:
                self._propose("pin.change", tool, self.pinned().get(tool.name))
                pending = {(r.tool, r.hash): r for r in self.records() if r.status == "pending"}
            out.append(self.answer(pending[key].call_id, True, by=by, note=note or "reviewed"))
        return out

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
        args = {"tool": tool.name, "hash": tool.hash, "previous_hash": previous, "definition": dict(tool.data)}
        # No approver: a change's ask stays pending until a human answers it (`tether mcp pins approve`).
        Gate(self._session).admit(ToolCall(kind, args))

    def answer(self, call_id: str, approved: bool, *, by: str, note: str = "") -> PinRecord:
        """A human approves or refuses a pending definition (logged as an approval answer)."""
        if self._session is None:
            raise SessionError(f"no pins for server {self.key!r}")
        self._session.answer(call_id, approved, by=by, note=note)
        for rec in reversed(self.records()):
            if rec.call_id == call_id:
                return rec
        raise SessionError(f"no pin {call_id!r} for server {self.key!r}")  # pragma: no cover - answer() raised first


def pin_keys(store: EventStore) -> list[str]:
    """The pin keys of every server with pins in ``store``."""
    return [s.session_id[len(PIN_SESSION_PREFIX) :] for s in store.sessions() if s.session_id.startswith(PIN_SESSION_PREFIX)]


class PinFilter:
    """What a proxy knows of one server's tools: the listed definitions and which of them are pinned.

    It filters both ways: a listing down to the pinned tools, and calls to the
    others into denials. With ``book=None`` pinning is off and every listed tool passes.
    """

    def __init__(self, book: PinBook | None) -> None:
        self.book = book
        """The server's pin book, or None when pinning is off."""
        self._listed: dict[str, str] = {}
        self._visible: set[str] = set()
        self._status: dict[str, PinStatus] = {}

    def update(self, tools: Sequence[ToolDefinition]) -> set[str]:
        """Take a new listing; return the names of the tools a client may see and call."""
        self._listed = {t.name: t.hash for t in tools}
        if self.book is None:
            self._visible = set(self._listed)
        else:
            self._status = self.book.sync(tools)
            self._visible = {name for name, status in self._status.items() if status == "pinned"}
        return set(self._visible)

    def reviewed(self, tools: Sequence[ToolDefinition]) -> set[str]:
        """Names of those of ``tools`` whose definition, exactly as listed, a human approved."""
        if self.book is None:
            return set()
        done = self.book.reviewed()
        return {t.name for t in tools if (t.name, t.hash) in done}

    def finding(self, tool: str) -> Finding | None:
        """Why a call to ``tool`` must be denied on pinning grounds, or None."""
        if tool in self._visible:
            return None
        digest = self._listed.get(tool)
        if digest is None:
            return Finding("deny", f"the MCP server did not list a tool named {tool!r}")
        if self.book is not None and self.book.pinned().get(tool) == digest:
            self._visible.add(tool)  # a human approved it since the last listing
            return None
        return Finding(
            "deny",
            f"the definition of tool {tool!r} is new or changed since the server was pinned ({self._status.get(tool, 'pending')}); "
            "a human must approve it with `tether mcp pins approve`",
        )


class PinDetector:
    """A guard detector that denies calls to tools whose listed definition is not pinned.

    ``lookup`` maps a call to a finding (a gateway routes the tool name to its
    server's :class:`PinFilter` first).
    """

    name = "mcp-pins"

    def __init__(self, lookup: Callable[[ToolCall], Finding | None]) -> None:
        self._lookup = lookup

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        """Deny unless the server listed the tool and its definition is approved."""
        return self._lookup(call)
