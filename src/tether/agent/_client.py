"""A client of the OpenAI-compatible chat-completions API (OpenAI, vLLM, Ollama, llama.cpp server).

Streaming and non-streaming, tool calls (parallel ones included), timeouts, and retries with
exponential backoff on the failures worth retrying (timeouts, connection errors, 408/409/429/5xx,
a malformed or cut-off reply). Whatever the server sends is parsed defensively: a reply that cannot
be understood raises :class:`ModelError`, never anything else, so the loop can stop cleanly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tether.errors import RuntimeFailure

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses after which the request is tried again."""


class ModelError(RuntimeFailure):
    """The model server could not give a usable reply (after the retries)."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Where the model is and how to talk to it."""

    base_url: str
    """The API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``."""
    model: str
    """The model name sent with each request."""
    api_key: str | None = None
    """Sent as a bearer token when given."""
    stream: bool = False
    """Ask for a streamed reply (server-sent events)."""
    timeout_s: float = 120.0
    """Longest wait for a reply (connect, and between bytes of a reply)."""
    max_retries: int = 3
    """Tries after the first, for failures worth retrying."""
    backoff_s: float = 0.5
    """First wait before a retry; doubled each time, up to ``max_backoff_s``."""
    max_backoff_s: float = 8.0
    """Longest wait between tries (also caps a server's ``Retry-After``)."""
    temperature: float | None = None
    """Sampling temperature, when set."""
    tool_choice: str | None = "auto"
    """Sent with the tools offered: ``auto`` is the API's own default, made explicit because some servers
    (llama-cpp-python's) offer no tool call without it; None: not sent."""


@dataclass(frozen=True, slots=True)
class RawToolCall:
    """A tool call as the model sent it (arguments not yet parsed)."""

    id: str
    """The model's id for the call."""
    name: str
    """The tool named."""
    arguments: str
    """The arguments' JSON text, as sent."""


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One assistant turn."""

    content: str | None = None
    """The text, if any."""
    tool_calls: tuple[RawToolCall, ...] = ()
    """The tool calls, in order."""
    refusal: str | None = None
    """The model's refusal, if it refused."""
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``tool_calls``, ``length``, ``content_filter``...)."""


@dataclass(slots=True)
class _Partial:
    """A streamed tool call being assembled from its deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatClient:
    """Sends a conversation to the model and returns its reply."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        """Where the model is and how to talk to it."""
        self._transport = transport
        self._sleep = sleep
        self.requests = 0
        """HTTP requests sent (retries included)."""

    async def complete(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> ModelReply:
        """The model's next turn for ``messages``, offering ``tools``; raises :class:`ModelError`."""
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
            if cfg.tool_choice is not None:
                body["tool_choice"] = cfg.tool_choice
        if cfg.stream:
            body["stream"] = True
        if cfg.temperature is not None:
            body["temperature"] = cfg.temperature
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        url = cfg.base_url.rstrip("/") + "/chat/completions"
        timeout = httpx.Timeout(cfg.timeout_s)
        last = "no attempt made"
        async with httpx.AsyncClient(transport=self._transport, timeout=timeout, headers=headers) as http:
            for attempt in range(cfg.max_retries + 1):
                if attempt:
                    await self._sleep(self._delay(attempt, last))
                self.requests += 1
                try:
                    return await (self._stream(http, url, body) if cfg.stream else self._once(http, url, body))
                except _Retry as exc:
                    last = str(exc)
                except httpx.TimeoutException as exc:
                    last = f"timed out after {cfg.timeout_s:g}s ({type(exc).__name__})"
                except httpx.HTTPError as exc:  # connection refused or reset, a broken reply stream
                    last = f"could not talk to the model server ({type(exc).__name__}: {exc})"
        raise ModelError(f"the model server failed {cfg.max_retries + 1} time(s); last: {last}")

    def _delay(self, attempt: int, last: str) -> float:
        cfg = self.config
        delay = cfg.backoff_s * 2 ** (attempt - 1)
        if last.startswith("retry-after "):
            delay = max(delay, float(last.split()[1]))
        return float(min(delay, cfg.max_backoff_s))

    async def _once(self, http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> ModelReply:
        response = await http.post(url, json=body)
        _check_status(response.status_code, response.headers, response.text)
        try:
            data = response.json()
        except ValueError:
            raise _Retry(f"the reply is not JSON: {response.text[:200]!r}") from None
        return parse_reply(data)

    async def _stream(self, http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> ModelReply:
        async with http.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                _check_status(response.status_code, response.headers, text)
            assembler = StreamAssembler()
            async for line in response.aiter_lines():
                if assembler.feed(line):
                    return assembler.reply()
        if assembler.finished:
            return assembler.reply()  # some servers end the stream without ``[DONE]``
        raise _Retry("the stream ended before the reply was complete")


class _Retry(Exception):
    """A failure worth another try (its text says why)."""


def _check_status(status: int, headers: httpx.Headers, text: str) -> None:
    if status == 200:
        return
    detail = f"HTTP {status}: {text[:300]!r}"
    if status in RETRY_STATUS:
        after = headers.get("retry-after", "")
        if after.replace(".", "", 1).isdigit():
            raise _Retry(f"retry-after {after} ({detail})")
        raise _Retry(detail)
    raise ModelError(f"the model server refused the request: {detail}")


class StreamAssembler:
    """Builds one reply from a chat-completions event stream, line by line."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, _Partial] = {}
        self._finish: str | None = None
        self.finished = False
        """A chunk said why the model stopped."""

    def feed(self, line: str) -> bool:
        """Take one line of the stream; True at ``data: [DONE]``; an error event or a broken chunk fails the try."""
        line = line.strip()
        if not line.startswith("data:"):
            return False  # comments, ``event:`` lines and keep-alives
        payload = line[5:].strip()
        if payload == "[DONE]":
            return True
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise _Retry(f"a stream chunk is not JSON: {payload[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise _Retry(f"a stream chunk is not an object: {payload[:200]!r}")
        if "error" in chunk:
            raise _Retry(f"the server reported an error mid-stream: {str(chunk['error'])[:300]!r}")
        for choice in _list(chunk.get("choices"))[:1]:
            self._choice(_dict(choice))
        return False

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = _dict(choice.get("delta"))
        if isinstance(delta.get("content"), str):
            self._content.append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            self._refusal.append(delta["refusal"])
        for i, raw in enumerate(_list(delta.get("tool_calls"))):
            item = _dict(raw)
            index = item.get("index", i)
            part = self._calls.setdefault(index if isinstance(index, int) else i, _Partial())
            if isinstance(item.get("id"), str) and item["id"]:
                part.id = item["id"]
            fn = _dict(item.get("function"))
            if isinstance(fn.get("name"), str):
                part.name += fn["name"]
            if isinstance(fn.get("arguments"), str):
                part.arguments.append(fn["arguments"])
        if isinstance(choice.get("finish_reason"), str):
            self._finish = choice["finish_reason"]
            self.finished = True

    def reply(self) -> ModelReply:
        """The reply assembled so far."""
        calls = tuple(
            RawToolCall(p.id or f"call_{i}", p.name, "".join(p.arguments)) for i, (_, p) in enumerate(sorted(self._calls.items()))
        )
        return ModelReply(
            content="".join(self._content) or None,
            tool_calls=calls,
            refusal="".join(self._refusal) or None,
            finish_reason=self._finish,
        )


def parse_reply(data: Any) -> ModelReply:
    """The first choice of a non-streamed chat-completions reply (raises on a malformed one)."""
    if isinstance(data, dict) and "error" in data:
        raise _Retry(f"the server reported an error: {str(data['error'])[:300]!r}")
    choices = _list(_dict(data).get("choices"))
    if not choices:
        raise _Retry(f"the reply has no choices: {json.dumps(data)[:200]!r}")
    choice = _dict(choices[0])
    message = _dict(choice.get("message"))
    calls = []
    for i, raw in enumerate(_list(message.get("tool_calls"))):
        item = _dict(raw)
        fn = _dict(item.get("function"))
        args = fn.get("arguments", "")
        calls.append(
            RawToolCall(
                id=item["id"] if isinstance(item.get("id"), str) and item["id"] else f"call_{i}",
                name=fn["name"] if isinstance(fn.get("name"), str) else "",
                # Some servers send an object instead of its JSON text: keep it as that text.
                arguments=args if isinstance(args, str) else json.dumps(args),
            )
        )
    content = message.get("content")
    refusal = message.get("refusal")
    finish = choice.get("finish_reason")
    return ModelReply(
        content=content if isinstance(content, str) else None,
        tool_calls=tuple(calls),
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        finish_reason=finish if isinstance(finish, str) else None,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
