"""The label of a tool's output: what the policy says, then what the call and the session put into it.

The policy labels a tool's output (``output``, ``output_tags``, ``labels`` rules evaluated on
the call, and the readers its ``output_readers`` fields name: :mod:`tether.monitor._readers`). Error outputs are untrusted: their text comes from wherever the failure came from.
The rest (values the session sent out earlier and the call's own arguments, when the output
carries them) is the flow tracker's job: :meth:`tether.flow.FlowTracker.output_label`.
"""

from __future__ import annotations

from typing import Any

from tether.flow import UNTRUSTED, Label
from tether.monitor._readers import with_readers
from tether.monitor._state import SessionState
from tether.monitor._view import CheckView
from tether.policy import Policy


def result_label(
    policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool, data: Any = None
) -> Label:
    """The label to record for ``text``, returned by ``tool_name`` called with ``args`` (``data``: the
    structured output ``text`` was written from, when there was one: readers are read from it)."""
    tool = policy.tools.get(tool_name) if tool_name is not None else None
    if tool is None:
        return state.flow.output_label(UNTRUSTED, text, args)  # no declared names: every name is data
    view = CheckView(state, tool, args) if tool.label_rules and isinstance(args, dict) else None
    result = tool.policy_label(view)
    if error:
        result = result.join(UNTRUSTED)
    result = with_readers(result, tool, text, error=error, data=data)
    return state.flow.output_label(result, text, args, tool.args)
