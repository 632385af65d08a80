"""The conversation as the log holds it: messages appended as events, and read back on resume.

Every message of a run (system prompt, the user's task, each assistant turn with its tool calls,
each tool result as the model was given it) is a ``message`` event in the session's chain, next
to the calls, decisions and results it led to. Reading them back gives the exact conversation to
continue, and which tool calls of the last turn were left open by a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tether._decision import Decision
from tether.events import ApprovalAnswered, DecisionMade, Event, MessageAdded, MessageToolCall, PlanDeclared, ResultRecorded
from tether.session import AgentSession, Session


@runtime_checkable
class RemoteLog(Protocol):
    """A session served elsewhere (:class:`tether.client.RemoteSession`) that reads its log over the wire."""

    @property
    def task(self) -> str:
        """The trusted task text."""
        ...

    @property
    def status(self) -> str:
        """The session's status as of its last refresh."""
        ...

    @property
    def length(self) -> int:
        """Events in the session's chain as of its last refresh."""
        ...

    def logged_events(self, after_seq: int = 0) -> list[Event]:
        """The session's events after ``after_seq``."""
        ...


def session_events(session: AgentSession, after_seq: int = 0) -> list[Event]:
    """The session's events after ``after_seq``, from its store (in process) or from the guard service."""
    if isinstance(session, Session):
        return [item.event() for item in session.store.read(session.id, after_seq)]
    if isinstance(session, RemoteLog):
        return session.logged_events(after_seq)
    raise TypeError(f"the agent loop needs a session that reads its log, got {type(session).__name__}")


def session_task(session: AgentSession) -> str:
    """The session's trusted task text."""
    if isinstance(session, Session):
        return session.state.task
    return session.task if isinstance(session, RemoteLog) else ""


def session_status(session: AgentSession) -> str:
    """The session's status, brought up to date first (``?`` when it cannot tell)."""
    session.refresh()
    if isinstance(session, Session):
        return session.state.status
    return session.status if isinstance(session, RemoteLog) else "?"


@dataclass(slots=True)
class Transcript:
    """A session's conversation and what became of its tool calls, read from the log."""

    messages: list[MessageAdded] = field(default_factory=list)
    """Every message, in order."""
    decisions: dict[str, Decision] = field(default_factory=dict)
    """The guard's decision on each call, by call id."""
    answers: dict[str, ApprovalAnswered] = field(default_factory=dict)
    """The last answer to each call's approval request, by call id."""
    results: dict[str, ResultRecorded] = field(default_factory=dict)
    """Each call's recorded output, by call id."""
    plans: set[str] = field(default_factory=set)
    """The ids of the plans declared (a ``declare_plan`` call is logged under its plan id)."""

    def open_calls(self) -> list[MessageToolCall]:
        """The tool calls of the last assistant turn that no ``tool`` message answers yet."""
        answered: set[str] = set()
        for message in reversed(self.messages):
            if message.role == "tool" and message.call_id is not None:
                answered.add(message.call_id)
            elif message.role == "assistant":
                return [c for c in message.tool_calls if c.call_id not in answered]
        return []

    def final(self) -> MessageAdded | None:
        """The last message when it is an assistant's answer without tool calls (the run was done)."""
        if self.messages and self.messages[-1].role == "assistant" and not self.messages[-1].tool_calls:
            return self.messages[-1]
        return None


def read_transcript(session: AgentSession) -> Transcript:
    """The conversation of ``session`` and the fate of its calls, from its whole log."""
    out = Transcript()
    tools: dict[str, str] = {}
    for event in session_events(session):
        if isinstance(event, MessageAdded):
            out.messages.append(event)
            tools.update((c.call_id, c.name) for c in event.tool_calls)
        elif isinstance(event, DecisionMade):
            out.decisions[event.call_id] = Decision(
                event.verdict, event.call_id, tools.get(event.call_id, "?"), event.reasons, policy_hash=event.policy_hash
            )
        elif isinstance(event, ApprovalAnswered):
            out.answers[event.call_id] = event
        elif isinstance(event, ResultRecorded):
            out.results[event.call_id] = event
        elif isinstance(event, PlanDeclared):
            out.plans.add(event.call_id)
    return out


def recorded_output(session: AgentSession, call_id: str) -> ResultRecorded | None:
    """The ``result_recorded`` event of ``call_id`` among the session's latest events (just written)."""
    if isinstance(session, Session):
        latest = session_events(session, max(0, session.state.last_seq - 4))
    else:
        session.refresh()  # a remote session learns its length from the service
        latest = session_events(session, max(0, (session.length if isinstance(session, RemoteLog) else 0) - 8))
    for event in reversed(latest):
        if isinstance(event, ResultRecorded) and event.call_id == call_id:
            return event
    return None


def to_openai(messages: Sequence[MessageAdded]) -> list[dict[str, Any]]:
    """The messages in the chat-completions request form."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        elif m.role == "assistant":
            text = m.content if m.refusal is None else m.refusal
            # ``""`` rather than null beside tool calls: the API takes both, and llama-cpp-python's
            # server takes only a string (its tool-calling template reads the field, so it must be there).
            item: dict[str, Any] = {"role": "assistant", "content": "" if text is None and m.tool_calls else text}
            if m.tool_calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
                ]
            out.append(item)
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out
