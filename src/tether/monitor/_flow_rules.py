"""Flow rules at decision time: which rules cover each leaf of the call, and what they find.

A flow rule written at a position (an argument, its ``items``, a property, at any
depth) covers every leaf under that position; rules are additive. A leaf's
defaults come after: the tool's ``flow`` applies the components (``require``,
``forbid``) that no covering rule states, and the policy's ``defaults.EFFECT.flow``
applies the components that neither states. A null leaf sends nothing and is
never checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tether._decision import Reason
from tether.flow import Label
from tether.monitor._view import CheckView, Leaf, top_arg
from tether.policy import CompiledArg, CompiledFlow, CompiledTool, DefaultFlows, Policy

_Rules = tuple[CompiledFlow, ...]


def check_flows(view: CheckView, tool: CompiledTool, args: dict[str, Any], asks: list[Reason], denials: list[Reason]) -> None:
    """Append a reason for every leaf that breaks a flow rule covering it."""
    context = view.context
    if not context.untrusted and not context.tags:
        # Every leaf's label is at most the context's (a source's label is joined into the
        # context when it is read), so nothing can be untrusted or tagged yet.
        return
    defaults = tool.defaults_for(view.effect)
    skip: dict[int, bool] = {}
    for name, value in args.items():
        spec = tool.args.get(name)
        if value is None and spec is not None:
            continue  # an absent argument sends nothing (an undeclared name is sent even with a null value)
        if spec is not None and spec.flows_below:
            for leaf, rules in _walk_leaves(view, name, value, spec, defaults):
                for flow in rules:
                    if _relevant(flow, context) and not _skipped(flow, view, skip):
                        _check_leaf(flow, leaf, context, asks, denials)
            continue
        own = spec.flows if spec is not None else ()
        rules = defaults.effective(own) if defaults is not None else own
        leaves: list[Leaf] | None = None
        for flow in rules:
            if not _relevant(flow, context) or _skipped(flow, view, skip):
                continue
            if leaves is None:
                leaves = view.leaves(name) if value is not None else []
                if spec is None:  # a name the tool does not declare is data the model chose: a leaf too
                    leaves = [view.leaf(f"{{{name}}}", name), *leaves]
            for leaf in leaves:
                _check_leaf(flow, leaf, context, asks, denials)


def check_outflow(
    policy: Policy, view: CheckView, tool: CompiledTool, args: dict[str, Any], asks: list[Reason], denials: list[Reason]
) -> None:
    """Append a reason when short pieces of this call, with those sent before through the same sink
    or through several, spell a run of confidential data (:mod:`tether.flow._outflow`)."""
    settings = policy.spec.outflow
    traces = view.outflow_traces(settings.max_short_chars)
    if not traces:
        return
    trace = traces[0]
    tags = ", ".join(sorted(trace.label.tags))
    how = "through several tools and arguments" if trace.across else f"through {trace.sink}"
    where = f"from {', '.join(trace.sources[:4]) or 'a forgotten source'}"
    if trace.volume:
        message = (
            f"{trace.volume} characters of short values derived from {tags} data ({where}) would have left "
            f"{how}, past the policy's limit of {settings.max_short_chars} (outflow.max_short_chars): "
            "a secret may be leaving in pieces; values withheld"
        )
    else:
        message = f"short values sent {how}, with this one, spell a run of {tags} data read earlier ({where}): a secret leaving in pieces; values withheld"
    verdict = settings.on_trace
    reason = Reason("flow", "outflow.on_trace", message, arg=top_arg(trace.path), sources=trace.sources)
    (asks if verdict == "ask" else denials).append(reason)


def _skipped(flow: CompiledFlow, view: CheckView, cache: dict[int, bool]) -> bool:
    """The rule's ``unless`` holds for this call (evaluated once per call)."""
    if flow.unless is None:
        return False
    found = cache.get(id(flow))
    if found is None:
        found = cache[id(flow)] = flow.unless(view)
    return found


def _check_leaf(flow: CompiledFlow, leaf: Leaf, context: Label, asks: list[Reason], denials: list[Reason]) -> None:
    if leaf.value is None:
        return  # null sends nothing
    problem = _problem(flow, leaf, context)
    if problem is not None:
        verdict = flow.on_inherited if leaf.inherited else flow.on_violation
        reason = Reason("flow", flow.rule, problem, arg=_where(leaf), sources=leaf.sources)
        (asks if verdict == "ask" else denials).append(reason)


def _relevant(flow: CompiledFlow, context: Label) -> bool:
    return (flow.require_trusted and context.untrusted) or bool(flow.forbid & context.tags)


def _problem(flow: CompiledFlow, leaf: Leaf, context: Label) -> str | None:
    lab = leaf.label
    if flow.require_trusted and lab.untrusted:
        if not leaf.inherited:
            return f"value of {_where(leaf)!r} ({_shown(leaf)}) appears only in untrusted data"
        return (
            f"value of {_where(leaf)!r} ({_shown(leaf)}) was found in no source, so it inherited the session's context "
            "label, and the session has read untrusted data"
        )
    bad = sorted(lab.tags & flow.forbid)
    if not bad:
        return None
    if not leaf.inherited:
        return f"value of {_where(leaf)!r} carries {', '.join(bad)} data, which may not flow here"
    return (
        f"value of {_where(leaf)!r} ({_shown(leaf)}) was found in no source, so it inherited {', '.join(bad)} "
        "from the session's context label (the session has read such data), which may not flow here"
    )


def _where(leaf: Leaf) -> str:
    """The leaf's path for a reason; for tagged data, only up to the first object key (a key is
    data the agent chose, and may be the secret itself; an undeclared argument name too)."""
    if not leaf.label.tags:
        return leaf.path
    head = leaf.path
    for cut in (".", "{"):
        head = head.split(cut, 1)[0]
    return head if head == leaf.path else head + "..."


def _shown(leaf: Leaf) -> str:
    """The value for a reason, unless it carries confidentiality tags: a reason is logged, shown to
    the agent and may be returned to whoever sent the request (an MCP server's sampling request),
    so it must not repeat tagged data."""
    if leaf.label.tags:
        return f"value withheld: it carries {', '.join(sorted(leaf.label.tags))}"
    return _short(leaf.value)


def _walk_leaves(view: CheckView, name: str, value: Any, spec: CompiledArg, defaults: DefaultFlows | None) -> Iterator[tuple[Leaf, _Rules]]:
    """Each leaf of an argument with flow rules below its top, with the rules covering it."""
    out: list[tuple[str, Any, _Rules]] = []
    _collect(value, name, spec, (), out)
    context = view.context
    checked = []
    for path, leaf_value, own in out:
        rules = defaults.effective(own) if defaults is not None else own
        if any(_relevant(r, context) for r in rules):
            checked.append((path, leaf_value, rules))
    if not checked:
        return
    known = {leaf.path: leaf for leaf in view.leaves(name)}
    for path, leaf_value, rules in checked:
        leaf = known.get(path)
        if leaf is None or leaf.value is not leaf_value:
            leaf = view.leaf(path, leaf_value)
        yield leaf, rules


def _collect(value: Any, path: str, spec: CompiledArg | None, covering: _Rules, out: list[tuple[str, Any, _Rules]]) -> None:
    # The same leaves as the session's walk: object keys are leaves of the object's position.
    if spec is not None and spec.flows:
        covering = covering + spec.flows
    if isinstance(value, dict):
        props = spec.properties if spec is not None else None
        for k, v in value.items():
            out.append((f"{path}{{{k}}}", k, covering))
            _collect(v, f"{path}.{k}", props.get(k) if props is not None and isinstance(k, str) else None, covering, out)
    elif isinstance(value, list | tuple):
        items = spec.items if spec is not None else None
        for i, v in enumerate(value):
            _collect(v, f"{path}[{i}]", items, covering, out)
    else:
        out.append((path, value, covering))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
