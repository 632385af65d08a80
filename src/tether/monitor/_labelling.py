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
from tether.policy import Policy


def result_label(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool, data: Any = None
) -> Label:
    """The label to record for ``text``, returned by ``tool_name`` called with ``args`` (``data``: the
    structured output ``text`` was written from, when there was one: readers are read from it)."""
    return result_labels(policy, state, tool_name, args, text, error=error, data=data)[0]


RecordReaders = tuple[tuple[int, int, tuple[str, ...]], ...]
"""Per-record readers of an output, as ``ResultRecorded.records`` holds them."""


def result_labels(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool, data: Any = None
) -> tuple[Label, RecordReaders]:
    """:func:`result_label`, and the readers of each record of a list output whose records name
    different readers (``(start, end, readers)``; empty otherwise). A record's readers are those of
    the whole label with the record's own readers in place of every record's (the taint of values
    the output echoes, and the policy's label, apply to each record as to the whole)."""
    tool = policy.tools.get(tool_name) if tool_name is not None else None
    if tool is None:
        return state.flow.output_label(UNTRUSTED, text, args), ()  # no declared names: every name is data
    view = CheckView(state, tool, args) if tool.label_rules and isinstance(args, dict) else None
    result = tool.policy_label(view)
    if error:
        result = result.join(UNTRUSTED)
    tainted = state.flow.output_label(result, text, args, tool.args)
    whole = with_readers(tainted, tool, text, error=error, data=data)
    if whole.readers is None:
        return whole, ()
    records = record_spans(tool, text, error=error, data=data)
    return whole, tuple(
        (start, end, tuple(sorted(tainted.join(label("trusted", (), readers)).readers or ()))) for start, end, readers in records
    )
