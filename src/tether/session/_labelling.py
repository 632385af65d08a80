"""The label of a tool's output: what the policy says, plus what the call put into it.

A tool's output is labelled by the policy (``output``, ``output_tags``, ``labels``).
But an output that *echoes* one of the call's own argument values (an error
message quoting a path, a search result quoting the query) carries that value
into a new source: left alone, an untrusted IBAN echoed by a trusted tool would
come back "found in trusted data", and a secret echoed by an untagged tool would
lose its tag. So when an argument value of at least ``MIN_GRAM_VALUE``
characters whose label is not below the policy's label appears in the output,
the output also gets that value's label. Error outputs are untrusted: their text
comes from wherever the failure came from.
"""

from __future__ import annotations

from typing import Any

from tether.flow._labels import UNTRUSTED, Label
from tether.flow._normalize import normalize
from tether.flow._provenance import MIN_GRAM_VALUE
from tether.policy._compiled import Policy
from tether.session._engine import CheckView
from tether.session._state import SessionState


def result_label(policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool) -> Label:
    """The label to record for ``text``, returned by ``tool_name`` called with ``args``."""
    tool = policy.tools.get(tool_name) if tool_name is not None else None
    if tool is None:
        return UNTRUSTED
    result = tool.output_label
    view = CheckView(state, tool, args) if isinstance(args, dict) else None
    if view is not None and tool.label_rules:
        for pred, lab in tool.label_rules:
            if pred(view):
                result = result.join(lab)
    if error:
        result = result.join(UNTRUSTED)
    if view is None:
        return result
    norm_text: str | None = None
    for name in args:
        for leaf in view.leaves(name):
            if not isinstance(leaf.value, str) or leaf.label <= result:
                continue
            norm_value = normalize(leaf.value)
            if len(norm_value) < MIN_GRAM_VALUE:
                continue
            if norm_text is None:
                norm_text = normalize(text)
            if norm_value in norm_text:
                result = result.join(leaf.label)
    return result
