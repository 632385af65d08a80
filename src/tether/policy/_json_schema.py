"""One JSON Schema property in the policy's own argument form (for starting policies written from
MCP tool definitions, OpenAPI documents, JSON Schemas and Python signatures)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SCHEMA_KEYS = ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")
"""The keys the policy format shares with JSON Schema (taken as they are)."""
SCHEMA_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
"""The JSON Schema types the policy format knows."""


def arg_from_schema(schema: Any, required: bool, *, describe: bool = False) -> dict[str, Any]:
    """The policy form of one JSON Schema property: the shared keys, types the format knows (a list
    of types stays a list), array items, a pattern only if Python can compile it; ``describe``
    keeps the schema's ``description`` (a comment for the human who tightens the policy)."""
    out: dict[str, Any] = {}
    if isinstance(schema, Mapping):
        keys = (*SCHEMA_KEYS, "description") if describe else SCHEMA_KEYS
        out = {k: schema[k] for k in keys if k in schema}
        kind = out.get("type")
        if isinstance(kind, list):
            kind = [k for k in kind if k in SCHEMA_TYPES] or None
        elif kind not in SCHEMA_TYPES:
            kind = None
        if kind is None:
            out.pop("type", None)
        else:
            out["type"] = kind
        if kind == "array" and isinstance(schema.get("items"), Mapping):
            out["items"] = arg_from_schema(schema["items"], False, describe=describe)
        if isinstance(out.get("pattern"), str):
            try:
                re.compile(out["pattern"])
            except re.error:
                out.pop("pattern")
    if required:
        out["required"] = True
    return out
