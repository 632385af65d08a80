"""The lean path of the guard API's two hot routes: a check and a record sent with a bearer token.

Every call an agent makes costs a check and a record through the service, and FastAPI's routing,
dependency solving and response encoding cost several times what the guard itself does for
them. :class:`GuardFastPath` sits behind the :class:`~tether.server.web._auth.Gate` (so Host,
origin and token are checked as for every route) and answers exactly these requests itself::

    POST /api/guard/sessions/{session_id}/check    (body: CheckBody, no query)
    POST /api/guard/sessions/{session_id}/record   (body: RecordBody, no query)

with the same models, the same access rule (a token bound to a principal sees only its
sessions), the same service calls and the same answers and errors as the FastAPI routes, which
stay declared and stay the API's OpenAPI description. Whatever it does not take as plainly
valid (another content type, a query, a cookie sign-in, a body that does not parse or
validate, an id too long) it hands to the FastAPI app untouched, body included, so every
refusal of malformed input is FastAPI's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.errors import StoreError
from tether.server import GuardService, OversightError
from tether.server.web._auth import Who
from tether.server.web._guard_api import CheckBody, RecordBody

_PREFIX = "/api/guard/sessions/"
_ROUTES: dict[str, type[BaseModel]] = {"check": CheckBody, "record": RecordBody}
_MAX_ID = 256
"""The longest session id the routes accept (``ID`` in ``_guard_api``)."""
_JSON = (b"content-type", b"application/json")


class GuardFastPath:
    """ASGI middleware that serves checks and records sent with a bearer token (see the module
    docstring); everything else goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        session_id, action = route
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # over the Gate's bound (413)
            await _respond(send, exc.status_code, {"detail": exc.detail})
            return
        if body is None:
            return  # the client left before sending its body: nobody to answer
        parsed = _parse(_ROUTES[action], body) if _json_request(scope) else None
        if parsed is None:
            await self.app(scope, _replay(body, receive), send)
            return
        state = scope.get("state", {})
        who: Who = state["who"]
        service: GuardService = scope["app"].state.guard
        try:
            work = _work(service, who, session_id, parsed)
            status, answer = 200, await to_thread.run_sync(work)
        except OversightError as exc:
            status, answer = exc.status, {"detail": str(exc)}
        except HTTPException as exc:
            status, answer = exc.status_code, {"detail": exc.detail}
        except StoreError as exc:
            status, answer = 503, {"detail": f"the event store failed: {exc}"}
        await _respond(send, status, answer)


def _route(scope: Scope) -> tuple[str, str] | None:
    """(session id, action) of a request the lean path takes, else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("query_string") or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    session_id, slash, action = path[len(_PREFIX) :].partition("/")
    if not slash or action not in _ROUTES or not session_id or len(session_id) > _MAX_ID:
        return None
    who = scope.get("state", {}).get("who")
    if not isinstance(who, Who) or who.via != "bearer":
        return None  # a browser's write must echo its CSRF secret: the FastAPI route checks it
    return session_id, action


def _json_request(scope: Scope) -> bool:
    """The request says its body is JSON, exactly as the client sends it (anything else: FastAPI decides)."""
    found = [v for k, v in scope["headers"] if k == b"content-type"]
    return len(found) == 1 and found[0].split(b";", 1)[0].strip().lower() == _JSON[1]


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(model: type[BaseModel], body: bytes) -> BaseModel | None:
    """The body as ``model`` (decoded as FastAPI decodes JSON), or None to let FastAPI answer."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # nested past the recursion limit: FastAPI answers 400
        return None
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then whatever the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _work(service: GuardService, who: Who, session_id: str, body: BaseModel) -> Callable[[], dict[str, Any]]:
    """What the route does, as one call for a worker thread (the store blocks)."""

    def run() -> dict[str, Any]:
        if who.principal is not None and service.principal_of(session_id) != who.principal:
            raise HTTPException(404, f"no session {session_id!r}")
        if isinstance(body, CheckBody):
            return service.check(session_id, body.tool, body.args, body.call_id).to_json()
        assert isinstance(body, RecordBody)
        found, replayed = service.record(session_id, body.call_id, body.output, error=body.error)
        return {"call_id": body.call_id, "label": found.to_json(), "replayed": replayed}

    return run


async def _respond(send: Send, status: int, answer: Any) -> None:
    """Send ``answer`` as Starlette's ``JSONResponse`` renders it."""
    content = json.dumps(answer, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")
    headers = [(b"content-length", str(len(content)).encode("latin-1")), _JSON]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
