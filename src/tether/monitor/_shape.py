"""The shape every call's arguments must have before any rule reads them: plain JSON data, bounded."""

from __future__ import annotations

import math
from typing import Any


def check_shape(args: Any, max_bytes: int, max_depth: int) -> str | None:
    """Reject arguments that are not plain JSON-like data of bounded size and depth."""
    if not isinstance(args, dict):
        return f"arguments must be an object, got {type(args).__name__}"
    # Fast path: a flat object of ASCII strings and small numbers (most calls).
    total = 0
    for k, v in args.items():
        kind = type(v)
        if type(k) is not str:
            break
        if kind is str:
            if not v.isascii():
                break
            total += len(k) + len(v)
        elif kind is int:
            if not -(1 << 63) <= v < (1 << 64):
                break
            total += len(k) + 8
        elif v is None or kind is bool or (kind is float and math.isfinite(v)):
            total += len(k) + 8
        else:
            break
    else:
        return None if total <= max_bytes else f"arguments are larger than {max_bytes} characters"
    return _check_shape_walk(args, max_bytes, max_depth)


def _check_shape_walk(args: dict[str, Any], max_bytes: int, max_depth: int) -> str | None:
    total = 0
    stack: list[tuple[Any, int]] = [(args, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"arguments are nested deeper than {max_depth} levels"
        if isinstance(value, str):
            total += len(value)
            if total > max_bytes:
                return f"arguments are larger than {max_bytes} characters"
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "arguments contain text that is not valid Unicode (undecodable bytes)"
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    return f"argument keys must be strings, got {k!r}"
                total += len(k)
                stack.append((v, depth + 1))
        elif isinstance(value, list | tuple):
            if len(value) > max_bytes:
                return f"arguments are larger than {max_bytes} items"
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"arguments contain {value!r}, which is not a finite number"
            total += 8
        elif value is None or isinstance(value, bool):
            total += 8
        elif isinstance(value, int):
            if not -(1 << 63) <= value < (1 << 64):
                return "arguments contain an integer outside the 64-bit range"
            total += 8
        else:
            return f"arguments contain a {type(value).__name__}, which is not JSON data"
        if total > max_bytes:
            return f"arguments are larger than {max_bytes} characters"
    return None
