"""``tether run``: run an agent on a task with a model server and Python tools, every call guarded.

Environment variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``TETHER_MODEL``) are read here
only, as option defaults. ``tether.agent`` needs ``httpx`` and is imported when the command runs,
so the base install's CLI keeps working without it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from tether.approvals import ApprovalRequest, StaticApprover, StoreApprover
from tether.cli._common import console, db_option, err_console, open_store, resolve_session
from tether.errors import ConfigError, PolicyError, RuntimeFailure, SessionError, StoreError
from tether.events import ApprovalAnswered, DecisionMade, ResultRecorded
from tether.policy import Policy
from tether.session import Guard, Session
from tether.store import EventStore

if TYPE_CHECKING:
    from tether.adapters.mcp import McpToolset, Upstream
    from tether.agent import Agent, CallReport, RunResult, Toolset
    from tether.client import RemoteGuard, RemoteSession

UNKNOWN_MARK = "tether: result unknown"


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What a session's log says about its calls."""

    allowed: int
    denied: int
    asked: int
    approved: int
    unknown: int
    events: int
    verified: bool
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "denied": self.denied,
            "asked": self.asked,
            "approved": self.approved,
            "result_unknown": self.unknown,
            "events": self.events,
            "chain_verified": self.verified,
            "problem": self.problem,
        }


def audit_summary(store: EventStore, session_id: str) -> AuditSummary:
    """Count the session's decisions and answers, and verify its chain."""
    report = store.verify([session_id])
    problem = "" if report.problem is None else f"{report.problem.message} (event {report.problem.seq})"
    return _count([stored.event() for stored in store.read(session_id)], report.ok, problem)


def remote_audit_summary(session: RemoteSession) -> AuditSummary:
    """Count the decisions and answers of a session served by the guard service; its chain is
    checked as it is read (each event's hash covers its body and the one before)."""
    try:
        return _count(session.logged_events(), True, "")
    except StoreError as exc:
        return AuditSummary(0, 0, 0, 0, 0, 0, False, str(exc))


def _count(events: list[Any], verified: bool, problem: str) -> AuditSummary:
    verdicts: Counter[str] = Counter()
    approved = unknown = 0
    for event in events:
        if isinstance(event, DecisionMade):
            verdicts[event.verdict] += 1
        elif isinstance(event, ApprovalAnswered) and event.allowed:
            approved += 1
        elif isinstance(event, ResultRecorded) and event.error and event.output.startswith(UNKNOWN_MARK):
            unknown += 1
    return AuditSummary(verdicts["allow"], verdicts["deny"], verdicts["ask"], approved, unknown, len(events), verified, problem)


def load_tools(specs: tuple[str, ...]) -> Toolset:
    """The toolset named by ``MODULE:ATTR`` options (a toolset, a function, or a list of functions)."""
    from tether.agent import FunctionTool, FunctionToolset, Toolset

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like ``python -m``: modules next to the user are found
    items: list[Any] = []
    sets: list[Toolset] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise click.BadParameter(f"{spec!r} is not MODULE:ATTR", param_hint="--tools")
        try:
            value = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--tools") from None
        if isinstance(value, Toolset):
            sets.append(value)
        elif callable(value) or isinstance(value, FunctionTool):
            items.append(value)
        else:
            items.extend(value)
    if sets and (items or len(sets) > 1):
        raise click.BadParameter("give one toolset, or functions only", param_hint="--tools")
    return sets[0] if sets else FunctionToolset(items)


def _tasks(task: str | None, task_file: str | None, tasks_file: str | None) -> list[str]:
    given = [x for x in (task, task_file, tasks_file) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --task, --task-file, --tasks (or --resume SESSION)")
    if task is not None:
        return [task]
    if task_file is not None:
        return [Path(task_file).read_text(encoding="utf-8")]
    assert tasks_file is not None
    lines = Path(tasks_file).read_text(encoding="utf-8").splitlines()
    out = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise click.UsageError(f"{tasks_file!r} holds no task (one per line; '#' starts a comment)")
    return out


def _printer(as_json: bool) -> Callable[[CallReport], None]:
    def show(report: CallReport) -> None:
        if report.fate == "unknown":  # on stderr in every mode: a human must look at this call
            err_console.print(
                f"[magenta]warning:[/] call {escape(report.call_id)} to {escape(report.tool)} was admitted before the crash and its "
                "result was never recorded: it may or may not have run; it was NOT run again",
                soft_wrap=True,
            )
        if as_json:
            click.echo(json.dumps({"type": "call", **_report_json(report)}, ensure_ascii=False))
            return
        color = {"ran": "green", "failed": "yellow", "denied": "red", "refused": "red", "unknown": "magenta"}[report.fate]
        rules = escape(f" [{', '.join(report.rules)}]") if report.rules else ""  # brackets escaped too: not markup
        asked = "" if report.approved is None else (" approved" if report.approved else " not approved")
        resumed = " (from the log, on resume)" if report.resumed else ""
        console.print(
            f"  [{color}]{report.verdict.upper():<5}[/]{asked} {escape(report.tool)}({escape(report.arguments[:160])}) "
            f"-> [{color}]{report.fate}[/]{rules}{resumed}",
            soft_wrap=True,
        )

    return show


def _report_json(report: CallReport) -> dict[str, Any]:
    return {
        "call_id": report.call_id,
        "tool": report.tool,
        "arguments": report.arguments,
        "verdict": report.verdict,
        "rules": list(report.rules),
        "fate": report.fate,
        "approved": report.approved,
        "resumed": report.resumed,
    }


@dataclass(frozen=True, slots=True)
class AnnouncedApprover:
    """Waits for an answer through the store, first saying on stderr how to give it."""

    inner: StoreApprover
    """The approver that waits."""
    db: str
    """The store's path, for the command shown."""
    name: str = "store"
    """Logged as who answered, if this approver ever answers itself."""

    def __call__(self, request: ApprovalRequest) -> bool:
        call = request.call
        err_console.print(
            f"[yellow]waiting for approval[/] of call {escape(call.id)} to {escape(call.tool)}: "
            f"tether approvals list --db {escape(self.db)}; tether approvals approve|deny {escape(call.id[:12])} --db {escape(self.db)}",
            soft_wrap=True,
        )
        return self.inner(request)


@dataclass(frozen=True, slots=True)
class ServiceApprover:
    """Waits for an answer given through the guard service (its web UI or API), first saying on stderr where."""

    url: str
    """The service's URL, for the message."""
    timeout_s: float | None = None
    """Longest wait in seconds (None: until the request expires)."""
    name: str = "service"
    """Logged as who answered, if this approver ever answers itself (a refusal)."""

    def __call__(self, request: ApprovalRequest) -> bool:
        call = request.call
        err_console.print(
            f"[yellow]waiting for approval[/] of call {escape(call.id)} to {escape(call.tool)}: answer it at "
            f"{escape(self.url)}/approvals (an overseer's token)",
            soft_wrap=True,
        )
        return StoreApprover(timeout_s=self.timeout_s)(request)


def _approver(kind: str, timeout_s: float | None, db: str, guard_url: str | None = None) -> Any:
    from tether.agent import TerminalApprover

    if guard_url is not None:
        # Through the service an agent's token cannot approve: asks wait for a human there.
        if kind == "terminal":
            raise click.UsageError("--approver terminal cannot answer through the guard service (agent tokens never approve); use store")
        return StaticApprover(False, name="refuse-all") if kind == "refuse" else ServiceApprover(guard_url, timeout_s)

    if kind == "auto":
        kind = "terminal" if sys.stdin.isatty() else "store"
    if kind == "terminal":
        return TerminalApprover(timeout_s=timeout_s)
    if kind == "store":
        return AnnouncedApprover(StoreApprover(timeout_s=timeout_s), db)
    return StaticApprover(False, name="refuse-all")


def _finish(summary: AuditSummary, result: RunResult, as_json: bool) -> None:
    if as_json:
        doc = {
            "type": "result",
            "session_id": result.session_id,
            "stop": result.stop,
            "answer": result.answer,
            "detail": result.detail,
            "steps": result.steps,
            "audit": summary.to_json(),
        }
        click.echo(json.dumps(doc, ensure_ascii=False))
        return
    if result.answer is not None:
        console.print(f"\n[bold]{'refusal' if result.stop == 'refused' else 'answer'}:[/] {escape(result.answer)}", soft_wrap=True)
    if result.stop not in ("completed", "refused"):
        console.print(f"[yellow]stopped ({result.stop}):[/] {escape(result.detail)}", soft_wrap=True)
        console.print(f"continue with: tether run --resume {result.session_id} ...", soft_wrap=True)
    chain = "[green]verified[/]" if summary.verified else f"[red]BROKEN[/] ({escape(summary.problem)})"
    console.print(
        f"audit: session {result.session_id}: {summary.allowed} allowed, {summary.denied} denied, {summary.asked} asked "
        f"({summary.approved} approved), {summary.unknown} result(s) unknown; {summary.events} events, chain {chain}",
        soft_wrap=True,
    )


async def _drive(agent: Agent, session: Session | RemoteSession, mcp: McpToolset | None, provider: Any = None) -> RunResult:
    if provider is not None and isinstance(session, Session):
        return await _traced(agent, session, mcp, provider)
    if mcp is None or not isinstance(session, Session):
        return await agent.run(session)
    async with mcp.connected(session):
        return await agent.run(session)


async def _traced(agent: Agent, session: Session, mcp: McpToolset | None, provider: Any) -> RunResult:
    """The run under an ``invoke_agent`` span, the session's events turned into spans after each step."""
    from opentelemetry import trace

    from tether.otel import SessionTracer

    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "tether run", "gen_ai.conversation.id": session.id}
    root = provider.get_tracer("tether").start_span("invoke_agent tether run", attributes=attributes)
    spans = SessionTracer(session.store, session.id, tracer_provider=provider, parent=trace.set_span_in_context(root))
    on_call, on_turn = agent.on_call, agent.on_turn

    def call_then_flush(report: CallReport) -> None:
        if on_call is not None:
            on_call(report)
        spans.flush()

    def turn_then_flush(reply: Any) -> None:
        if on_turn is not None:
            on_turn(reply)
        spans.flush()

    agent.on_call, agent.on_turn = call_then_flush, turn_then_flush
    try:
        if mcp is None:
            return await agent.run(session)
        async with mcp.connected(session):
            return await agent.run(session)
    finally:
        agent.on_call, agent.on_turn = on_call, on_turn
        spans.close()
        root.end()


def _mcp_toolset(config: str | None, command: str | None, store: EventStore, policy: Policy, pins: bool) -> McpToolset | None:
    """The MCP servers of ``--mcp CONFIG`` and ``--mcp-server COMMAND`` (None when neither is given)."""
    if config is None and command is None:
        return None
    from tether.adapters.mcp import McpToolset, load_gateway, server_option

    servers: list[Upstream] = list(load_gateway(config)) if config is not None else []
    if command is not None:
        lone = server_option(command) if "=" in command.split(" ", 1)[0] else _command_server(command)
        servers.append(lone)
    return McpToolset(servers, store, policy, pins=pins, gateway=config is not None or None)


def _provider(otel: str | None) -> Any:
    if otel is None:
        return None
    try:
        from tether.otel import tracer_provider
    except ImportError:
        raise click.UsageError("--otel needs the otel extra: pip install 'tether-guard[otel]'") from None
    try:
        return tracer_provider("console" if otel == "console" else "otlp")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _command_server(command: str) -> Upstream:
    import shlex

    from tether.adapters.mcp import Upstream

    try:
        return Upstream(command=tuple(shlex.split(command)))
    except ValueError as exc:
        raise click.BadParameter(f"{command!r}: {exc}", param_hint="--mcp-server") from None


def _run_one(
    agent: Agent, session: Session | RemoteSession, as_json: bool, mcp: McpToolset | None = None, provider: Any = None
) -> RunResult:
    if isinstance(session, Session):
        policy_name, task = session.state.policy_name, session.state.task
    else:
        policy_name, task = str(session.summary["policy_name"]), session.task
    if not as_json:
        console.print(f"[bold]session {session.id}[/] ({escape(policy_name)}): {escape(task[:200])}", soft_wrap=True)
    try:
        result = asyncio.run(_drive(agent, session, mcp, provider))
    except KeyboardInterrupt:
        err_console.print(f"\ninterrupted; continue with: tether run --resume {session.id} ...")
        raise SystemExit(130) from None
    summary = audit_summary(session.store, result.session_id) if isinstance(session, Session) else remote_audit_summary(session)
    _finish(summary, result, as_json)
    return result


def _queue(task: str | None, task_file: str | None, tasks_file: str | None, resume: str | None) -> list[str]:
    return [] if resume is not None else _tasks(task, task_file, tasks_file)


def _run_remote(
    agent: Agent,
    remote: RemoteGuard,
    policy_path: str | None,
    queue: list[str],
    resume: str | None,
    principal: str,
    model: str,
    tools: Toolset,
    as_json: bool,
) -> None:
    """The runs of ``tether run --guard-url``: every check, record, message and ask through the service."""
    results = []
    try:
        if resume is not None:
            results = [_run_one(agent, remote.resume(resume), as_json)]
        else:
            if policy_path is None:
                raise click.UsageError("--policy is needed to start a run")
            policy = Policy.from_file(policy_path)
            for i, text in enumerate(queue):
                meta: dict[str, Any] = {"runner": "tether run", "model": model, "tools": [s.name for s in tools.specs()]}
                if len(queue) > 1:
                    meta["queue"] = {"index": i, "of": len(queue)}
                results.append(_run_one(agent, remote.start(text, policy=policy, principal=principal, metadata=meta), as_json))
                if results[-1].stop in ("model_error", "store_error"):
                    break
    except (PolicyError, SessionError, StoreError, ConfigError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    stops = {r.stop for r in results}
    raise SystemExit(2 if stops & {"model_error", "store_error"} else 0 if stops <= {"completed", "refused"} else 1)


@click.command("run")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, exists=True), help="Policy file (not needed with --resume).")
@click.option("--task", default=None, help="The task (trusted text).")
@click.option("--task-file", type=click.Path(dir_okay=False, exists=True), help="Read the task from a file.")
@click.option(
    "--tasks", "tasks_file", type=click.Path(dir_okay=False, exists=True), help="A queue of tasks, one per line: one session each."
)
@click.option("--resume", "resume", default=None, metavar="SESSION", help="Continue a session (an id or unique prefix) from its log.")
@click.option("--model", envvar="TETHER_MODEL", required=True, show_envvar=True, help="Model name.")
@click.option("--base-url", envvar="OPENAI_BASE_URL", required=True, show_envvar=True, help="OpenAI-compatible API root (…/v1).")
@click.option("--api-key", envvar="OPENAI_API_KEY", default=None, show_envvar=True, help="Bearer token for the model server.")
@click.option(
    "--tools", "tool_specs", multiple=True, metavar="MODULE:ATTR", help="Python tools: a toolset, a function or a list of functions."
)
@click.option(
    "--mcp",
    "mcp_config",
    type=click.Path(dir_okay=False, exists=True),
    help="MCP servers (a gateway file: servers: or mcpServers:); tools named <server>__<tool>.",
)
@click.option(
    "--mcp-server", "mcp_command", default=None, metavar="COMMAND", help="One MCP server: its command line (shell words), or NAME=COMMAND."
)
@click.option(
    "--pins/--no-pins", "mcp_pins", default=True, show_default=True, help="Pin MCP tool definitions (changed ones are held until reviewed)."
)
@db_option
@click.option("--principal", default="user", show_default=True, help="Who the agent acts for (one for the whole queue).")
@click.option("--max-steps", default=30, show_default=True, type=click.IntRange(1), help="Most model turns per run.")
@click.option("--stream/--no-stream", default=False, show_default=True, help="Ask the model server to stream its replies.")
@click.option("--model-timeout", default=120.0, show_default=True, type=click.FloatRange(0.1), help="Seconds to wait for the model.")
@click.option("--temperature", type=click.FloatRange(0), default=None, help="Sampling temperature (default: the server's).")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(0), help="Retries after a failed model request.")
@click.option(
    "--approver",
    "approver_kind",
    type=click.Choice(["auto", "terminal", "store", "refuse"]),
    default="auto",
    show_default=True,
    help="Who answers asks: the terminal, 'tether approvals' from another shell (store), or nobody. auto: terminal when interactive, else store.",
)
@click.option("--approve-timeout", type=click.FloatRange(0), default=None, help="Seconds to wait for an answer (then refused).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: each call, then each run's result.")
@click.option(
    "--otel",
    "otel",
    type=click.Choice(["otlp", "console"]),
    default=None,
    help="Export GenAI spans (execute_tool, chat) over OTLP/HTTP (configured by the OTEL_* variables) or to stdout. Needs the otel extra.",
)
@click.option(
    "--guard-url",
    envvar="TETHER_GUARD_URL",
    default=None,
    show_envvar=True,
    help="Check calls through a guard service (tether serve) instead of a local store; several URLs comma-separated.",
)
@click.option("--guard-token", envvar="TETHER_GUARD_TOKEN", default=None, show_envvar=True, help="The service's token (an agent token).")
def run_cmd(
    policy_path: str | None,
    task: str | None,
    task_file: str | None,
    tasks_file: str | None,
    resume: str | None,
    model: str,
    base_url: str,
    api_key: str | None,
    tool_specs: tuple[str, ...],
    mcp_config: str | None,
    mcp_command: str | None,
    mcp_pins: bool,
    db: str,
    principal: str,
    max_steps: int,
    stream: bool,
    model_timeout: float,
    temperature: float | None,
    retries: int,
    approver_kind: str,
    approve_timeout: float | None,
    as_json: bool,
    otel: str | None,
    guard_url: str | None,
    guard_token: str | None,
) -> None:
    """Run an agent on a task against an OpenAI-compatible model server; every tool call is checked,
    asked or denied by the policy and logged with the conversation. Exit 0 when the model answered,
    1 when the run stopped first (budget, session stopped, step limit), 2 on a model or store error."""
    from tether.agent import Agent, ChatClient, ModelConfig, ToolsetGroup

    tools = load_tools(tool_specs)
    config = ModelConfig(
        base_url=base_url,
        model=model,
        api_key=api_key,
        stream=stream,
        timeout_s=model_timeout,
        max_retries=retries,
        temperature=temperature,
    )
    urls = [u.strip().rstrip("/") for u in guard_url.split(",") if u.strip()] if guard_url else []
    if urls:
        if mcp_config is not None or mcp_command is not None or otel is not None:
            raise click.UsageError("--mcp, --mcp-server and --otel run with a local store, not yet with --guard-url")
        approver = _approver(approver_kind, approve_timeout, db, urls[0])
        agent = Agent(ChatClient(config), tools, approver=approver, max_steps=max_steps, on_call=_printer(as_json))
        if not guard_token:
            raise click.UsageError("--guard-url needs --guard-token (or TETHER_GUARD_TOKEN)")
        from tether.client import RemoteGuard

        with RemoteGuard(urls, guard_token) as remote:
            _run_remote(agent, remote, policy_path, _queue(task, task_file, tasks_file, resume), resume, principal, model, tools, as_json)
        return
    provider = _provider(otel)  # a missing exporter is a usage error before anything is opened
    store = open_store(db, must_exist=resume is not None)

    def agent_for(mcp: McpToolset | None) -> Agent:
        toolset = tools if mcp is None else ToolsetGroup([tools, mcp])
        approver = _approver(approver_kind, approve_timeout, db)
        return Agent(ChatClient(config), toolset, approver=approver, max_steps=max_steps, on_call=_printer(as_json))

    try:
        if resume is not None:
            sid = resolve_session(store, resume)
            policy = Policy.from_file(policy_path) if policy_path else Guard.for_session(store, sid).policy
            mcp = _mcp_toolset(mcp_config, mcp_command, store, policy, mcp_pins)
            guard = Guard(policy, store, detectors=mcp.detectors if mcp is not None else ())
            results = [_run_one(agent_for(mcp), guard.resume_session(sid), as_json, mcp, provider)]
        else:
            if policy_path is None:
                raise click.UsageError("--policy is needed to start a run")
            queue = _tasks(task, task_file, tasks_file)
            policy = Policy.from_file(policy_path)
            mcp = _mcp_toolset(mcp_config, mcp_command, store, policy, mcp_pins)
            guard = Guard(policy, store, detectors=mcp.detectors if mcp is not None else ())
            agent = agent_for(mcp)
            results = []
            for i, text in enumerate(queue):
                meta: dict[str, Any] = {"runner": "tether run", "model": model, "tools": [s.name for s in tools.specs()]}
                if mcp is not None:
                    meta["mcp"] = mcp.describe()
                if len(queue) > 1:
                    meta["queue"] = {"file": tasks_file, "index": i, "of": len(queue)}
                results.append(_run_one(agent, guard.start_session(text, principal=principal, metadata=meta), as_json, mcp, provider))
                if results[-1].stop in ("model_error", "store_error"):
                    break
    except (PolicyError, SessionError, StoreError, ConfigError, RuntimeFailure) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    finally:
        if provider is not None:
            provider.shutdown()  # flushes the batched spans
    stops = {r.stop for r in results}
    raise SystemExit(2 if stops & {"model_error", "store_error"} else 0 if stops <= {"completed", "refused"} else 1)
