"""Re-planning: one human decision for the rest of a task instead of one per write (``--plans realistic-replan``).

The realistic planner (:mod:`tether.bench._planner`) declares its plan before the first step
that may read untrusted data, with only the values it knows then. Later writes whose values came
from what it read (a bill's IBAN, an email's id) or were composed after it fall outside what
that plan named, and the guard asks about each of them. A re-planning agent does what a planner
model can do instead: when the guard answers ``ask`` to one of its writes, it does not put that
call to the human; it withdraws it (refuses its own request: logged as the agent's answer, which
can only deny) and declares **a new plan naming every write it still has to make**, with every
value it knows *now* (the write at hand with all its arguments; the later ones with the values
the prompt or anything it has read spells out, trusted or not). A plan declared after untrusted
data was read always asks, so the human decides once, for the rest of the task; then the agent
proposes the write again, and the guard decides it under the plan the human approved. A write
denied only for being outside every approved plan (``plans.outside: deny``) is re-planned the same
way (nothing to withdraw). The withdrawn check is logged like any call (it counts in a session's
call budget and rates): the price of asking the guard rather than guessing.

The agent uses only the public API: :meth:`tether.session.Gate.admit` without an approver (an
``ask`` comes back unanswered), :meth:`tether.session.Session.answer` to withdraw,
:meth:`Gate.admit_plan` to re-plan. No dry check is needed: the guard's own ``ask`` is the signal,
so endorsements, flow rules and intent rules are taken into account exactly.

Security does not rest on the agent: values a re-plan names count as trusted only once the human
approved the plan, having seen each of them; the careful human
(:class:`~tether.bench._agents.TaskApprover`) approves a plan only when every write in it is one
the task needs, with its values, exactly as it judges single calls. An agent that obeyed an
injection names the injected writes in its re-plan (they are among its remaining writes); the
human refuses the plan, and from then on the agent re-plans no more: every write is asked on its
own (or denied, per the policy's ``plans.outside``) as without re-planning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.bench._planner import RealisticPlanner, known
from tether.bench._scripted import Step
from tether.flow import normalize
from tether.policy import Policy


class Replanner:
    """The realistic planner's first plan, then a re-plan naming every remaining write instead of a write's ask."""

    def __init__(self, policy: Policy, prompt: str, writes: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.first = RealisticPlanner(policy, prompt, writes)
        """The plan declared before the first step that may read untrusted data."""
        self.policy = policy
        self.prompt = prompt
        """The user task's text: what the planner is told."""
        self.stopped = False
        """The agent re-plans no more (a re-plan was refused or left unanswered, or did not lift the
        ask it was declared for): each write is asked on its own, as without re-planning."""

    def due(self, step: Step) -> bool:
        """Whether the first plan must be declared before ``step`` (:meth:`RealisticPlanner.due`)."""
        return self.first.due(step)

    def plan(self, read: Sequence[str]) -> list[dict[str, Any]]:
        """The first plan (:meth:`RealisticPlanner.plan`)."""
        return self.first.plan(read)

    def is_write(self, step: Step) -> bool:
        """Whether the policy classes the step as a write (a tool it does not name counts as one)."""
        tool = self.policy.tools.get(step.tool)
        return tool is None or tool.effect_of(dict(step.args)) == "write"

    def settled(self, approved: bool) -> None:
        """Record the outcome of a re-plan: after a refusal the agent re-plans no more."""
        self.stopped = self.stopped or not approved

    def stop(self) -> None:
        """Re-plan no more: an approved re-plan did not let its write through (an ask no plan lifts),
        so a further one would cost the human a decision for nothing. Re-planning thus costs at most
        one decision more than asking write by write."""
        self.stopped = True

    def replan(self, remaining: Sequence[Step], read: Sequence[str]) -> list[dict[str, Any]]:
        """The re-plan: every remaining write; the first (the one at hand) with all its arguments,
        the others with the values the prompt or any output read so far spells out."""
        texts = [normalize(self.prompt), *(normalize(t) for t in read)]
        plan: list[dict[str, Any]] = []
        for i, step in enumerate(w for w in remaining if self.is_write(w)):
            args = {k: v for k, v in step.args.items() if v is not None and (i == 0 or known(v, texts))}
            entry = {"tool": step.tool, "args": args}
            if entry not in plan:
                plan.append(entry)
        return plan
