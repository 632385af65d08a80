"""``tether run``: an agent loop over any OpenAI-compatible chat-completions server, every tool call
through the session's gate, the whole conversation in the session's log (so a run resumes exactly
where it stopped and never runs a tool call twice).

Needs ``httpx`` (``pip install 'tether-guard[agent]'``).
"""

from tether.agent._client import ChatClient, ModelConfig, ModelError, ModelReply, RawToolCall
from tether.agent._loop import DEFAULT_SYSTEM_PROMPT, RESULT_UNKNOWN, Agent, CallReport, RunResult
from tether.agent._scripted_server import ScriptedCall, ScriptedModelServer, Turn
from tether.agent._terminal import TerminalApprover
from tether.agent._tools import FunctionTool, FunctionToolset, Toolset, ToolSpec, as_toolset, function_tool
from tether.agent._toolsets import ToolsetGroup

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "RESULT_UNKNOWN",
    "Agent",
    "CallReport",
    "ChatClient",
    "FunctionTool",
    "FunctionToolset",
    "ModelConfig",
    "ModelError",
    "ModelReply",
    "RawToolCall",
    "RunResult",
    "ScriptedCall",
    "ScriptedModelServer",
    "TerminalApprover",
    "ToolSpec",
    "Toolset",
    "ToolsetGroup",
    "Turn",
    "as_toolset",
    "function_tool",
]
