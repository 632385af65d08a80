"""``extends``: a policy built on other policy files, which it may only restrict.

The bases are resolved first (each may extend others), then merged in order,
then the extending document is merged on top. Every merge step is the same
operation, ``restrict(earlier, later)``: for everything the earlier documents
say, the later one may only add restrictions (more deny/ask rules, more flow
rules and rates, tighter constraints, smaller budgets); anything that would
loosen is refused with an error that names the later file and line. Tools and
arguments no earlier document constrains may be added (that is how blocks for
different tool families combine).

Merging works on the documents as plain data (only the keys each one wrote),
so "stated" and "left to the default" stay distinguishable; the result is
validated again as a whole. ``origins`` maps each rule path of the merged
document to the file and line that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.errors import PolicyError
from tether.policy._loader import read_document, read_policy_file, validate_data, validate_document
from tether.policy._problems import Problems, parent_path
from tether.policy._schema import PolicySpec
from tether.policy._validate import same_json

Origins = dict[str, tuple[str, int]]
_MAX_DEPTH = 16
_VERDICT_RANK = {"ask": 0, "deny": 1}


@dataclass(slots=True)
class Resolved:
    """A policy document with its ``extends`` merged in, as plain data."""

    data: dict[str, Any]
    """The merged document (keys as written, ``extends`` removed)."""
    origins: Origins
    """Rule path -> (file, line) of the document that wrote it."""
    sources: list[str]
    """Every file that contributed, bases first."""

    def locate(self, path: str) -> tuple[str, int | None]:
        """The file and line of ``path`` or its nearest written ancestor."""
        probe = path
        while True:
            found = self.origins.get(probe)
            if found is not None:
                return found
            if not probe:
                return (self.sources[-1], None)
            probe = parent_path(probe)


def resolve_policy(text: str, source: str, base_dir: Path | None) -> tuple[PolicySpec, Resolved]:
    """The validated policy ``text`` stands for, with its ``extends`` merged in."""
    resolved = resolve_text(text, source, base_dir)
    return validate_data(resolved.data, resolved.locate), resolved


def resolve_text(text: str, source: str, base_dir: Path | None, chain: tuple[str, ...] = ()) -> Resolved:
    """Read, validate and resolve one policy document and everything it extends."""
    doc = read_document(text, source)
    spec = validate_document(doc)
    data = spec.model_dump(by_alias=True, exclude_unset=True)
    own = Resolved(data, {path: (source, line) for path, line in doc.lines.items()}, [source])
    extends = data.pop("extends", None)
    if not extends:
        return own
    problems = Problems(own.locate)
    if len(chain) >= _MAX_DEPTH:
        problems.error(f"'extends' is nested more than {_MAX_DEPTH} levels deep", "extends")
        problems.raise_if_any()
    merged: Resolved | None = None
    for i, entry in enumerate(extends):
        found = _read_base(entry, base_dir, (*chain, source), problems, f"extends[{i}]")
        if found is None:
            continue
        base = resolve_text(*found, (*chain, source))
        merged = base if merged is None else _merge(merged, base)
    problems.raise_if_any()
    assert merged is not None
    return _merge(merged, own)


def _read_base(
    entry: str, base_dir: Path | None, chain: tuple[str, ...], problems: Problems, where: str
) -> tuple[str, str, Path | None] | None:
    if entry.startswith("tether:"):
        from tether.examples import example_policy_text  # a leaf package: no import cycle

        name = entry.removeprefix("tether:")
        if not name.replace("_", "").isalnum():
            problems.error(f"unknown shipped policy {entry!r}", where)
            return None
        try:
            return example_policy_text(name), entry, None
        except (FileNotFoundError, OSError):
            problems.error(f"unknown shipped policy {entry!r}", where)
            return None
    path = Path(entry)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    key = str(path.resolve())
    if key in chain or str(path) in chain:
        problems.error(f"'extends' forms a cycle through {entry!r}", where)
        return None
    try:
        text = read_policy_file(path)
    except PolicyError as exc:
        problems.error(f"cannot extend {entry!r}: {exc.message}", where)
        return None
    return text, key, path.parent


def _merge(earlier: Resolved, later: Resolved) -> Resolved:
    merger = _Merger(earlier, later)
    data = merger.policy(earlier.data, later.data)
    merger.problems.raise_if_any()
    return Resolved(data, merger.origins, [*earlier.sources, *(s for s in later.sources if s not in earlier.sources)])


_UNSET = object()


class _Merger:
    """One ``restrict(earlier, later)`` step."""

    def __init__(self, earlier: Resolved, later: Resolved) -> None:
        self.earlier = earlier
        self.later = later
        self.origins: Origins = dict(earlier.origins)
        self.problems = Problems(later.locate)

    # -- bookkeeping -------------------------------------------------------------------

    def _take(self, later_path: str, merged_path: str) -> None:
        """Record that the later document's subtree at ``later_path`` now sits at ``merged_path``."""
        for path, origin in self.later.origins.items():
            if path == later_path or path.startswith((later_path + ".", later_path + "[")):
                self.origins[merged_path + path[len(later_path) :]] = origin

    def _move_earlier(self, old_path: str, new_path: str) -> None:
        moved = {p: o for p, o in self.origins.items() if p == old_path or p.startswith((old_path + ".", old_path + "["))}
        for p, o in moved.items():
            del self.origins[p]
            self.origins[new_path + p[len(old_path) :]] = o

    def _loosens(self, path: str, what: str) -> None:
        self.problems.error(f"{what}; a policy that extends another may only add restrictions", path)

    def _concat(self, a: list[Any] | None, b: list[Any] | None, path: str) -> list[Any] | None:
        if not b:
            return a
        a = list(a or [])
        for i in range(len(b)):
            self._take(f"{path}[{i}]", f"{path}[{len(a) + i}]")
        return a + list(b)

    # -- the document ------------------------------------------------------------------

    def policy(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for key in ("tether", "name", "description"):
            if key in b:
                out[key] = b[key]
                self._take(key, key)
        if "default" in b:
            if b["default"] == "ask" and a.get("default", "deny") == "deny":
                self._loosens("default", "'default: ask' would let tools no policy names run after approval")
            out["default"] = "deny" if "deny" in (b["default"], a.get("default", "deny")) else "ask"
        for key in ("home", "workdir"):
            if key in b:
                if key in a and a[key] != b[key]:
                    self._loosens(key, f"{key!r} is set to {a[key]!r} by a base; it cannot be changed")
                out[key] = b[key]
                self._take(key, key)
        if "lexical_paths" in b:
            if b["lexical_paths"] and not a.get("lexical_paths"):
                self._loosens("lexical_paths", "'lexical_paths: true' would let '..' through path matchers that a base refuses it in")
            out["lexical_paths"] = bool(b["lexical_paths"]) and bool(a.get("lexical_paths"))
            self._take("lexical_paths", "lexical_paths")
        if "constants" in b:
            new = [c for c in b["constants"] if c not in a.get("constants", [])]
            if new:
                self._loosens("constants", f"constants {new!r} would make their values trusted")
        for key in ("limits", "budgets", "checkin"):
            if key in b:
                out[key] = self._smaller_numbers(a.get(key) or {}, b[key], key, _LIMIT_DEFAULTS.get(key, {}))
        if "principal_budgets" in b:
            out["principal_budgets"] = self._principal_budgets(a.get("principal_budgets") or {}, b["principal_budgets"] or {})
        if "approval_timeout_s" in b:
            out["approval_timeout_s"] = self._smaller(a.get("approval_timeout_s", 300.0), b["approval_timeout_s"], "approval_timeout_s")
        for key in ("rates", "ask", "deny"):
            merged = self._concat(a.get(key), b.get(key), key)
            if merged is not None:
                out[key] = merged
        if "defaults" in b:
            out["defaults"] = self._defaults(a.get("defaults") or {}, b["defaults"])
        for key, strict in (("readers", {"outside": "deny", "context": True}), ("outflow", {"on_trace": "deny"})):
            if key in b:
                later = dict(b[key] or {})
                limit = later.pop("max_short_chars", _UNSET)
                out[key] = self._stricter(a.get(key) or {}, later, key, strict)
                if limit is not _UNSET:
                    earlier = (a.get(key) or {}).get("max_short_chars", 4096)
                    if limit is None or (earlier is not None and limit > earlier):
                        self._loosens(f"{key}.max_short_chars", f"{limit!r} is looser than the base's {earlier!r}")
                    else:
                        out[key]["max_short_chars"] = limit
                        self._take(f"{key}.max_short_chars", f"{key}.max_short_chars")
        if "intent" in b:
            out["intent"] = [*a.get("intent", []), *(g for g in b["intent"] if g not in a.get("intent", []))]
            self._take("intent", "intent")
        if "plans" in b:
            plans = dict(a.get("plans") or {})
            outside = (b["plans"] or {}).get("outside")
            if outside is not None:
                if outside == "ask" and plans.get("outside") == "deny":
                    self._loosens("plans.outside", "a base denies writes outside the approved plans")
                else:
                    plans["outside"] = outside
                    self._take("plans.outside", "plans.outside")
            out["plans"] = plans
        tools = dict(a.get("tools") or {})
        for name, tool in (b.get("tools") or {}).items():
            path = f"tools.{name}"
            if name in tools:
                tools[name] = self._tool(tools[name], tool, path, out)
            else:
                self._check_masking_defaults(tool, path, out, tool_level=None)
                tools[name] = tool
                self._take(path, path)
        if tools:
            out["tools"] = tools
        return out

    def _stricter(self, a: dict[str, Any], b: dict[str, Any], path: str, strict: dict[str, Any]) -> dict[str, Any]:
        """Settings with one strict value each (``deny``, ``True``): a later document may set it, never unset it."""
        out = dict(a)
        for key, value in b.items():
            if key in a and a[key] == strict.get(key) and value != a[key]:
                self._loosens(f"{path}.{key}", f"the base sets {a[key]!r}")
                continue
            out[key] = value
            self._take(f"{path}.{key}", f"{path}.{key}")
        return out

    def _principal_budgets(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        path = "principal_budgets"
        flat = {k: v for k, v in b.items() if k not in ("tool_calls", "rates")}
        out = self._smaller_numbers({k: v for k, v in a.items() if k not in ("tool_calls", "rates")}, flat, path, {})
        tools = dict(a.get("tool_calls") or {})
        for name, limit in (b.get("tool_calls") or {}).items():
            tools[name] = self._smaller(tools.get(name), limit, f"{path}.tool_calls.{name}")
        if tools:
            out["tool_calls"] = tools
        rates = self._concat(a.get("rates"), b.get("rates"), f"{path}.rates")
        if rates is not None:
            out["rates"] = rates
        return out

    def _smaller(self, a: float | None, b: float, path: str) -> float:
        if a is not None and b > a:
            self._loosens(path, f"{b!r} is larger than the base's {a!r}")
            return a
        self._take(path, path)
        return b

    def _smaller_numbers(self, a: dict[str, Any], b: dict[str, Any], path: str, defaults: dict[str, float]) -> dict[str, Any]:
        out = dict(a)
        for key, value in b.items():
            out[key] = self._smaller(a.get(key, defaults.get(key)), value, f"{path}.{key}")
        return out

    def _defaults(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for effect, entry in b.items():
            path = f"defaults.{effect}.flow"
            mine = dict(out.get(effect) or {})
            mine["flow"] = self._flows(mine.get("flow"), (entry or {}).get("flow"), path)
            if mine["flow"] is None:
                del mine["flow"]
            out[effect] = mine
        return out

    # -- tools -------------------------------------------------------------------------

    def _tool(self, a: dict[str, Any], b: dict[str, Any], path: str, policy: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        if "description" in b:
            out["description"] = b["description"]
            self._take(f"{path}.description", f"{path}.description")
        if "effect" in b:
            if b["effect"] == "read" and a.get("effect") == "write":
                self._loosens(f"{path}.effect", "a write tool cannot become a read tool")
            else:
                out["effect"] = b["effect"]
                self._take(f"{path}.effect", f"{path}.effect")
        if "write_when" in b:
            if "write_when" in a:
                self._move_earlier(f"{path}.write_when", f"{path}.write_when.any[0]")
                self._take(f"{path}.write_when", f"{path}.write_when.any[1]")
                out["write_when"] = {"any": [a["write_when"], b["write_when"]]}
            else:
                out["write_when"] = b["write_when"]
                self._take(f"{path}.write_when", f"{path}.write_when")
        if b.get("output") == "trusted" and a.get("output", "untrusted") == "untrusted":
            self._loosens(f"{path}.output", "an untrusted output cannot become trusted")
        elif "output" in b:
            out["output"] = b["output"]
            self._take(f"{path}.output", f"{path}.output")
        if "output_tags" in b:
            out["output_tags"] = sorted(set(a.get("output_tags", [])) | set(b["output_tags"]))
            self._take(f"{path}.output_tags", f"{path}.output_tags")
        for i, lab in enumerate(b.get("labels", [])):
            if lab.get("integrity") == "trusted" or lab.get("remove_tags"):
                self._loosens(f"{path}.labels[{i}]", "a label entry that lowers the output's label")
        for key in ("labels", "deny", "ask"):
            merged = self._concat(a.get(key), b.get(key), f"{path}.{key}")
            if merged is not None:
                out[key] = merged
        if b.get("additional_args") == "allow" and a.get("additional_args", "deny") == "deny":
            self._loosens(f"{path}.additional_args", "undeclared arguments are denied by a base")
        elif "additional_args" in b:
            out["additional_args"] = b["additional_args"]
            self._take(f"{path}.additional_args", f"{path}.additional_args")
        if "budget" in b:
            out["budget"] = self._smaller_numbers(a.get("budget") or {}, b["budget"], f"{path}.budget", {})
        if "intent" in b:
            if b["intent"] == "any" and a.get("intent") == "required":
                self._loosens(f"{path}.intent", "a base requires the task's intent for this tool")
            else:
                out["intent"] = b["intent"]
                self._take(f"{path}.intent", f"{path}.intent")
        if "spend" in b:
            if "spend" in a and a["spend"] != b["spend"]:
                self._loosens(f"{path}.spend", f"the base counts {a['spend']!r} as the spend")
            out["spend"] = b["spend"]
            self._take(f"{path}.spend", f"{path}.spend")
        if "output_readers" in b:
            earlier = a.get("output_readers")
            if earlier is not None and not set(b["output_readers"] or ()) <= set(earlier):
                self._loosens(f"{path}.output_readers", "more reader fields would let more principals read the output")
            else:
                out["output_readers"] = b["output_readers"]
                self._take(f"{path}.output_readers", f"{path}.output_readers")
        if "recipients" in b:
            out["recipients"] = list(dict.fromkeys([*a.get("recipients", []), *b["recipients"]]))
            self._take(f"{path}.recipients", f"{path}.recipients")
        self._check_masking_defaults(b, path, policy, tool_level=a.get("flow"))
        if "flow" in b:
            out["flow"] = self._flows(a.get("flow"), b["flow"], f"{path}.flow")
        args = dict(a.get("args") or {})
        for name, spec in (b.get("args") or {}).items():
            arg_path = f"{path}.args.{name}"
            if name in args:
                args[name] = self._arg(args[name], spec, arg_path)
            elif a.get("additional_args", "deny") == "deny":
                self._loosens(arg_path, f"the base's tool does not accept argument {name!r}")
            else:
                args[name] = spec
                self._take(arg_path, arg_path)
        if args:
            out["args"] = args
        return out

    def _check_masking_defaults(self, tool: dict[str, Any], path: str, policy: dict[str, Any], tool_level: Any) -> None:
        """A later document's own flow rules replace defaults of earlier documents for the
        components they state; that is allowed only when the replacement is as strict."""
        earlier: list[dict[str, Any]] = []
        for effect in ("read", "write"):
            earlier += _as_list(((self.earlier.data.get("defaults") or {}).get(effect) or {}).get("flow"))
        tool_defaults = _as_list(tool_level)
        for rule_path, rule in _explicit_flows(tool, path):
            against = earlier if rule_path == f"{path}.flow" or rule_path.startswith(f"{path}.flow[") else earlier + tool_defaults
            for default in against:
                problem = _weaker(rule, default)
                if problem:
                    self._loosens(rule_path, f"this rule replaces a base's default flow rule but {problem}")
                    break

    # -- arguments ---------------------------------------------------------------------

    def _arg(self, a: dict[str, Any], b: dict[str, Any], path: str) -> dict[str, Any]:
        out = dict(a)
        for key, value in b.items():
            where = f"{path}.{key}"
            if key == "idn" and value and not a.get("idn") and any(k in a for k in ("url_host_in", "host_in", "email_domain_in")):
                self._loosens(where, "'idn: true' would accept internationalised names the base refuses")
                continue
            if key not in a or key == "description":
                if key == "properties" and a.get("additionalProperties") is False:
                    extra = [k for k in value if k not in (a.get("properties") or {})]
                    if extra:
                        self._loosens(where, f"the base allows no keys besides its own properties (not {extra!r})")
                        continue
                out[key] = value
                self._take(where, where)
                continue
            old = a[key]
            if key == "type":
                old_types, new_types = set(_as_list(old)), set(_as_list(value))
                if not new_types <= old_types:
                    self._loosens(where, f"type(s) {sorted(new_types - old_types)} are not allowed by the base")
                    continue
            elif key == "required":
                if old and not value:
                    self._loosens(where, "the base requires this argument")
                    continue
            elif key == "enum":
                extra = [v for v in value if not any(same_json(v, o) for o in old)]
                if extra:
                    self._loosens(where, f"enum value(s) {extra!r} are not allowed by the base")
                    continue
            elif key in ("const", "pattern"):
                if not same_json(old, value):
                    self._loosens(where, f"the base's {key} {old!r} cannot be replaced")
                continue
            elif key in _LOWER_BOUNDS or key in _UPPER_BOUNDS:
                looser = value < old if key in _LOWER_BOUNDS else value > old
                if looser:
                    self._loosens(where, f"{value!r} is looser than the base's {old!r}")
                    continue
            elif key == "additionalProperties":
                if value and not old:
                    self._loosens(where, "the base allows no keys besides its own properties")
                    continue
            elif key in ("path_under", "url_host_in", "host_in", "email_domain_in"):
                extra = [v for v in value if v not in old]
                if extra:
                    self._loosens(where, f"{extra!r} are not allowed by the base")
                    continue
            elif key == "items":
                out[key] = self._arg(old, value, where)
                continue
            elif key == "properties":
                props = dict(old)
                for name, spec in value.items():
                    sub = f"{where}.{name}"
                    if name in props:
                        props[name] = self._arg(props[name], spec, sub)
                    else:
                        props[name] = spec
                        self._take(sub, sub)
                out[key] = props
                continue
            elif key == "flow":
                out[key] = self._flows(old, value, where)
                continue
            out[key] = value
            self._take(where, where)
        return out

    def _flows(self, a: Any, b: Any, path: str) -> Any:
        old, new = _as_list(a), _as_list(b)
        if not new:
            return a
        if not old:
            self._take(path, path)
            return b
        if not isinstance(a, list):
            self._move_earlier(path, f"{path}[0]")
        if isinstance(b, list):
            for i in range(len(new)):
                self._take(f"{path}[{i}]", f"{path}[{len(old) + i}]")
        else:
            self._take(path, f"{path}[{len(old)}]")
        return old + new


_LOWER_BOUNDS = {"minLength", "minItems", "minimum", "exclusiveMinimum"}
_UPPER_BOUNDS = {"maxLength", "maxItems", "maximum", "exclusiveMaximum"}
_LIMIT_DEFAULTS: dict[str, dict[str, float]] = {"limits": {"max_arg_bytes": 1 << 20, "max_depth": 32}}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _explicit_flows(tool: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every flow rule a tool document writes (tool level and argument positions), with its path."""
    out: list[tuple[str, dict[str, Any]]] = []

    def rules(value: Any, where: str) -> None:
        if isinstance(value, list):
            out.extend((f"{where}[{i}]", r) for i, r in enumerate(value))
        elif isinstance(value, dict):
            out.append((where, value))

    def walk(spec: dict[str, Any], where: str) -> None:
        rules(spec.get("flow"), f"{where}.flow")
        if isinstance(spec.get("items"), dict):
            walk(spec["items"], f"{where}.items")
        for name, sub in (spec.get("properties") or {}).items():
            walk(sub, f"{where}.properties.{name}")

    rules(tool.get("flow"), f"{path}.flow")
    for name, spec in (tool.get("args") or {}).items():
        walk(spec, f"{path}.args.{name}")
    return out


def _weaker(rule: dict[str, Any], default: dict[str, Any]) -> str | None:
    """Why ``rule``, replacing ``default`` for the components it states, would be weaker; None if it is not."""
    masks_require = "require" in rule and "require" in default
    masks_forbid = "forbid" in rule and "forbid" in default
    if not (masks_require or masks_forbid):
        return None
    if rule.get("unless") is not None and rule.get("unless") != default.get("unless"):
        return "it has an 'unless' the default does not"
    for key in ("on_violation", "on_inherited"):
        mine = rule.get(key) or rule.get("on_violation", "deny")
        theirs = default.get(key) or default.get("on_violation", "deny")
        if _VERDICT_RANK[mine] < _VERDICT_RANK[theirs]:
            return f"its {key} is {mine!r} where the default says {theirs!r}"
    if masks_require and default["require"] == "trusted" and rule["require"] != "trusted":
        return "it does not require trusted values"
    if masks_forbid and not set(default["forbid"]) <= set(rule["forbid"]):
        return f"it does not forbid {sorted(set(default['forbid']) - set(rule['forbid']))}"
    return None
