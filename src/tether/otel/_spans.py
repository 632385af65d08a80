"""A session's log as OpenTelemetry spans, following the GenAI semantic conventions.

The spans are made from the session's events, not from hooks in each integration: every
integration (``tether run``, the framework adapters, the MCP proxy, ``Gate`` in your own code) logs
the same events, so one reader traces them all, with the times the log holds, and a trace can be
rebuilt from the log after the fact. :class:`SessionTracer` follows one session: each
:meth:`~SessionTracer.flush` turns the events logged since the last into spans:

- ``execute_tool {tool}`` per tool call, from its proposal to its end (its result recorded, or its
  denial or refusal): ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``,
  ``gen_ai.tool.call.id``, ``gen_ai.conversation.id`` (the session), and Tether's
  ``tether.verdict``, ``tether.rule`` (the rules behind the decision), ``tether.approved``,
  ``tether.labels`` (the recorded output's label), ``tether.session_id``; span events mark the
  decision and the human's answer; a denied or refused call has status ERROR;
- ``chat {model}`` per model turn of an agent loop that logs its messages (``tether run``), from the
  last message before the request to the reply: ``gen_ai.operation.name=chat``,
  ``gen_ai.request.model``, ``gen_ai.response.finish_reasons``.

Spans carry no arguments or outputs (they may be secret): the log holds those, behind its own access.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from tether import __version__
from tether.events import ApprovalAnswered, CallProposed, DecisionMade, MessageAdded, ResultRecorded, SessionStarted
from tether.store import EventStore


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SessionTracer:
    """Turns one session's events into spans as they are logged (call :meth:`flush` after each step).

    ``parent`` is the context the spans hang under (for example an ``invoke_agent`` span of your
    own); ``tracer_provider`` defaults to the global one.
    """

    def __init__(
        self,
        store: EventStore,
        session_id: str,
        *,
        tracer_provider: TracerProvider | None = None,
        parent: Context | None = None,
        since: int = 0,
    ) -> None:
        self.store = store
        """Where the session's events are read."""
        self.session_id = session_id
        """The session traced."""
        self._tracer = trace.get_tracer("tether", __version__, tracer_provider=tracer_provider)
        self._parent = parent
        self._seq = since
        self._open: dict[str, Span] = {}
        self._model = ""
        self._last_message: float | None = None

    def flush(self) -> int:
        """Make the spans of the events logged since the last flush; returns how many events were read."""
        items = self.store.read(self.session_id, self._seq)
        for item in items:
            self._seq = item.seq
            self._on(item.event())
        return len(items)

    def close(self) -> None:
        """Flush, then end the spans of calls still open (waiting for an answer or a result) as they stand."""
        self.flush()
        for span in self._open.values():
            span.set_attribute("tether.open", True)
            span.end()
        self._open.clear()

    # ------------------------------------------------------------ events

    def _common(self) -> dict[str, Any]:
        return {"gen_ai.conversation.id": self.session_id, "tether.session_id": self.session_id}

    def _on(self, event: Any) -> None:
        if isinstance(event, SessionStarted):
            self._model = str(event.metadata.get("model", "") or "")
        elif isinstance(event, CallProposed):
            attributes = {
                **self._common(),
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": event.tool,
                "gen_ai.tool.call.id": event.call_id,
                "gen_ai.tool.type": "function",
            }
            self._open[event.call_id] = self._tracer.start_span(
                f"execute_tool {event.tool}",
                context=self._parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=_ns(event.time),
            )
        elif isinstance(event, DecisionMade):
            self._decided(event)
        elif isinstance(event, ApprovalAnswered):
            self._answered(event)
        elif isinstance(event, ResultRecorded):
            span = self._open.pop(event.call_id, None)
            if span is not None:
                span.set_attribute("tether.labels", event.label.describe())
                if event.error:
                    span.set_attribute("error.type", "tool_error")
                    span.set_status(Status(StatusCode.ERROR, "the tool failed"))
                span.end(end_time=_ns(event.time))
        elif isinstance(event, MessageAdded):
            self._message(event)

    def _decided(self, event: DecisionMade) -> None:
        span = self._open.get(event.call_id)
        if span is None:
            return
        rules = sorted({r.rule for r in event.reasons})
        span.set_attribute("tether.verdict", event.verdict)
        span.set_attribute("tether.rule", ",".join(rules))
        span.add_event("tether.decision", {"tether.verdict": event.verdict, "tether.rule": ",".join(rules)}, timestamp=_ns(event.time))
        if event.verdict == "deny":
            span.set_status(Status(StatusCode.ERROR, "denied by the policy"))
            span.set_attribute("error.type", "tether.denied")
            self._open.pop(event.call_id).end(end_time=_ns(event.time))

    def _answered(self, event: ApprovalAnswered) -> None:
        span = self._open.get(event.call_id)
        if span is None:
            return
        allowed = event.approved and event.verdict != "deny"
        span.set_attribute("tether.approved", event.approved)
        span.add_event("tether.approval", {"tether.approved": event.approved, "tether.by": event.by}, timestamp=_ns(event.time))
        if not allowed:
            if event.approved:  # approved, then denied on the second decision (a budget, the session's status)
                span.set_attribute("tether.rule", ",".join(sorted({r.rule for r in event.reasons})))
            span.set_status(Status(StatusCode.ERROR, "not approved" if not event.approved else "denied after approval"))
            span.set_attribute("error.type", "tether.refused")
            self._open.pop(event.call_id).end(end_time=_ns(event.time))

    def _message(self, event: MessageAdded) -> None:
        if event.role == "assistant" and self._last_message is not None:
            name = f"chat {self._model}" if self._model else "chat"
            reasons = ["tool_calls"] if event.tool_calls else ["content_filter"] if event.refusal is not None else ["stop"]
            attributes: dict[str, Any] = {**self._common(), "gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": reasons}
            if self._model:
                attributes["gen_ai.request.model"] = self._model
            span = self._tracer.start_span(
                name, context=self._parent, kind=SpanKind.CLIENT, attributes=attributes, start_time=_ns(self._last_message)
            )
            span.set_attribute("tether.tool_calls", len(event.tool_calls))
            span.end(end_time=_ns(event.time))
        self._last_message = event.time
