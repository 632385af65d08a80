"""A realistic planner: the plan a planner model could declare before it reads untrusted data.

The perfect planner of ``--plans perfect`` names every write of the task's ground truth with all
its argument values, values a real planner could often learn only by reading (a bill's IBAN, an
email's id). This planner names only what it can know when it must plan:

* **when**: as late as the guard still approves a plan without a human, i.e. just before the
  agent's first step that may read untrusted data (a tool whose policy output label is untrusted,
  or may become so by a ``labels`` rule; an unknown tool) or once the session's context is
  untrusted anyway. Until then the agent may only have read trusted outputs.
* **which writes**: the write tools of the task's ground truth (the tool *names*). Choosing the
  tools a task needs from its prompt and the tool list is the part a planner model does well;
  the values are what the perfect planner got for free. (For a task whose writes are spelled out
  only in data the agent reads, "do what the file says", a real planner could not name the tools
  either; this planner still does, so its figures bound a real planner's from above on such tasks.)
* **which values**: an argument is named only when every scalar in its value occurs literally,
  as a whole token sequence after Tether's normalisation, in the task's prompt or in a trusted
  output read before planning (an IBAN, an amount in one of its written forms, an email address,
  a date, a file name). Every other argument is left open (booleans and objects too: they are
  choices or structures, not copied text).

An open argument gains nothing from the plan: a write inside the plan takes only the *named*
values as trusted (``tether.monitor`` ``plan_cover``); an untrusted value in an open argument is
checked by the flow rules as in any call. What the plan does give an open argument's call is the
task's intent: the write kind was planned, so intent rules do not ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.bench._scripted import Step
from tether.flow import contains_word, normalize, number_forms, occurs_in
from tether.policy import Policy


class RealisticPlanner:
    """Declares the task's write tools with the values the prompt (and trusted reads) spell out."""

    def __init__(self, policy: Policy, prompt: str, writes: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.policy = policy
        self.prompt = prompt
        """The user task's text: what the planner is told."""
        self.writes = [(tool, dict(args)) for tool, args in writes if self._is_write(tool, args)]
        """The task's writes, in order (the tools are named; values only when known)."""

    def _is_write(self, tool: str, args: dict[str, Any]) -> bool:
        compiled = self.policy.tools.get(tool)
        return compiled is None or compiled.effect_of(dict(args)) == "write"

    def due(self, step: Step) -> bool:
        """Whether the plan must be declared before ``step``: it may read untrusted data."""
        tool = self.policy.tools.get(step.tool)
        if tool is None or tool.output_label.untrusted:
            return True
        return any(rule.integrity == "untrusted" for rule in tool.label_rules)

    def plan(self, read: Sequence[str]) -> list[dict[str, Any]]:
        """The plan, given the (trusted) output texts read so far."""
        texts = [normalize(self.prompt), *(normalize(text) for text in read)]
        plan: list[dict[str, Any]] = []
        for tool, args in self.writes:
            named = {name: value for name, value in args.items() if value is not None and known(value, texts)}
            entry = {"tool": tool, "args": named}
            if entry not in plan:
                plan.append(entry)
        return plan


def known(value: Any, texts: Sequence[str]) -> bool:
    """Whether every scalar of ``value`` occurs literally in one of ``texts`` (normalised)."""
    if isinstance(value, list | tuple):
        return bool(value) and all(known(v, texts) for v in value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if isinstance(value, str):
        norm = normalize(value)
        return bool(norm) and any(occurs_in(text, norm) for text in texts)
    return any(contains_word(text, form, number=True) for form in number_forms(value) for text in texts)
