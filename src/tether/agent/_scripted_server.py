"""A scripted OpenAI-compatible chat-completions server, on loopback: the model's test double.

It stands in for a hosted model (which the tests and benchmarks cannot reach): a real HTTP
server that replays scripted turns, streamed or not, with the failures a real server shows
(HTTP errors, hangs, replies that are not JSON, streams cut short). Which turn it plays is
worked out from the request (by default, the number of assistant messages already in the
conversation), so a run that resumes after a crash gets the same turn it would have got.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Failure = Literal["http_500", "http_503", "http_429", "http_400", "hang", "not_json", "cut_stream"]
"""A way one request can fail: an HTTP status; no reply until the client gives up (``hang``);
a 200 reply that is not JSON; a reply (streamed or not) that stops halfway."""


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """A tool call the scripted model makes."""

    name: str
    """The tool named."""
    arguments: dict[str, Any] | str = field(default_factory=dict)
    """The arguments: an object (sent as its JSON text) or the exact text to send (malformed JSON included)."""
    id: str | None = None
    """The model's id for the call (default ``call_<turn>_<index>``)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One scripted assistant turn."""

    content: str | None = None
    """The text of the reply."""
    tool_calls: tuple[ScriptedCall, ...] = ()
    """Tool calls (several: parallel tool calls)."""
    refusal: str | None = None
    """A refusal instead of an answer."""
    failures: tuple[Failure, ...] = ()
    """How the first requests for this turn fail, in order, before it is played."""
    finish_reason: str | None = None
    """Overrides the finish reason (default: ``tool_calls`` when there are calls, else ``stop``)."""


Script = Sequence[Turn] | Callable[[list[dict[str, Any]]], Turn]
"""Turns by index (the number of assistant messages in the request), or a function of the request's messages."""


class ScriptedModelServer:
    """Serves ``POST {base_url}/chat/completions`` from a script; use as a context manager.

    ``hang_s`` bounds how long a ``hang`` holds the request (the client should time out first).
    Every request body is kept in :attr:`requests`.
    """

    def __init__(self, script: Script, *, hang_s: float = 30.0, chunk_chars: int = 7) -> None:
        self.script = script
        """The turns to play."""
        self.hang_s = hang_s
        """Longest time a ``hang`` failure holds a request."""
        self.chunk_chars = chunk_chars
        """Characters per streamed chunk of text or arguments."""
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order."""
        self._tries: dict[int, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model", daemon=True)

    @property
    def base_url(self) -> str:
        """The API root to give a client (``http://127.0.0.1:PORT/v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> ScriptedModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (hung requests are let go)."""
        self._closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def plan(self, body: dict[str, Any]) -> tuple[int, Turn, Failure | None]:
        """The turn a request gets, and the failure it meets first (None: the turn is played)."""
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        assert isinstance(messages, list)
        index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        if callable(self.script):
            turn = self.script(messages)
        elif index < len(self.script):
            turn = self.script[index]
        else:
            turn = Turn(content="(the script has no more turns)")
        with self._lock:
            self.requests.append(body)
            tries = self._tries.get(index, 0)
            self._tries[index] = tries + 1
        return index, turn, turn.failures[tries] if tries < len(turn.failures) else None

    def wait_closing(self, seconds: float) -> None:
        """Hold a request up to ``seconds``, or until the server closes."""
        self._closing.wait(seconds)


def _calls_json(index: int, turn: Turn) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(turn.tool_calls):
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        out.append({"id": call.id or f"call_{index}_{i}", "type": "function", "function": {"name": call.name, "arguments": args}})
    return out


def _finish(turn: Turn) -> str:
    return turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")


def completion(index: int, turn: Turn, model: str) -> dict[str, Any]:
    """The non-streamed reply for ``turn``."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.refusal is not None:
        message["refusal"] = turn.refusal
    if turn.tool_calls:
        message["tool_calls"] = _calls_json(index, turn)
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(turn)}],
    }


def chunks(index: int, turn: Turn, model: str, size: int) -> list[dict[str, Any]]:
    """The streamed reply for ``turn``: text and arguments cut into pieces of ``size`` characters."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    out = [chunk({"role": "assistant"})]
    for field_name, text in (("content", turn.content or ""), ("refusal", turn.refusal or "")):
        out += [chunk({field_name: text[i : i + size]}) for i in range(0, len(text), size)]
    for i, call in enumerate(_calls_json(index, turn)):
        fn = call["function"]
        out.append(
            chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function", "function": {"name": fn["name"], "arguments": ""}}]})
        )
        args = fn["arguments"]
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + size]}}]}) for j in range(0, len(args), size)]
    out.append(chunk({}, _finish(turn)))
    return out


def _handler(server: ScriptedModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read what matters from ``requests``

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, b'{"error": {"message": "request body is not JSON"}}')
                return
            if not self.path.endswith("/chat/completions") or not isinstance(body, dict):
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            index, turn, failure = server.plan(body)
            model = str(body.get("model", "scripted"))
            if failure is not None and failure.startswith("http_"):
                self._send(int(failure[5:]), json.dumps({"error": {"message": f"scripted {failure}"}}).encode())
            elif failure == "hang":
                server.wait_closing(server.hang_s)
                self._send(504, b'{"error": {"message": "scripted hang ended"}}')
            elif failure == "not_json":
                self._send(200, b"<html>upstream proxy error</html>", "text/html")
            elif body.get("stream"):
                self._stream(chunks(index, turn, model, server.chunk_chars), cut=failure == "cut_stream")
            else:
                payload = json.dumps(completion(index, turn, model)).encode()
                self._send(200, payload[: len(payload) // 2] if failure == "cut_stream" else payload)

        def _send(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, items: list[dict[str, Any]], *, cut: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if cut:
                items = items[: max(1, len(items) // 2)]
            for item in items:
                self.wfile.write(b"data: " + json.dumps(item).encode() + b"\n\n")
                self.wfile.flush()
            if not cut:
                self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

    return Handler
