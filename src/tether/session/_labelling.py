"""The label of a tool's output: what the policy says, plus what the call put into it.

A tool's output is labelled by the policy (``output``, ``output_tags``, ``labels``).
But an output that *echoes* one of the call's own argument values (an error
message quoting a path, a search result quoting the query) carries that value
into a new source: left alone, an untrusted IBAN echoed by a trusted tool would
come back "found in trusted data", and a secret echoed by an untagged tool would
lose its tag. So when an argument value of at least ``MIN_ECHO`` characters
(whole word under ``MIN_GRAM_VALUE``) whose label is not below the policy's label
appears in the output, the output also gets that value's label. The same holds
across calls: values the session wrote with write tools keep their labels when a
later output reads them back (``SessionState.written``). Error outputs are untrusted: their text
comes from wherever the failure came from.
"""

from __future__ import annotations

from typing import Any

from tether.flow._labels import UNTRUSTED, Label
from tether.flow._normalize import contains_word, normalize
from tether.flow._provenance import MIN_GRAM_VALUE
from tether.policy._compiled import Policy
from tether.session._engine import CheckView
from tether.session._state import SessionState

MIN_ECHO = 4
"""Shorter argument values are not traced into outputs (they occur everywhere); values under
``MIN_GRAM_VALUE`` characters must occur as a whole word."""


def result_label(policy: Policy, state: SessionState, tool_name: str | None, args: Any, text: str, *, error: bool) -> Label:
    """The label to record for ``text``, returned by ``tool_name`` called with ``args``."""
    tool = policy.tools.get(tool_name) if tool_name is not None else None
    if tool is None:
        return UNTRUSTED
    view = CheckView(state, tool, args) if isinstance(args, dict) else None
    result = tool.policy_label(view)
    if error:
        result = result.join(UNTRUSTED)
    norm_text: str | None = None
    # Values this session wrote into the world earlier (a standing order's subject, a file it
    # appended to) keep their labels when this output reads them back.
    for norm_value, lab in state.written:
        if lab <= result:
            continue
        if norm_text is None:
            norm_text = normalize(text)
        if norm_value in norm_text:
            result = result.join(lab)
    if view is None:
        return result
    for name in args:
        for leaf in view.leaves(name):
            if not isinstance(leaf.value, str) or leaf.label <= result:
                continue
            norm_value = normalize(leaf.value)
            if len(norm_value) < MIN_ECHO:
                continue
            if norm_text is None:
                norm_text = normalize(text)
            if norm_value in norm_text if len(norm_value) >= MIN_GRAM_VALUE else contains_word(norm_text, norm_value):
                result = result.join(leaf.label)
    return result
