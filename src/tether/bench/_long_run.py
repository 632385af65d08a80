"""A person's load over many tasks: every user task of a suite as one principal's sessions, in order.

A single episode rarely asks twice about the same value, so approving and remembering within
one session spares little. A person overseeing one user's agent sees the same recipients,
accounts and links come back task after task: here every user task of a suite runs, in the
suite's order, as a session of one principal in one store, with the oracle agent and the
careful human; once plainly, once approving and remembering at the principal's scope (each
endorsement for seven days). The difference is the asks endorsements spared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.bench._agents import EndorsingTaskApprover, OracleAgent, TaskApprover
from tether.bench._episodes import BenchContext
from tether.bench._scripted import Step
from tether.session import Guard
from tether.store import SQLiteStore


@dataclass(frozen=True, slots=True)
class HumanLoad:
    """Asks a careful human answered over a suite's user tasks, with and without endorsements."""

    suite: str
    tasks: int
    asks_careful: int
    asks_endorsing: int
    completed_careful: int
    completed_endorsing: int

    @property
    def per_100(self) -> float | None:
        """Human decisions with endorsements per 100 without."""
        return round(100 * self.asks_endorsing / self.asks_careful, 1) if self.asks_careful else None

    def to_json(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "tasks": self.tasks,
            "asks_careful": self.asks_careful,
            "asks_endorsing": self.asks_endorsing,
            "human_decisions_per_100_asks_endorsing": self.per_100,
            "tasks_completed_careful": self.completed_careful,
            "tasks_completed_endorsing": self.completed_endorsing,
        }


def human_load(ctx: BenchContext, suite: str) -> HumanLoad:
    """Run every user task of ``suite`` as one principal's sessions, with and without approve-and-remember."""
    asks: dict[bool, int] = {}
    completed: dict[bool, int] = {}
    tasks = list(ctx.data(suite).suite.user_tasks)
    for endorse in (False, True):
        guard = Guard(ctx.policy(suite), SQLiteStore(":memory:"))
        asks[endorse] = completed[endorse] = 0
        for task_id in tasks:
            pair = ctx.pair(suite, task_id, None)
            env = pair.fresh_environment()
            runtime = ctx.runtime(suite)

            def execute(tool: str, args: dict[str, Any], env: Any = env, runtime: Any = runtime) -> tuple[str, bool]:
                output, error = runtime.run_function(env, tool, args)
                return (error, True) if error is not None else (ctx.output_text(output), False)

            steps = [Step(c.function, dict(c.args)) for c in pair.ground_truth]
            calls = [(s.tool, s.args) for s in steps]
            approver = EndorsingTaskApprover(calls, scope="principal") if endorse else TaskApprover(calls)
            session = guard.start_session(pair.user_task.PROMPT, principal=f"user-of-{suite}")
            transcript = OracleAgent(steps).run(session, execute, approver)
            session.end()
            asks[endorse] += transcript.asks
            completed[endorse] += transcript.task_complete
    return HumanLoad(suite, len(tasks), asks[False], asks[True], completed[False], completed[True])
