"""The label of a tool's output: what the policy says, then what the call and the session put into it.

The policy labels a tool's output (``output``, ``output_tags``, ``labels`` rules evaluated on
the call, and the readers its ``output_readers`` fields name: :mod:`tether.monitor._readers`). Error outputs are untrusted: their text comes from wherever the failure came from.
The rest (values the session sent out earlier and the call's own arguments, when the output
carries them) is the flow tracker's job: :meth:`tether.flow.FlowTracker.output_label`.
"""

from __future__ import annotations

from typing import Any

from tether.flow import UNTRUSTED, Label, label
from tether.monitor._readers import record_spans, with_readers
from tether.monitor._state import SessionState
from tether.monitor._view import CheckView
from tether.policy import CompiledTool, Policy


def result_label(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool, data: Any = None
) -> Label:
    """The label to record for ``text``, returned by ``tool_name`` called with ``args`` (``data``: the
    structured output ``text`` was written from, when there was one: readers are read from it)."""
    tool, tainted = _tainted(policy, state, tool_name, args, text, error=error)
    return tainted if tool is None else with_readers(tainted, tool, text, error=error, data=data)


RecordReaders = tuple[tuple[int, int, tuple[str, ...]], ...]
"""Per-record readers of an output, as ``ResultRecorded.records`` holds them."""


def result_labels(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool, data: Any = None
) -> tuple[Label, RecordReaders]:
    """:func:`result_label`, and the readers of each record of a list output whose records name
    different readers (``(start, end, readers)``; empty otherwise). A record's readers are those of
    the whole label with the record's own readers in place of every record's (the taint of values
    the output echoes, and the policy's label, apply to each record as to the whole)."""
    tool, tainted = _tainted(policy, state, tool_name, args, text, error=error)
    if tool is None:
        return tainted, ()
    whole = with_readers(tainted, tool, text, error=error, data=data)
    if whole.readers is None:
        return whole, ()
    records = record_spans(tool, text, error=error, data=data)
    return whole, tuple(
        (start, end, tuple(sorted(tainted.join(label("trusted", (), readers)).readers or ()))) for start, end, readers in records
    )


def _tainted(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool
) -> tuple[CompiledTool | None, Label]:
    """The policy's label of the output joined with what the flow tracker finds in ``text``
    (before readers); the tool's compiled spec, None for a tool the policy does not know."""
    tool = policy.tools.get(tool_name) if tool_name is not None else None
    if tool is None:
        return None, state.flow.output_label(UNTRUSTED, text, args)  # no declared names: every name is data
    view = CheckView(state, tool, args) if tool.label_rules and isinstance(args, dict) else None
    result = tool.policy_label(view)
    if error:
        result = result.join(UNTRUSTED)
    return tool, state.flow.output_label(result, text, args, tool.args)
