"""Intent from the task: a write whose targets the user's own task names carries the task's intent.

An intent rule asks about a write made after untrusted data was read because the decision to
make it may have been injected (the confused deputy). When the policy lists the arguments that
name what a write acts on (``intent_from_task``: a message's recipients, a channel) and the
task text names every value in them, the user chose those targets: the task is the intent, as a
plan naming those values would be. Two limits keep it from becoming a way around intent:

* only the task counts (not policy constants, not any tool output, however trusted): the
  user's words, matched as ``from_task`` matches them (whole tokens after normalisation);
* each named value carries intent for one write of the tool: every write of such a tool that
  ran (before or after untrusted data, allowed or approved) spends its target values, so an
  injected instruction cannot repeat the user's action on the same target without an ask.

Kept apart from the decision so the state fold can record spent targets without importing the
decision machinery (which reads the state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tether.flow import normalize
from tether.policy import canonical_value

MAX_SPENT_TARGETS = 4096
"""Spent target values a session remembers; past that, the task's words carry no more intent
(forgetting one would let a write act on it again without an ask)."""

_NOBODY = "-"
"""The target of a write whose target arguments are all absent or empty (it acts on no one)."""


def target_keys(tool: str, names: Iterable[str], args: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    """One key per value a write's target arguments hold (``tool``, argument, the value's normal
    form), and whether every value has a canonical form (``canonical_value``). A target without
    one (an object, a nested list, a boolean, a string with control or invisible characters) is
    never taken as named by the task, and is spent under its normal form when it has one."""
    keys: list[str] = []
    complete = True
    for name in names:
        value = args.get(name)
        if value is None:
            continue
        for item in value if isinstance(value, list) else (value,):
            canonical = None if isinstance(item, bool) else canonical_value(item)
            if canonical is None:
                complete = False
                if isinstance(item, str) and normalize(item):
                    canonical = "s:" + normalize(item)
                else:
                    continue
            keys.append(f"{tool}\x1f{name}\x1f{canonical}")
    if not keys and complete:
        keys.append(f"{tool}\x1f{_NOBODY}")
    return tuple(keys), complete


def target_values(names: Iterable[str], args: Mapping[str, Any]) -> list[Any]:
    """The values of a write's target arguments (lists flattened one level)."""
    out: list[Any] = []
    for name in names:
        value = args.get(name)
        if value is not None:
            out.extend(value if isinstance(value, list) else (value,))
    return out
