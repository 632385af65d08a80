"""Who may read what: readers taken from a tool's output, and writes whose recipients fall outside them.

**Readers of an output.** A tool whose policy names ``output_readers`` (fields of its output: a
file's ``owner`` and ``shared_with``, an email's ``sender`` and ``recipients``) gets an output label
whose readers are the principals those fields hold, in canonical form
(:mod:`tether.flow._principals`). A structured output (a ``dict`` or ``list`` given to
``record_result``) is read as it is; a text output is parsed as JSON, else as YAML (the form
AgentDojo writes, with ``yaml.safe_dump``). Never from the flattened ``key: value`` text Tether
indexes for a structured output: a value with a line break could forge a field there. (A policy
replay relabels from the log's text, so for a structured output it reads that flattened text.) A
field's value may be a principal, a list of them or an object whose keys are principals (a sharing
map ``{address: permission}``). An output that is a list is a list of records: the output's readers
are those allowed to read *every* record (the intersection), because the label belongs to the
whole text and a value found in it may come from any record (conservative: a value from one
record may cost an ask for a reader of that record only). A record with none of the fields,
an output that is neither, and an output too large to parse name nobody: its readers are the
empty set (fail closed), and so are an error output's (its text is not the records).

**Recipients.** A tool lists the arguments that name whom it sends data to (``recipients``).
Every recipient must be allowed to read every value the call carries in its other arguments:
a value traced to sources with readers carries them (a value found in several sources gets the
intersection, like tags); a value found nowhere carries the context's readers, checked only when
the policy says ``readers.context: true`` (everything the session read, which after a few emails
is almost nobody). A recipient named by the user (found in the task or a policy constant) is
allowed: the user asked for the data to go there. A recipient with no canonical form (a display
name, an invisible character, a full-width letter) is outside every reader set. The verdict is
``readers.outside`` (ask by default).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import yaml

from tether._decision import Reason
from tether._json import output_text
from tether.flow import Label, canonical_principal, canonical_readers, label, walk_leaves
from tether.monitor._view import CheckView, Leaf
from tether.policy import CompiledTool, Policy

MAX_PARSED = 4 << 20
"""Outputs longer than this (characters) are not parsed for readers: they name nobody."""
_MAX_NODES = 200_000  # values visited while collecting readers (aliases in YAML may repeat a node)
_SHOWN = 5
_MAX_DEPTH = 64  # nesting followed while collecting readers; deeper: the output names nobody
_CACHED_TEXT = 64 * 1024  # texts up to this length have their readers cached (256 of them: 16 MB at most)

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def with_readers(base: Label, tool: CompiledTool, text: str, *, error: bool, data: Any = None) -> Label:
    """``base`` with the readers ``tool``'s output names (unchanged when the tool names none): read from
    ``data``, the structured output, when the caller has it, else parsed from ``text``."""
    paths = tool.output_readers
    if paths is None:
        return base
    readers: frozenset[str] = frozenset() if error else output_readers(text if data is None else data, paths)
    return base.join(label("trusted", (), readers))


def output_readers(output: Any, paths: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    """The principals allowed to read every record of ``output`` (structured, or text parsed as JSON
    or YAML; module docstring)."""
    if isinstance(output, str):
        return _text_readers(output, paths) if len(output) <= _CACHED_TEXT else _readers(_parse(output), paths)
    return _readers(output, paths)


@functools.lru_cache(maxsize=256)
def _text_readers(text: str, paths: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    """Readers of a text output (a pure function of the text: agents read the same outputs again)."""
    return _readers(_parse(text), paths)


def _readers(data: Any, paths: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    if isinstance(data, dict):
        records: list[Any] = [data]
    elif isinstance(data, list):
        records = data
    else:
        return frozenset()
    budget = [_MAX_NODES]
    result: frozenset[str] | None = None
    for record in records:
        found: list[object] = []
        if isinstance(record, dict):
            for path in paths:
                _collect(record, path, found, budget)
        mine = canonical_readers(found)
        result = mine if result is None else result & mine
        if budget[0] <= 0:
            return frozenset()
        if not result:
            break
    return result if result is not None else frozenset()


RecordSpan = tuple[int, int, frozenset[str]]
"""One record of a list output: ``text[start:end]`` is its text, and who may read it."""

MAX_RECORDS = 4096
"""Records of one output that get readers of their own; past that the output's readers apply to all."""


def record_spans(tool: CompiledTool, text: str, *, error: bool, data: Any = None) -> tuple[RecordSpan, ...]:
    """Where each record of a list output lies in ``text`` and who may read it (per-record readers).

    Empty when the tool names no reader fields, the output is an error or no list of at least
    two records with different readers, or any record cannot be placed *exactly*: a structured
    output's records must be the consecutive blocks of its flattened text; a JSON array's records
    are the spans its decoder consumed; a YAML block sequence is cut at its top-level ``-`` lines
    and each piece must parse back to exactly its record. An empty result means the output's
    readers (those allowed to read every record) apply to every value in it (fail closed).
    """
    paths = tool.output_readers
    if paths is None or error or len(text) > MAX_PARSED:
        return ()
    if data is not None:
        placed = _structured_spans(text, data)
    elif len(text) <= _CACHED_TEXT:
        placed = _text_spans_cached(text)
    else:
        placed = _text_spans(text)
    if placed is None or not 2 <= len(placed) <= MAX_RECORDS:
        return ()
    spans = tuple((start, end, _readers(record, paths) if isinstance(record, dict) else frozenset()) for start, end, record in placed)
    return spans if len({readers for _, _, readers in spans}) > 1 else ()


_Placed = list[tuple[int, int, Any]]


def _structured_spans(text: str, data: Any) -> _Placed | None:
    """A structured list output's records, placed in its flattened text (``tether._json.output_text``)."""
    if not isinstance(data, list | tuple) or len(data) > MAX_RECORDS:
        return None
    out: _Placed = []
    at = 0
    for i, record in enumerate(data):
        block = output_text([record])
        if i:
            if not text.startswith("\n", at):
                return None
            at += 1
        if not text.startswith(block, at):
            return None  # the text is not the records' blocks in order (cleaned, capped): cannot place them
        out.append((at, at + len(block), record))
        at += len(block)
    return out if at == len(text) else None


@functools.lru_cache(maxsize=256)
def _text_spans_cached(text: str) -> _Placed | None:
    return _text_spans(text)


def _text_spans(text: str) -> _Placed | None:
    try:
        return _json_spans(text) if text.lstrip(_JSON_SPACE)[:1] == "[" else _yaml_spans(text)
    except (ValueError, RecursionError, TypeError, yaml.YAMLError):
        return None


_JSON_SPACE = " \t\n\r"
_SPACES = re.compile(r"[ \t\n\r]*")


def _json_spans(text: str) -> _Placed | None:
    """The items of a JSON array and the exact spans the decoder read them from."""
    decoder = json.JSONDecoder()
    skip = _SPACES.match
    at = _end(skip(text, 0)) + 1  # past the "["
    out: _Placed = []
    while True:
        at = _end(skip(text, at))
        if not out and text.startswith("]", at):
            break
        record, end = decoder.raw_decode(text, at)
        out.append((at, end, record))
        at = _end(skip(text, end))
        if text.startswith(",", at) and len(out) < MAX_RECORDS:
            at += 1
            continue
        if text.startswith("]", at):
            break
        return None
    return out if _end(skip(text, at + 1)) == len(text) else None


def _end(match: re.Match[str] | None) -> int:
    assert match is not None  # a pattern of optional characters always matches
    return match.end()


def _yaml_spans(text: str) -> _Placed | None:
    """The items of a YAML block sequence written at the left margin (``yaml.safe_dump`` of a list),
    cut at each line that starts an item, each piece checked to parse back to exactly its item."""
    if not text.startswith("- "):
        return None  # (a bare "-" line starts Tether's flattened text of a structured output: never parsed)
    whole = yaml.load(text, Loader=_Loader)
    if not isinstance(whole, list) or not 2 <= len(whole) <= MAX_RECORDS:
        return None
    starts = [0] + [i + 1 for i in _item_lines(text)]
    if len(starts) != len(whole):
        return None
    out: _Placed = []
    for start, end, record in zip(starts, [*starts[1:], len(text)], whole, strict=True):
        piece = yaml.load(text[start:end], Loader=_Loader)
        if piece != [record]:
            return None
        out.append((start, end, record))
    return out


def _item_lines(text: str) -> list[int]:
    """Positions of the line breaks followed by a top-level item (``- ``, or a bare ``-``: then the
    pieces cannot match the items and nothing is placed)."""
    out: list[int] = []
    at = text.find("\n-")
    while at != -1:
        after = text[at + 2 : at + 3]
        if after in ("", " ", "\n"):
            out.append(at)
        at = text.find("\n-", at + 1)
    return out


def _parse(text: str) -> Any:
    if len(text) > MAX_PARSED:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        return None  # nested past what Python parses: names nobody
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_Loader)  # a safe loader (CSafeLoader or SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return None


def _collect(value: Any, path: tuple[str, ...], out: list[object], budget: list[int], depth: int = 0) -> None:
    budget[0] -= 1
    if budget[0] <= 0 or depth > _MAX_DEPTH:
        budget[0] = 0  # too much to read: the caller names nobody
        return
    if not path:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for item in value:
                _collect(item, path, out, budget, depth + 1)
        elif isinstance(value, dict):
            out.extend(k for k in value if isinstance(k, str))  # a sharing map: its keys are the readers
        return
    if isinstance(value, dict):
        if path[0] in value:
            _collect(value[path[0]], path[1:], out, budget, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _collect(item, path, out, budget, depth + 1)


def check_readers(
    policy: Policy, view: CheckView, tool: CompiledTool, args: dict[str, Any], asks: list[Reason], denials: list[Reason]
) -> None:
    """Append a reason when a recipient of this write may not read data the call carries."""
    if not tool.recipients:
        return
    settings = policy.spec.readers
    context = view.context.readers
    if context is None and not _any_restricted(view, tool, args):
        return
    recipients: list[tuple[str, str, str | None, bool]] = []  # (arg, shown, canonical, named by the user)
    for name in tool.recipients:
        value = args.get(name)
        if value is None:
            continue
        raw: list[tuple[str, Any]] = []
        walk_leaves(value, name, raw)
        for path, item in raw:
            if item is None or isinstance(item, bool):
                continue
            leaf = view.leaf(path, item)
            shown = f"a recipient (value withheld: it carries {', '.join(sorted(leaf.label.tags))})" if leaf.label.tags else _short(item)
            recipients.append((path, shown, canonical_principal(item), leaf.pinned))
    if not recipients:
        return
    for data in _data_leaves(view, tool, args):
        readers = data.label.readers
        if readers is None or (data.inherited and not settings.context):
            continue
        outside = [(path, shown) for path, shown, who, named in recipients if not named and (who is None or who not in readers)]
        if not outside:
            continue
        where = "the session's context (everything it read)" if data.inherited else f"{data.path!r}"
        names = ", ".join(shown for _, shown in outside[:_SHOWN]) + (f" and {len(outside) - _SHOWN} more" if len(outside) > _SHOWN else "")
        allowed = ", ".join(sorted(readers)[:_SHOWN]) + (f" and {len(readers) - _SHOWN} more" if len(readers) > _SHOWN else "")
        if data.label.tags:
            allowed = f"{len(readers)} principal(s) (withheld: the data carries {', '.join(sorted(data.label.tags))})"
        message = (
            f"{names} may not read the data in {where}: its sources allow only {allowed or 'nobody'}"
            f" (data from {', '.join(data.sources[:4]) or 'no recorded source'})"
        )
        reason = Reason("flow", "readers.outside", message, arg=outside[0][0], sources=data.sources)
        (asks if settings.outside == "ask" else denials).append(reason)
        return  # one reason names the problem; the human sees the whole call


def _any_restricted(view: CheckView, tool: CompiledTool, args: dict[str, Any]) -> bool:
    return any(leaf.label.readers is not None for leaf in _data_leaves(view, tool, args))


def _data_leaves(view: CheckView, tool: CompiledTool, args: dict[str, Any]) -> list[Leaf]:
    """The leaves of every argument but the recipients (what the call sends); an argument whose
    values the policy lists (``enum``, ``const``: a permission, a mode) sends a choice, not data."""
    out: list[Leaf] = []
    for name, value in args.items():
        spec = tool.args.get(name)
        if name in tool.recipients or value is None or (spec is not None and (spec.enum is not None or spec.has_const)):
            continue
        out += [leaf for leaf in view.leaves(name) if leaf.value is not None and not isinstance(leaf.value, bool)]
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
