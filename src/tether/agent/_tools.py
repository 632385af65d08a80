"""Tools the agent loop offers the model: a small protocol, and a toolset of Python functions.

A :class:`Toolset` says which tools exist (name, description, JSON Schema of the arguments)
and runs one by name. The loop never runs a tool itself: every call goes through the
session's :class:`~tether.session.Gate` first, and the toolset's ``call`` is what the gate
runs once the call is admitted. MCP servers plug in as another toolset (async ``call``).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, get_origin, runtime_checkable

from tether.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Tool names the chat-completions API accepts."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What the model is told about one tool."""

    name: str
    """The tool's name (as the policy names it)."""
    description: str = ""
    """What it does, for the model."""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of its arguments (an object)."""

    def to_openai(self) -> dict[str, Any]:
        """The ``tools`` entry of a chat-completions request."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}}


@runtime_checkable
class Toolset(Protocol):
    """Tools the agent may call. Implementations: :class:`FunctionToolset`; MCP servers later."""

    def specs(self) -> Sequence[ToolSpec]:
        """Every tool offered to the model."""
        ...

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        """Run tool ``name`` with ``args`` (already admitted by the guard) and return its output.
        Raise on failure: the error text is recorded as the call's (untrusted) output."""
        ...


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A Python function offered as a tool."""

    fn: Callable[..., Any]
    """The function (sync or async); called with the model's arguments as keywords."""
    spec: ToolSpec
    """Its name, description and argument schema."""


def function_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None, parameters: Mapping[str, Any] | None = None
) -> FunctionTool:
    """Offer ``fn`` as a tool. The name defaults to the function's, the description to its docstring's
    first paragraph, the schema to one built from its signature (``Args:`` lines of the docstring
    describe the parameters); give ``parameters`` to state the JSON Schema yourself."""
    tool_name = name or str(getattr(fn, "__name__", ""))
    if not _NAME.match(tool_name):
        raise ConfigError(f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'")
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_doc(doc)
    schema = dict(parameters) if parameters is not None else _schema_of(fn, arg_docs)
    if schema.get("type") != "object":
        raise ConfigError(f"tool {tool_name!r}: the parameters schema must be of type 'object', got {schema.get('type')!r}")
    return FunctionTool(fn, ToolSpec(tool_name, description if description is not None else summary, schema))


class FunctionToolset:
    """A toolset of Python functions (plain callables or :func:`function_tool` results)."""

    def __init__(self, tools: Iterable[Callable[..., Any] | FunctionTool]) -> None:
        self._tools: dict[str, FunctionTool] = {}
        for item in tools:
            tool = item if isinstance(item, FunctionTool) else function_tool(item)
            if tool.spec.name in self._tools:
                raise ConfigError(f"two tools are named {tool.spec.name!r}")
            self._tools[tool.spec.name] = tool

    def specs(self) -> Sequence[ToolSpec]:
        """Every tool, in the order given."""
        return [t.spec for t in self._tools.values()]

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        """Call the function named ``name`` with ``args`` as keywords (awaiting it if async)."""
        tool = self._tools.get(name)
        if tool is None:
            raise LookupError(f"no tool named {name!r}")
        value = tool.fn(**args)
        if inspect.isawaitable(value):
            value = await value
        return value


def as_toolset(tools: Toolset | Iterable[Callable[..., Any] | FunctionTool]) -> Toolset:
    """``tools`` as a toolset: a toolset is kept; functions are wrapped in a :class:`FunctionToolset`."""
    if isinstance(tools, Toolset):
        return tools
    return FunctionToolset(tools)


# ---------------------------------------------------------------- schemas from signatures


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and Google-style ``Args:`` descriptions by parameter name."""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    lines = doc.splitlines()
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            inside = True
            continue
        if inside:
            m = re.match(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m:
                args[m.group(1)] = m.group(2)
            elif not stripped or not line.startswith((" ", "\t")):
                inside = False
    return summary, args


def _schema_of(fn: Callable[..., Any], arg_docs: dict[str, str]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: describe the argument without a type
        hints = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        prop = _type_schema(hints.get(pname, Any))
        if pname in arg_docs:
            prop["description"] = arg_docs[pname]
        props[pname] = prop
        if param.default is param.empty:
            required.append(pname)
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (list, tuple, set, frozenset, Sequence):
        items = get_args(tp)
        return {"type": "array", "items": _type_schema(items[0])} if items else {"type": "array"}
    if origin in (dict, Mapping):
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    return {}
