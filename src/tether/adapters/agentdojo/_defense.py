"""``TetherDefense``: Tether as an AgentDojo pipeline element, for runs with real LLMs.

Use it in place of AgentDojo's ``ToolsExecutor`` inside the tools loop::

    ToolsExecutionLoop([TetherDefense(guard), llm])

For every tool call of the last assistant message it asks the guard; allowed
calls run (and their outputs are recorded, so later calls are checked against
where their values came from), denied calls and unanswered asks do not run and
return an error message to the model. One Tether session per user query.

A call of ``declare_plan`` (``{"writes": [{"tool": ..., "args": {...}}]}``) is not a suite tool:
it declares the model's plan (``Session.declare_plan``; offer the model a function of that name
so it can call it) and is answered with the plan's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement  # type: ignore[import-untyped]
from agentdojo.agent_pipeline.tool_execution import tool_result_to_str  # type: ignore[import-untyped]
from agentdojo.functions_runtime import EmptyEnv, FunctionsRuntime  # type: ignore[import-untyped]
from agentdojo.types import ChatToolResultMessage, text_content_block_from_string  # type: ignore[import-untyped]

from tether._decision import ToolCall
from tether.approvals import Approver, AsyncApprover
from tether.session import Gate, Guard, Session

PLAN_TOOL_NAME = "declare_plan"
"""The function name through which the model declares its plan."""


class TetherDefense(BasePipelineElement):  # type: ignore[misc]
    """Executes the model's tool calls that the guard allows; the others get an error."""

    name = "tether"

    def __init__(self, guard: Guard, approver: Approver | AsyncApprover | None = None) -> None:
        self.guard = guard
        """The guard deciding every call."""
        self.approver = approver
        """Answers ``ask`` decisions (None: an ask is not done)."""
        self._sessions: dict[str, Session] = {}

    def session_for(self, query: str) -> Session:
        """The session of a user query (started on first use, with the query as trusted task)."""
        session = self._sessions.get(query)
        if session is None:
            session = self._sessions[query] = self.guard.start_session(query)
        return session

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Any = None,
        messages: Sequence[Any] = (),
        extra_args: dict[str, Any] | None = None,
    ) -> tuple[str, FunctionsRuntime, Any, Sequence[Any], dict[str, Any]]:
        """Check, run and record the tool calls of the last assistant message."""
        extra = extra_args if extra_args is not None else {}
        env = env if env is not None else EmptyEnv()
        if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["tool_calls"]:
            return query, runtime, env, messages, extra
        gate = Gate(self.session_for(query), self.approver)
        results = []
        for tool_call in messages[-1]["tool_calls"]:
            if tool_call.function == PLAN_TOOL_NAME:
                plan = gate.admit_plan(dict(tool_call.args).get("writes"))
                if plan.may_run:
                    results.append(self._message(tool_call, f"plan approved (id {plan.decision.call_id})", None))
                else:
                    results.append(self._message(tool_call, "", f"Tether did not approve this plan: {plan.decision.explain()}"))
                continue
            admission = gate.admit(ToolCall(tool_call.function, dict(tool_call.args)))
            if not admission.may_run:
                error = f"Tether blocked this call: {admission.decision.explain()}"
                results.append(self._message(tool_call, "", error))
                continue
            # AgentDojo's runtime reports a failing tool as an error string instead of raising.
            output, error = runtime.run_function(env, tool_call.function, tool_call.args)
            text = tool_result_to_str(output) if error is None else ""
            if error is None:
                gate.record(admission.decision.call_id, text)
            else:
                gate.record_error(admission.decision.call_id, error)
            results.append(self._message(tool_call, text, error))
        return query, runtime, env, [*messages, *results], extra

    @staticmethod
    def _message(tool_call: Any, content: str, error: str | None) -> Any:
        return ChatToolResultMessage(
            role="tool",
            content=[text_content_block_from_string(content)],
            tool_call_id=tool_call.id,
            tool_call=tool_call,
            error=error,
        )
