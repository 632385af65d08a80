"""JSON-RPC 2.0 messages as the proxy sees them: parsed once with orjson, checked for shape, never re-typed.

Every line a peer sends becomes either a :class:`Message` (request,
notification or response) or a :class:`Malformed` that says which error to
answer with and to which id. The id of a line that cannot be parsed (or is
too long to be read) is recovered from its first and last bytes when it can
be, so the client that sent it gets an answer instead of waiting forever.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

Id = str | int | float
"""A JSON-RPC request id (MCP: a string or a number, never null)."""

IdKey = tuple[str, Id]
"""An id as a dict key: ``1`` and ``1.0`` and ``"1"`` are different ids."""

EDGE_BYTES = 4096
"""How much of the start and end of an unreadable line is kept to find its id."""


def id_key(value: Id) -> IdKey:
    """The dict key of a request id."""
    return (type(value).__name__, value)


def valid_id(value: Any) -> bool:
    """True for a string or a finite number (booleans are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str | int):
        return True
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Message:
    """A well-formed JSON-RPC message."""

    kind: Literal["request", "notification", "response"]
    """What it is: a request (has ``method`` and ``id``), a notification (``method``, no ``id``), a response."""
    data: dict[str, Any]
    """The parsed object."""

    @property
    def id(self) -> Id:
        """The request or response id (requests and responses only)."""
        value: Id = self.data["id"]
        return value

    @property
    def method(self) -> str:
        """The method (requests and notifications only)."""
        value: str = self.data["method"]
        return value

    @property
    def params(self) -> dict[str, Any]:
        """The params object (``{}`` when absent)."""
        value = self.data.get("params")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that is not a well-formed message, and how to answer it."""

    code: int
    """The JSON-RPC error code to answer with."""
    message: str
    """Why, in a sentence."""
    id: Id | None = None
    """The id to answer to (None: unknown, answered with ``id: null``)."""
    answer: bool = True
    """False for a malformed response: a response is never answered."""


@dataclass(frozen=True, slots=True)
class Oversized:
    """A line longer than the reader's limit: only its edges were kept."""

    size: int
    """Its length in bytes."""
    head: bytes
    """Its first bytes."""
    tail: bytes
    """Its last bytes."""


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading optional members)."""
    return value if isinstance(value, dict) else {}


def error(id_: Id | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error response object."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def dumps(obj: Any) -> bytes:
    """One JSON line (compact, UTF-8, newline-terminated)."""
    return orjson.dumps(obj) + b"\n"


def parse(line: bytes) -> Message | Malformed | None:
    """Read one line. None for a blank line (ignored)."""
    if not line.strip():
        return None
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Malformed(PARSE_ERROR, f"Parse error: {exc}", recover_id(line[:EDGE_BYTES], line[-EDGE_BYTES:]))
    return classify(data)


def oversized(frame: Oversized, limit: int) -> Malformed:
    """The answer to a line over ``limit`` bytes."""
    why = f"message of {frame.size} bytes exceeds the proxy's limit of {limit} bytes"
    return Malformed(INVALID_REQUEST, f"Invalid Request: {why}", recover_id(frame.head, frame.tail))


def classify(data: Any) -> Message | Malformed:
    """Check a parsed value's shape against JSON-RPC 2.0 (single messages; MCP has no batches)."""
    if isinstance(data, list):
        ids = [m.get("id") for m in data if isinstance(m, dict) and "method" in m and valid_id(m.get("id"))]
        return Malformed(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported by MCP", ids[0] if len(ids) == 1 else None)
    if not isinstance(data, dict):
        return Malformed(INVALID_REQUEST, f"Invalid Request: a message must be a JSON object, got {type(data).__name__}")
    has_id = "id" in data
    raw_id = data.get("id")
    id_ok = has_id and valid_id(raw_id)
    reply_to: Id | None = raw_id if id_ok else None
    if data.get("jsonrpc") != "2.0":
        looks_like_response = "method" not in data and ("result" in data or "error" in data)
        return Malformed(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', reply_to, answer=not looks_like_response)
    if "method" in data:
        method = data["method"]
        if not isinstance(method, str) or not method:
            return Malformed(INVALID_REQUEST, 'Invalid Request: "method" must be a non-empty string', reply_to)
        if has_id and not id_ok:
            return Malformed(INVALID_REQUEST, 'Invalid Request: "id" must be a string or a number')
        if "params" in data and not isinstance(data["params"], dict):
            code = INVALID_PARAMS if has_id else INVALID_REQUEST
            return Malformed(code, 'Invalid params: "params" must be an object', reply_to, answer=has_id)
        if "result" in data or "error" in data:
            return Malformed(INVALID_REQUEST, "Invalid Request: a request cannot carry a result or an error", reply_to)
        return Message("request" if has_id else "notification", data)
    if "result" in data or "error" in data:
        if not id_ok and not (has_id and raw_id is None and "error" in data):
            return Malformed(INVALID_REQUEST, 'Invalid response: "id" must be a string or a number', answer=False)
        if ("result" in data) == ("error" in data):
            return Malformed(INVALID_REQUEST, "Invalid response: exactly one of result and error", reply_to, answer=False)
        if "error" in data and not _error_shape(data["error"]):
            return Malformed(INVALID_REQUEST, "Invalid response: error must have an integer code and a message", reply_to, answer=False)
        if "result" in data and not isinstance(data["result"], dict):
            return Malformed(INVALID_REQUEST, "Invalid response: an MCP result must be an object", reply_to, answer=False)
        return Message("response", data)
    return Malformed(INVALID_REQUEST, 'Invalid Request: no "method" (and not a response)', reply_to)


def _error_shape(err: Any) -> bool:
    return (
        isinstance(err, dict)
        and isinstance(err.get("code"), int)
        and not isinstance(err.get("code"), bool)
        and isinstance(err.get("message"), str)
    )


_KEY = re.compile(rb'\s*"((?:[^"\\]|\\.)*)"\s*:\s*')
_SCALAR = re.compile(rb'(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"|true|false|null)\s*([,}])')
_TAIL_ID = re.compile(rb'[,{]\s*"id"\s*:\s*(-?\d+(?:\.\d+)?|"(?:[^"\\\n]|\\.)*")\s*\}\s*$')


def recover_id(head: bytes, tail: bytes) -> Id | None:
    """The top-level ``id`` of a message that cannot be parsed whole, when its edges show it.

    Reads the leading members while they are scalars (the Python SDK writes
    ``id`` second), then looks for ``"id": X}`` closing the line (the
    TypeScript SDK writes ``id`` last). A single closing brace after the id
    means the id is a member of the outermost object.
    """
    pos = head.find(b"{")
    if pos != -1 and not head[:pos].strip():
        pos += 1
        while True:
            key = _KEY.match(head, pos)
            if key is None:
                break
            value = _SCALAR.match(head, key.end())
            if value is None:
                break
            if key.group(1) == b"id":
                found = _load_id(value.group(1))
                if found is not None:
                    return found
                break
            if value.group(2) == b"}":
                break
            pos = value.end()
    match = _TAIL_ID.search(tail)
    return _load_id(match.group(1)) if match else None


def _load_id(raw: bytes) -> Id | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if valid_id(value) else None
