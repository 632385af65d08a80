"""``tether policy init``: a starting policy for Python tools, from their signatures and docstrings,
or from an OpenAPI document or a JSON Schema file.

The policy fails closed: ``default: deny``, every tool ``effect: write`` with untrusted output
and a blanket ask rule, nothing secret leaves through a write; comments say what a human has
to decide for each tool. Nothing the source claims (a docstring saying "read-only") is
trusted: it is shown as a comment.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import yaml

from tether.errors import PolicyError
from tether.policy._json_schema import arg_from_schema

_PY_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", tuple: "array", dict: "object"}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DECIDE = (
    "# For each tool, decide: effect (read: no side effects; write: changes something or sends data out),\n"
    "# output (trusted only if nobody outside can write what it returns), constraints on each argument,\n"
    "# flow rules (which arguments must come from trusted data: recipients, amounts, paths, URLs),\n"
    "# then drop the blanket ask rule. Check it with 'tether policy check', try it with 'tether policy eval'."
)


def tools_from_module(module_name: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Tool descriptions (``name``, ``description``, ``inputSchema``) of a module's public functions
    (or of ``names``): the signature gives the arguments and their JSON types, the docstring the
    description. Imports the module (it runs its top-level code)."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's module's, reported as such
        raise PolicyError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    found: list[tuple[str, Callable[..., Any]]] = []
    for name, value in vars(module).items():
        if names is not None and name not in names:
            continue
        if inspect.isfunction(value) and (names is not None or (not name.startswith("_") and value.__module__ == module.__name__)):
            found.append((name, value))
    missing = sorted(set(names or []) - {n for n, _ in found})
    if missing:
        raise PolicyError(f"module {module_name!r} has no function(s) {missing}")
    if not found:
        raise PolicyError(f"module {module_name!r} defines no public functions")
    return [_function_tool(name, fn) for name, fn in found]


def _function_tool(name: str, fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: fall back to none
        hints = {}
    props: dict[str, Any] = {}
    required = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        props[param.name] = _py_schema(hints.get(param.name, Any))
        if param.default is param.empty:
            required.append(param.name)
    return {
        "name": name,
        "description": inspect.getdoc(fn) or "",
        "inputSchema": {"type": "object", "properties": props, "required": required},
    }


def _py_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint in _PY_TYPES:
        return {"type": _PY_TYPES[hint]}
    if origin is Literal:
        values = list(typing.get_args(hint))
        return {"enum": values}
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(hint) if a is not type(None)]
        return _py_schema(parts[0]) if len(parts) == 1 else {}
    if origin in (list, tuple, set, frozenset) or (origin is not None and _is_sequence(origin)):
        args = typing.get_args(hint)
        out: dict[str, Any] = {"type": "array"}
        if args and args[0] is not Ellipsis:
            out["items"] = _py_schema(args[0])
        return out
    if origin is dict or (origin is not None and _is_mapping(origin)):
        return {"type": "object"}
    return {}


def _is_sequence(origin: Any) -> bool:
    import collections.abc as abc

    return isinstance(origin, type) and issubclass(origin, abc.Sequence) and not issubclass(origin, str)


def _is_mapping(origin: Any) -> bool:
    import collections.abc as abc

    return isinstance(origin, type) and issubclass(origin, abc.Mapping)


def tools_from_schema(doc: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """Tool descriptions from an OpenAPI document (one tool per operation, named by its
    ``operationId``; path, query and JSON body parameters are its arguments) or a JSON Schema
    (one object schema: one tool named by its ``title``; ``$defs``/``definitions`` of object
    schemas: one tool each)."""
    if "openapi" in doc or "swagger" in doc:
        return _openapi_tools(doc)
    defs = doc.get("$defs") or doc.get("definitions")
    if isinstance(defs, Mapping) and doc.get("type") != "object":
        return [_schema_tool(str(name), sub) for name, sub in defs.items() if isinstance(sub, Mapping)]
    if doc.get("type") == "object" or "properties" in doc:
        return [_schema_tool(str(doc.get("title") or source.rsplit("/", 1)[-1].split(".")[0]), doc)]
    raise PolicyError(f"{source}: neither an OpenAPI document nor a JSON Schema of an object")


def _schema_tool(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": _tool_name(name), "description": str(schema.get("description", "")), "inputSchema": dict(schema)}


def _tool_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "tool"


def _openapi_tools(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = []
    paths = doc.get("paths") or {}
    for path, ops in paths.items() if isinstance(paths, Mapping) else []:
        if not isinstance(ops, Mapping):
            continue
        for method, op in ops.items():
            if method.lower() not in ("get", "put", "post", "delete", "patch") or not isinstance(op, Mapping):
                continue
            props: dict[str, Any] = {}
            required: list[str] = []
            for param in [*ops.get("parameters", []), *op.get("parameters", [])]:
                if isinstance(param, Mapping) and isinstance(param.get("name"), str):
                    props[param["name"]] = dict(param.get("schema") or {})
                    if param.get("required"):
                        required.append(param["name"])
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema")
            if isinstance(body, Mapping):
                props.update(body.get("properties") or {})
                required += list(body.get("required") or [])
            name = op.get("operationId") or f"{method}_{path}"
            summary = op.get("summary") or op.get("description") or ""
            tools.append(
                {
                    "name": _tool_name(str(name)),
                    "description": f"{method.upper()} {path}: {summary}".strip().rstrip(":"),
                    "inputSchema": {"type": "object", "properties": props, "required": required},
                    "method": method.lower(),
                }
            )
    if not tools:
        raise PolicyError("the OpenAPI document has no operations")
    return tools


def python_starting_policy(name: str, tools: list[dict[str, Any]], *, source: str) -> str:
    """YAML of a starting policy for ``tools`` that fails closed (every tool asks until tightened;
    a GET of an OpenAPI document is still ``effect: write``: the server's word is not trusted)."""
    spec: dict[str, Any] = {
        "tether": 1,
        "name": name,
        "description": f"Starting policy for {source}: every tool asks a human. Tighten me.",
        "default": "deny",
        "defaults": {"write": {"flow": {"forbid": ["secret"]}}},
        "tools": {},
    }
    notes = []
    for tool in tools:
        schema = tool.get("inputSchema") or {}
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        entry: dict[str, Any] = {"effect": "write", "output": "untrusted"}
        description = " ".join(str(tool.get("description", "")).split())[:300]
        if description:
            entry["description"] = description
        entry["args"] = {arg: arg_from_schema(sub, arg in required) for arg, sub in props.items() if _NAME.fullmatch(arg)}
        entry["ask"] = [{"name": f"review-{tool['name']}", "when": {"always": True}, "reason": f"{tool['name']} is not yet reviewed"}]
        spec["tools"][tool["name"]] = entry
        if tool.get("method") == "get":
            notes.append(f"#   {tool['name']}: an HTTP GET (usually no side effects: consider effect: read)")
    header = [
        f"# Starting Tether policy for {source}",
        "# Generated by `tether policy init`. It fails closed: unnamed tools are denied,",
        "# every named tool asks a human, and no write may carry secrets.",
        _DECIDE,
    ]
    if notes:
        header += ["# Hints from the source (claims, not checked):", *notes]
    return "\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=120)
