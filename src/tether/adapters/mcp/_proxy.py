"""The guarding proxy: an MCP server that forwards to the real one, checking every tool call first.

``tools/call`` goes through :meth:`Session.check` before anything reaches the
upstream server: allow forwards, deny answers with a tool error that says why,
ask waits for a human (MCP elicitation when the client supports it, and the
event store, where ``tether approvals approve`` answers). Results are labelled
and indexed per the policy; resources and prompts read through the proxy are
recorded as untrusted sources. Tool definitions are pinned (see ``_pins.py``).
Every failure (upstream crash, hang, bad result, store error) becomes a tool
error: the proxy never forwards a call the guard has not allowed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

from tether._decision import Decision, ToolCall
from tether.adapters.mcp._pins import PinGate, ToolDefinition
from tether.adapters.mcp._upstream import list_all_tools
from tether.flow._labels import UNTRUSTED
from tether.session import Session

APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve", "description": "Run this tool call?"}},
    "required": ["approve"],
}
"""The form a client shows a human when a call needs approval."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProxyConfig:
    """How the proxy behaves; the defaults suit an interactive client."""

    call_timeout_s: float = 120.0
    """An upstream call that takes longer fails (and the agent is told)."""
    elicit: bool = True
    """Ask the human through MCP elicitation when the client supports it."""
    approval_poll_s: float = 0.25
    """How often to look for an answer given in the store (``tether approvals``)."""


def result_text(result: types.CallToolResult) -> str:
    """The text of a tool result that is labelled and indexed (what the model will read)."""
    parts: list[str] = []
    for block in result.content:
        parts.append(_block_text(block))
    if result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True))
    return "\n".join(parts)


def _block_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.EmbeddedResource):
        res = block.resource
        return res.text if isinstance(res, types.TextResourceContents) else f"[resource {res.uri}]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link {block.uri} {block.name} {block.description or ''}]"
    return f"[{getattr(block, 'type', 'content')} {getattr(block, 'mime_type', '')}]"


def tool_error(text: str) -> types.CallToolResult:
    """A tool result that tells the agent the call failed, and why."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class GuardedProxy:
    """Guards one upstream client session under one Tether session. Build the MCP server with :meth:`server`."""

    def __init__(
        self,
        upstream: ClientSession,
        session: Session,
        *,
        gate: PinGate,
        config: ProxyConfig | None = None,
        log: TextIO = sys.stderr,
    ) -> None:
        self.upstream = upstream
        """The client session with the real server."""
        self.session = session
        """The Tether session every call is checked and logged in."""
        self.gate = gate
        """Which tools the server listed and which definitions are pinned (its detector sits in the guard)."""
        self.config = config or ProxyConfig()
        self._log = log
        self._described: set[str] = set()

    async def refresh_tools(self) -> list[types.Tool]:
        """List the upstream tools, compare them with the pins, return those the client may see."""
        tools = await list_all_tools(self.upstream)
        visible = self.gate.update([ToolDefinition(t.name, t.description, t.input_schema) for t in tools])
        held = sorted({t.name for t in tools} - visible)
        if held:
            self._say(f"tool definition(s) held until a human approves them (tether mcp pins list): {', '.join(held)}")
        shown = [t for t in tools if t.name in visible]
        # The model reads these descriptions: they are server-written text, so untrusted data.
        text = "\n".join(f"{t.name}: {t.description or ''} {json.dumps(t.input_schema, sort_keys=True)}" for t in shown)
        if text and text not in self._described:
            self._described.add(text)
            self.session.add_source(text, label=UNTRUSTED, origin="mcp tool descriptions")
        return shown

    # ------------------------------------------------------------ tools/call

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        """Check, maybe ask, forward, record: the guarded ``tools/call``."""
        args = params.arguments if params.arguments is not None else {}
        call = ToolCall(params.name, dict(args))
        decision = self.session.check(call)
        if decision.verdict == "deny":
            return tool_error(f"Tether denied this call. {decision.explain()}")
        if decision.verdict == "ask" and not await self._ask_human(ctx, call, decision):
            return tool_error(f"Tether: a human did not approve this call (refused or timed out). {decision.explain()}")
        return await self._forward(call)

    async def _forward(self, call: ToolCall) -> types.CallToolResult:
        try:
            with anyio.fail_after(self.config.call_timeout_s):
                result = await self.upstream.call_tool(call.tool, call.args, read_timeout_seconds=self.config.call_timeout_s)
        except TimeoutError:
            return self._failed(call, f"the MCP server did not answer within {self.config.call_timeout_s:g} s")
        except Exception as exc:
            return self._failed(call, f"the MCP server failed: {type(exc).__name__}: {exc}")
        self.session.record_result(call.id, result_text(result), error=bool(result.is_error))
        return result

    def _failed(self, call: ToolCall, why: str) -> types.CallToolResult:
        self.session.record_result(call.id, why, error=True)
        return tool_error(f"Tether: {why}")

    async def _ask_human(self, ctx: ServerRequestContext[Any], call: ToolCall, decision: Decision) -> bool:
        """Wait for a human's answer, through elicitation and the store at once; a timeout denies."""
        self._say(f"call {call.id} to {call.tool} needs approval: tether approvals approve {call.id}")
        request = self.session.state.approvals.get(call.id)
        deadline = request.expires_at if request is not None else self.session.guard.clock()
        async with anyio.create_task_group() as tg:

            async def via_elicitation() -> None:
                answer = await self._elicit(ctx, call, decision)
                if answer is not None and self.session.approval_status(call.id) == "pending":
                    self.session.answer(call.id, answer, by="mcp-elicitation", note="answered in the MCP client")
                tg.cancel_scope.cancel()

            async def via_store() -> None:
                while self.session.approval_status(call.id) == "pending":
                    await anyio.sleep(self.config.approval_poll_s)
                    self.session.refresh()
                tg.cancel_scope.cancel()

            if self.config.elicit and _can_elicit(ctx):
                tg.start_soon(via_elicitation)
            tg.start_soon(via_store)
            with anyio.move_on_after(max(0.0, deadline - self.session.guard.clock()) + self.config.approval_poll_s):
                await anyio.sleep_forever()
            tg.cancel_scope.cancel()
        if self.session.approval_status(call.id) == "pending":
            self.session.answer(call.id, False, by="tether-mcp", note="no answer before the approval timeout")
        return self.session.approval_status(call.id) == "approved"

    async def _elicit(self, ctx: ServerRequestContext[Any], call: ToolCall, decision: Decision) -> bool | None:
        message = (
            f"Tether: the agent wants to call {call.tool} with {json.dumps(call.args, ensure_ascii=False, default=str)[:1500]}. "
            f"{decision.explain()[:1500]} Approve?"
        )
        try:
            answer = await ctx.session.elicit_form(message, APPROVAL_SCHEMA, related_request_id=ctx.request_id)
        except Exception as exc:
            self._say(f"elicitation failed ({type(exc).__name__}: {exc}); waiting for `tether approvals`")
            return None
        return answer.action == "accept" and (answer.content or {}).get("approve") is True

    # ------------------------------------------------------------ resources and prompts

    async def read_resource(self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        """Forward a resource read; its content becomes an untrusted source of the session."""
        with anyio.fail_after(self.config.call_timeout_s):
            result = await self.upstream.read_resource(params.uri)
        for item in result.contents:
            text = item.text if isinstance(item, types.TextResourceContents) else f"[binary resource {item.uri}]"
            self.session.add_source(text, label=UNTRUSTED, origin=f"mcp resource {params.uri}")
        return result

    async def get_prompt(self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        """Forward a prompt; its messages become an untrusted source of the session."""
        with anyio.fail_after(self.config.call_timeout_s):
            result = await self.upstream.get_prompt(params.name, params.arguments)
        text = "\n".join(_block_text(m.content) for m in result.messages)
        self.session.add_source(text, label=UNTRUSTED, origin=f"mcp prompt {params.name}")
        return result

    # ------------------------------------------------------------ the server

    def server(self) -> Server[Any]:
        """The MCP server the client talks to, offering what the upstream server offers."""
        init = self.upstream.initialize_result
        caps = init.capabilities if init is not None else types.ServerCapabilities()
        up = self.upstream
        timeout = self.config.call_timeout_s

        async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            with anyio.fail_after(timeout):
                return types.ListToolsResult(tools=await self.refresh_tools())

        async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
            with anyio.fail_after(timeout):
                return await up.list_resources(params=params)

        async def list_templates(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListResourceTemplatesResult:
            with anyio.fail_after(timeout):
                return await up.list_resource_templates(params=params)

        async def list_prompts(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
            with anyio.fail_after(timeout):
                return await up.list_prompts(params=params)

        name = f"tether/{init.server_info.name}" if init is not None else "tether"
        return Server(
            name,
            version=init.server_info.version if init is not None else "",
            instructions=init.instructions if init is not None else None,
            on_list_tools=list_tools if caps.tools is not None else None,
            on_call_tool=self.call_tool if caps.tools is not None else None,
            on_list_resources=list_resources if caps.resources is not None else None,
            on_list_resource_templates=list_templates if caps.resources is not None else None,
            on_read_resource=self.read_resource if caps.resources is not None else None,
            on_list_prompts=list_prompts if caps.prompts is not None else None,
            on_get_prompt=self.get_prompt if caps.prompts is not None else None,
        )

    def _say(self, text: str) -> None:
        print(f"tether-mcp: {text}", file=self._log, flush=True)


def _can_elicit(ctx: ServerRequestContext[Any]) -> bool:
    caps = ctx.session.client_capabilities
    return caps is not None and caps.elicitation is not None and (caps.elicitation.form is not None or caps.elicitation.url is None)
