"""The canonical JSON helpers: arbitrary agent-supplied values turned into JSON that can always be logged.

The log must never lose an event because an argument is strange: NaN, bytes,
lone surrogates from undecodable input, cycles, absurd nesting or size. Such
values are replaced by tagged objects (``{"$float": "nan"}``) so the event is
still written and the oddity is visible in the audit trail.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

import orjson

MAX_LOGGED_STRING = 1 << 20
"""Longer strings are logged as a prefix plus the SHA-256 of the whole."""


def _safe_str(value: str) -> Any:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return {"$str": value.encode("utf-8", "backslashreplace").decode("ascii", "replace")}
    if len(value) > MAX_LOGGED_STRING:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        return {"$truncated": value[:4096], "length": len(value), "sha256": digest}
    return value


def jsonsafe(value: Any, max_depth: int = 64) -> Any:
    """A JSON-serialisable copy of ``value`` (see module docstring)."""
    return _convert(value, max_depth, set(), [])


def jsonsafe_exact(value: Any, max_depth: int = 64) -> tuple[Any, str | None]:
    """Like :func:`jsonsafe`, and what the copy lost (None: it is the same JSON data as ``value``).

    A call is decided on its arguments but remembered through its log; whatever the log cannot
    hold exactly (a string cut at ``MAX_LOGGED_STRING``, a replaced number, bytes, a cycle) would
    make the two disagree, so the session refuses such calls.
    """
    flat = _flat_copy(value)
    if flat is not None:
        return flat, None
    lost: list[str] = []
    return _convert(value, max_depth, set(), lost), (lost[0] if lost else None)


def _flat_copy(value: Any) -> dict[str, Any] | None:
    """A copy of a flat object of plain scalars that the log holds exactly (most tool calls), or
    None when the full conversion is needed. Exact types only: a subclass may misbehave."""
    if type(value) is not dict:
        return None
    for k, v in value.items():
        kind = type(v)
        if type(k) is not str or not k.isascii():
            return None
        if kind is str:
            if not v.isascii() or len(v) > MAX_LOGGED_STRING:
                return None
        elif kind is int:
            if not -(1 << 63) <= v < (1 << 64):
                return None
        elif kind is float:
            if not math.isfinite(v):
                return None
        elif v is not None and kind is not bool:
            return None
    return dict(value)


def _is_loggable_int(value: int) -> bool:
    # The range orjson writes (signed and unsigned 64-bit), which is also what the shape check allows.
    return -(1 << 63) <= value < (1 << 64)


def _convert(value: Any, depth: int, seen: set[int], lost: list[str]) -> Any:
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and not _is_loggable_int(value):
            digits = str(value) if value.bit_length() < 8000 else f"{value.bit_length()}-bit integer"
            lost.append("an integer outside the 64-bit range")
            return {"$int": digits}
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        lost.append(f"the number {value!r}")
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, str):
        return _checked_str(value, lost)
    if isinstance(value, bytes | bytearray):
        lost.append("bytes")
        return {"$bytes": base64.b64encode(bytes(value[:MAX_LOGGED_STRING])).decode("ascii")}
    if depth <= 0:
        lost.append("nesting deeper than can be logged")
        return {"$truncated": "depth"}
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            lost.append("a cycle")
            return {"$cycle": True}
        seen = seen | {id(value)}
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    lost.append(f"a {type(k).__name__} key")
                key = k if isinstance(k, str) else f"$key:{k!r}"
                safe_key = _checked_str(key, lost)
                out[safe_key if isinstance(safe_key, str) else repr(key)] = _convert(v, depth - 1, seen, lost)
            return out
        return [_convert(v, depth - 1, seen, lost) for v in value]
    lost.append(f"a {type(value).__name__}")
    return {"$repr": repr(value)[:4096]}


def _checked_str(value: str, lost: list[str]) -> Any:
    safe = _safe_str(value)
    if safe is not value:
        lost.append("text that is not valid Unicode" if "$str" in safe else f"a string longer than {MAX_LOGGED_STRING} characters")
    return safe


def dumps(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, UTF-8) of an already JSON-safe value."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def output_text(output: Any) -> str:
    """The text of a tool output as the agent would read it, for indexing.

    Strings are kept as they are; structured outputs are flattened to
    ``key: value`` lines so that string values are indexed unescaped.
    """
    if isinstance(output, str):
        return output
    lines: list[str] = []
    _flatten(output, "", lines, 64)
    return "\n".join(lines)


def _flatten(value: Any, prefix: str, lines: list[str], depth: int) -> None:
    if depth <= 0:
        lines.append(prefix + "...")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list | tuple):
                lines.append(f"{prefix}{k}:")
                _flatten(v, prefix + "  ", lines, depth - 1)
            else:
                lines.append(f"{prefix}{k}: {_scalar(v)}")
    elif isinstance(value, list | tuple):
        for v in value:
            if isinstance(v, dict | list | tuple):
                lines.append(f"{prefix}-")
                _flatten(v, prefix + "  ", lines, depth - 1)
            else:
                lines.append(f"{prefix}- {_scalar(v)}")
    else:
        lines.append(prefix + _scalar(value))


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
