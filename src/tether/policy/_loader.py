"""Load a policy file: YAML with line numbers, validation, content hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tether.errors import PolicyError
from tether.policy._schema import PolicySpec

_MAX_POLICY_BYTES = 4 << 20
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _Located:
    """Maps document paths to line numbers while building plain Python values."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple[str | int, ...], int] = {}

    def build(self, node: yaml.Node, path: tuple[str | int, ...] = (), depth: int = 0) -> Any:
        if depth > 64:
            raise PolicyError("document nested too deeply", source=self.source, rule_path=_dotted(path), line=node.start_mark.line + 1)
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise PolicyError(
                        "YAML merge keys (<<) are not supported",
                        source=self.source,
                        rule_path=_dotted(path),
                        line=key_node.start_mark.line + 1,
                    )
                key = _CONSTRUCTOR.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    raise PolicyError(
                        f"mapping keys must be strings, got {key!r}",
                        source=self.source,
                        rule_path=_dotted(path),
                        line=key_node.start_mark.line + 1,
                    )
                if key in out:
                    raise PolicyError(
                        f"duplicate key {key!r}", source=self.source, rule_path=_dotted((*path, key)), line=key_node.start_mark.line + 1
                    )
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return _CONSTRUCTOR.construct_object(node, deep=True)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_ALIASES = {"not_": "not", "in_": "in"}


def _loc_path(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic reports tagged-union and alias locations; keep only document keys.
    return tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in loc)


def parse_policy_text(text: str, source: str = "<string>") -> tuple[PolicySpec, dict[tuple[str | int, ...], int]]:
    """Parse and validate policy YAML; return the spec and a path-to-line map."""
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
    if node is None:
        raise PolicyError("policy file is empty", source=source)
    located = _Located(source)
    try:
        data = located.build(node)
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise PolicyError(f"a policy must be a mapping at the top level, got {type(data).__name__}", source=source, line=1)
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        path = _loc_path(tuple(first["loc"]))
        extra = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = f"unknown key {path[-1]!r}"
        elif first["type"] == "missing":
            msg = f"missing required key {path[-1]!r}"
        raise PolicyError(msg + extra, source=source, rule_path=_dotted(path), line=located.line_of(path)) from None
    return spec, located.lines


def policy_hash(spec: PolicySpec) -> str:
    """Hash of the normalised content: comments, layout and key order do not count."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_policy_file(path: str | Path) -> str:
    """Read a policy file as UTF-8, with a PolicyError on any problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror or exc}", source=str(p)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file is not valid UTF-8 (byte {exc.start})", source=str(p)) from None
