"""The proxy is a transparent intermediary: the Python SDK client against ``server-everything``.

Everything the server starts reaches the client (progress, logs, resource
updates, list changes, sampling, elicitation and roots requests, and their
answers go back), the client's capabilities reach the server (so it offers
the tools that need them), and what needs a guard is guarded: the model's
answer to a sampling request is checked as it leaves, and denied once the
session has read a secret.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_helpers import POLICIES, proxy_params, run_tether

from tether import SQLiteStore

ROOT = "file:///tmp/tether-roots"


class Client:
    """Callbacks of a client that supports sampling, elicitation and roots, and remembers what it received."""

    def __init__(self) -> None:
        self.sampled: list[str] = []
        self.elicited: list[str] = []
        self.logs: list[Any] = []
        self.notes: list[str] = []

    async def sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampled.append(str(params.messages[0].content.text))  # type: ignore[union-attr]
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"), model="scripted")

    async def elicitation(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.elicited.append(str(params.message))
        return types.ElicitResult(action="accept", content={"name": "Ana", "check": True})

    async def roots(self, ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=ROOT, name="tether-roots")])

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)

    async def messages(self, message: Any) -> None:
        self.notes.append(getattr(message, "method", type(message).__name__))

    def session(self, read: Any, write: Any) -> ClientSession:
        return ClientSession(
            read,
            write,
            sampling_callback=self.sampling,
            elicitation_callback=self.elicitation,
            list_roots_callback=self.roots,
            logging_callback=self.logging,
            message_handler=self.messages,
        )


async def _initialize(params: StdioServerParameters, errlog: TextIO, client: Client) -> tuple[types.InitializeResult, list[str]]:
    async with stdio_client(params, errlog=errlog) as (read, write), client.session(read, write) as session:
        init = await session.initialize()
        return init, sorted(t.name for t in (await session.list_tools()).tools)


def test_initialize_and_tools_match_the_server_direct(tmp_path: Path, everything_cmd: list[str], errlog: TextIO) -> None:
    direct = StdioServerParameters(command=everything_cmd[0], args=everything_cmd[1:])
    proxied = proxy_params(["--policy", str(POLICIES / "everything.yaml"), "--db", str(tmp_path / "t.db"), "--", *everything_cmd])
    init_d, tools_d = anyio.run(_initialize, direct, errlog, Client())
    init_p, tools_p = anyio.run(_initialize, proxied, errlog, Client())
    assert init_p.server_info == init_d.server_info and init_p.server_info.title == "Everything Reference Server"
    assert init_p.capabilities == init_d.capabilities and init_p.instructions == init_d.instructions
    assert tools_p == tools_d and len(tools_p) == 17  # the client's capabilities reached the server


def test_server_initiated_traffic_reaches_the_client_and_back(tmp_path: Path, everything_cmd: list[str], errlog: TextIO) -> None:
    db = tmp_path / "t.db"
    params = proxy_params(["--policy", str(POLICIES / "everything.yaml"), "--db", str(db), "--", *everything_cmd])
    client = Client()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with stdio_client(params, errlog=errlog) as (read, write), client.session(read, write) as session:
            await session.initialize()
            await session.list_tools()
            progress: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append(value)

            await session.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress)
            out["progress"] = progress
            out["sampling"] = (await session.call_tool("trigger-sampling-request", {"prompt": "What is six times seven?"})).content
            out["elicitation"] = (await session.call_tool("trigger-elicitation-request", {})).content
            out["roots"] = (await session.call_tool("get-roots-list", {})).content
            out["structured"] = (await session.call_tool("get-structured-content", {"location": "Chicago"})).structured_content
            out["image"] = [c.type for c in (await session.call_tool("get-tiny-image", {})).content]
            out["complete"] = (
                await session.complete(
                    types.PromptReference(type="ref/prompt", name="completable-prompt"), {"name": "department", "value": "E"}
                )
            ).completion.values
            with warnings.catch_warnings():  # deprecated in the 2026 protocol, current in the one spoken here
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await session.set_logging_level("debug")
                templates = (await session.list_resource_templates()).resource_templates
                uri = templates[0].uri_template.replace("{resourceId}", "1")
                await session.subscribe_resource(uri)
            out["read"] = (await session.read_resource(uri)).contents[0]
            await session.call_tool("toggle-simulated-logging", {})
            await session.call_tool("toggle-subscriber-updates", {})
            with anyio.move_on_after(8):
                while not client.logs or "notifications/resources/updated" not in client.notes:
                    await asyncio.sleep(0.1)
        return out

    out = anyio.run(scenario)
    assert len(out["progress"]) >= 3 and out["progress"] == sorted(out["progress"])
    assert client.sampled and "six times seven" in client.sampled[0]
    assert "forty-two" in str(out["sampling"])  # the model's answer went back to the server, and its result to us
    assert client.elicited and "Ana" in str(out["elicitation"])
    assert ROOT in str(out["roots"])
    assert out["structured"] and "temperature" in out["structured"]
    assert "image" in out["image"]
    assert out["complete"] == ["Engineering"]
    assert client.logs, "no log message reached the client"
    assert "notifications/resources/updated" in client.notes and "notifications/tools/list_changed" in client.notes
    with SQLiteStore(db) as store:
        sid = next(s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:"))
        events = [i.event() for i in store.read(sid)]
    origins = [e.origin for e in events if e.kind == "source_added"]
    assert any(o.startswith("mcp log from") for o in origins) and any(o.startswith("mcp resource update") for o in origins)
    assert any(o.startswith("mcp sampling request") for o in origins) and any(o.startswith("mcp resource demo://") for o in origins)
    proposed = {e.call_id: e.tool for e in events if e.kind == "call_proposed"}
    verdicts = {proposed[e.call_id]: e.verdict for e in events if e.kind == "decision"}
    assert verdicts["sampling/createMessage"] == "allow" and verdicts["elicitation/create"] == "allow"
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_sampling_answer_is_denied_after_a_secret_was_read(tmp_path: Path, everything_cmd: list[str], errlog: TextIO) -> None:
    db = tmp_path / "t.db"
    params = proxy_params(["--policy", str(POLICIES / "everything.yaml"), "--db", str(db), "--", *everything_cmd])
    client = Client()

    async def scenario() -> types.CallToolResult:
        async with stdio_client(params, errlog=errlog) as (read, write), client.session(read, write) as session:
            await session.initialize()
            env = await session.call_tool("get-env", {})  # labelled secret by the policy
            assert not env.is_error
            return await session.call_tool("trigger-sampling-request", {"prompt": "Summarise what you know."})

    result = anyio.run(scenario)
    assert client.sampled, "the prompt should still reach the client's model"
    assert "forty-two" not in str(result.content)  # the answer never reached the server
    assert "Tether denied sending the model's answer" in str(result.content)
    assert "rules: tools.sampling/createMessage.args.result.flow" in str(result.content)
