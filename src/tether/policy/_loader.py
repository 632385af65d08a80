"""Load a policy file: YAML with line numbers, validation (every problem reported), content hash."""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tether.errors import PolicyError
from tether.policy._problems import Locate, did_you_mean, parent_path
from tether.policy._schema import PolicySpec

_MAX_POLICY_BYTES = 4 << 20
_CONSTRUCTOR = yaml.constructor.SafeConstructor()

DocPath = tuple[str | int, ...]


def dotted(path: DocPath) -> str:
    """``("tools", "pay", "ask", 0)`` -> ``tools.pay.ask[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(slots=True)
class Document:
    """One policy file as plain data, with the line of every node."""

    source: str
    """Where it was read from."""
    data: dict[str, Any]
    """The document as plain Python values."""
    lines: dict[str, int]
    """Dotted rule path -> 1-based line."""

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, or of its nearest ancestor the file wrote."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = parent_path(path)


class _Located:
    """Builds plain Python values from YAML nodes, keeping each node's line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}

    def _error(self, message: str, path: DocPath, node: yaml.Node) -> PolicyError:
        return PolicyError(message, source=self.source, rule_path=dotted(path), line=node.start_mark.line + 1)

    def build(self, node: yaml.Node, path: DocPath = (), depth: int = 0) -> Any:
        if depth > 64:
            raise self._error("document nested too deeply", path, node)
        self.lines.setdefault(dotted(path), node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self._error("YAML merge keys (<<) are not supported", path, key_node)
                key = _CONSTRUCTOR.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    raise self._error(f"mapping keys must be strings, got {key!r}", path, key_node)
                if key in out:
                    raise self._error(f"duplicate key {key!r}", (*path, key), key_node)
                self.lines[dotted((*path, key))] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        value = _CONSTRUCTOR.construct_object(node, deep=True)
        if isinstance(value, datetime.date | bytes):
            # Not JSON data: a tool never receives a date object, so such a value could never match.
            raise self._error(f"{node.value!r} reads as a YAML {type(value).__name__}, not as JSON data: quote it", path, node)
        return value


def read_document(text: str, source: str) -> Document:
    """Parse YAML text into a :class:`Document`; YAML-level problems raise PolicyError."""
    if len(text.encode("utf-8", "surrogatepass")) > _MAX_POLICY_BYTES:
        raise PolicyError(f"policy file is larger than {_MAX_POLICY_BYTES} bytes", source=source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"invalid YAML: {exc.problem or exc}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", source=source) from None
    except RecursionError:
        raise PolicyError("invalid YAML: document nested too deeply", source=source) from None
    if node is None:
        raise PolicyError("policy file is empty", source=source)
    located = _Located(source)
    try:
        data = located.build(node)
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", source=source) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer beyond Python's digit limit
        raise PolicyError(f"invalid YAML: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise PolicyError(f"a policy must be a mapping at the top level, got {type(data).__name__}", source=source, line=1)
    return Document(source, data, located.lines)


_ALIASES = {"not_": "not", "in_": "in"}
_SHAPE_ERRORS = {"list_type", "model_type", "dict_type", "model_attributes_type"}
_VALID_KIND = re.compile(r"^Input should be a valid (\w+)")
_ARTICLES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "a boolean", "list": "a list"}


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _doc_path(loc: tuple[str | int, ...], data: Any, keep_last: bool) -> DocPath:
    """pydantic's error location with its internal parts (union members such as
    ``literal['string',...]``, validator names) removed: only keys the document has remain."""
    out: list[str | int] = []
    node = data
    for i, raw in enumerate(loc):
        part = _ALIASES.get(raw, raw) if isinstance(raw, str) else raw
        if _has(node, part):
            node = node[part]
            out.append(part)
        elif keep_last and i == len(loc) - 1 and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _message(error: Any, path: DocPath) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {path[-1]!r}{did_you_mean(str(path[-1]), known_keys())}" if path else "unknown key"
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required key"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = re.sub(r" or instance of \w+", "", msg).replace("valid dictionary", "mapping")
    return msg


def _combine(messages: list[str]) -> str:
    """Messages for one location from the members of a union, as one sentence."""
    kinds = [m.group(1) for m in map(_VALID_KIND.match, messages) if m]
    rest = [m for m in messages if not _VALID_KIND.match(m)]
    parts = [m.replace("Input should be", "should be") for m in rest]
    if kinds:
        names = [_ARTICLES.get(k, k) for k in dict.fromkeys(kinds)]
        parts.append("should be " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]))
    return "; or ".join(dict.fromkeys(parts))


def validation_problems(exc: ValidationError, data: dict[str, Any], locate: Locate) -> list[PolicyError]:
    """Every error pydantic found, in document terms, ordered by file and line."""
    grouped: dict[str, list[str]] = {}
    found: list[tuple[str, str, str]] = []
    for error in exc.errors():
        path = _doc_path(tuple(error["loc"]), data, keep_last=error["type"] in ("missing", "extra_forbidden"))
        found.append((dotted(path), error["type"], _message(error, path)))
    for where, kind, message in found:
        # A union (one rule or a list of rules): when the value has one member's shape, the
        # other member's "should be a list/mapping" at the same place is noise.
        if kind in _SHAPE_ERRORS and any(other != where and other.startswith((where + ".", where + "[")) for other, _, _ in found):
            continue
        grouped.setdefault(where, []).append(message)
    problems = []
    for where, msgs in grouped.items():
        source, line = locate(where)
        problems.append(PolicyError(_combine(msgs), source=source, rule_path=where, line=line))
    problems.sort(key=lambda p: (p.source, p.line or 0))
    return problems


def validate_data(data: dict[str, Any], locate: Locate) -> PolicySpec:
    """Validate a policy document given as plain data; every problem is reported in one PolicyError."""
    try:
        return PolicySpec.model_validate(data)
    except ValidationError as exc:
        raise PolicyError.collect(validation_problems(exc, data, locate)) from None


def prune_invalid(data: dict[str, Any], problems: list[PolicyError], rounds: int = 8) -> PolicySpec | None:
    """``data`` with the parts that fail validation removed, validated; None if that does not
    converge. Used only to find the semantic problems of the rest, so that one invalid key
    does not hide every other problem of the file."""
    current: Any = copy.deepcopy(data)
    paths = [p.rule_path for p in problems]
    for _ in range(rounds):
        for path in sorted(paths, key=_path_key, reverse=True):
            _remove(current, path)
        current.setdefault("tether", 1)
        current.setdefault("name", "?")
        try:
            return PolicySpec.model_validate(current)
        except ValidationError as exc:
            paths = [dotted(_doc_path(tuple(e["loc"]), current, keep_last=e["type"] == "extra_forbidden")) for e in exc.errors()]
    return None


def _path_key(path: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\[\]]+", path) if part]


def _remove(data: Any, path: str) -> None:
    """Delete the node at a dotted path (a list item is removed; later items move up)."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", path) if p]
    if not parts:
        return
    node = data
    for part in parts[:-1]:
        if not _has(node, part):
            return
        node = node[part]
    last = parts[-1]
    if _has(node, last):
        if len(parts) == 4 and parts[0] == "tools" and parts[2] == "args" and isinstance(node, dict):
            # An invalid argument is still declared: its rules must not read "does not declare".
            node[last] = {}
            return
        del node[last]


@functools.cache
def known_keys() -> frozenset[str]:
    """Every key the policy format knows, at any level (for "did you mean" hints)."""
    seen: set[type[BaseModel]] = set()
    keys: set[str] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            keys.add(field.alias or _ALIASES.get(name, name))
            for inner in _models_in(field.annotation):
                visit(inner)

    visit(PolicySpec)
    return frozenset(keys)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def validate_document(doc: Document) -> PolicySpec:
    """Validate one document; every problem is reported in one PolicyError."""
    return validate_data(doc.data, lambda path: (doc.source, doc.line_of(path)))


# Keys whose null value means something, so the hash must see it.
_NULL_MEANS = {"const", "equals"}


_ADDED_SETTINGS = frozenset({"readers", "outflow", "intent", "plans", "recipients"})
"""Settings added after policy hashes were first stored, whose defaults are not null: left out of
the hash while unset and at their default, so that a new Tether version never changes the hash of
a policy written before it (a stored session's policy must still load under its recorded hash).
A setting added later with a non-null default belongs here too."""


def normalised(model: BaseModel) -> dict[str, Any]:
    """The model as JSON data: unset optional keys left out, explicit meaningful nulls kept."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None and not (name in _NULL_MEANS and name in model.model_fields_set):
            continue
        if name in _ADDED_SETTINGS and name not in model.model_fields_set and value == field.get_default(call_default_factory=True):
            continue
        if name == "forbid" and value == [] and name in model.model_fields_set:
            # ``forbid: []`` written out overrides a default flow rule; left out, it does not.
            out[field.alias or name] = None
            continue
        out[field.alias or name] = _normalised_value(value)
    return out


def _normalised_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return normalised(value)
    if isinstance(value, list | tuple):
        return [_normalised_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalised_value(v) for k, v in value.items()}
    return value


def policy_hash(spec: PolicySpec) -> str:
    """Hash of the normalised content: comments, layout and key order do not count."""
    canonical = json.dumps(normalised(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def read_policy_file(path: str | Path) -> str:
    """Read a policy file as UTF-8, with a PolicyError on any problem."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(_MAX_POLICY_BYTES + 1)  # a device or a huge file is refused, not read whole
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror or exc}", source=str(p)) from None
    if len(raw) > _MAX_POLICY_BYTES:
        raise PolicyError(f"policy file is larger than {_MAX_POLICY_BYTES} bytes", source=str(p))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file is not valid UTF-8 (byte {exc.start})", source=str(p)) from None
