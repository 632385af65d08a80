"""Who is asking: bearer tokens for the API, a sign-in cookie for the pages, CSRF and Host checks.

Every route is behind :class:`Gate` (the middleware) except the sign-in page. A browser signs
in once with a token and gets an HttpOnly, SameSite=Strict cookie naming a server-side
login; that login carries a CSRF secret that every form and every cookie-authenticated
write must echo. A request whose Host header is not one the service answers to is
refused before anything else (DNS rebinding), and so is a write from another origin.
An ``agent`` token reaches only the guard API (``/api/guard/``) and the spec; it cannot sign
in to the pages.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.server import Role, TokenBook

COOKIE = "tether_login"
"""The sign-in cookie's name."""

LOGIN_TTL_S = 12 * 3600.0
"""A browser sign-in lasts this long."""

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?")
_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Who:
    """The holder of a live token."""

    name: str
    """The token's name (logged as who answered or stopped)."""
    via: Literal["bearer", "cookie"]
    """How the request proved it: ``Authorization: Bearer`` or the sign-in cookie."""
    csrf: str = ""
    """The login's CSRF secret (cookie sign-ins only)."""
    role: Role = "overseer"
    """What the token may do (cookie sign-ins are overseers: agent tokens cannot sign in)."""
    principal: str | None = None
    """For an agent token bound to a principal: that principal."""


@dataclass(slots=True)
class _Login:
    name: str
    digest: str
    csrf: str
    expires: float
    flash: list[str] = field(default_factory=list)


class Logins:
    """Browser sign-ins, in memory (a restart signs everyone out). A login lives while its token
    does: revoking the token from the CLI ends it at the next request."""

    def __init__(self, tokens: TokenBook) -> None:
        self.tokens = tokens
        self._logins: dict[str, _Login] = {}
        self._lock = threading.Lock()

    def sign_in(self, token: str) -> str | None:
        """A new login for a live token: returns the cookie value, or None for a bad token."""
        holder = self.tokens.holder(token)
        if holder is None or holder.role != "overseer":
            return None  # the pages are for people: an agent token cannot sign in
        name = holder.name
        key = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            for k in [k for k, v in self._logins.items() if v.expires < now]:
                del self._logins[k]
            self._logins[key] = _Login(name, holder.digest, secrets.token_urlsafe(24), now + LOGIN_TTL_S)
        return key

    def sign_out(self, key: str) -> None:
        """End a login."""
        with self._lock:
            self._logins.pop(key, None)

    def who(self, key: str) -> Who | None:
        """The login behind a cookie value, if it and its token are still live."""
        with self._lock:
            login = self._logins.get(key)
        if login is None or login.expires < time.time() or not self.tokens.live(login.digest):
            return None
        return Who(login.name, "cookie", login.csrf)

    def flash(self, key: str, message: str) -> None:
        """Keep a message to show on the login's next page (server-side: a URL cannot plant one)."""
        with self._lock:
            login = self._logins.get(key)
            if login is not None:
                login.flash = [*login.flash[-4:], message]

    def take_flash(self, key: str) -> list[str]:
        """The messages kept for the login, once."""
        with self._lock:
            login = self._logins.get(key)
            if login is None:
                return []
            out, login.flash = login.flash, []
            return out


def host_name(host_header: str) -> str | None:
    """The host of a Host header, lower-cased, without the port (None: malformed)."""
    m = _HOST.fullmatch(host_header.strip())
    return m.group(1).lower() if m else None


def authenticate(request: Request, tokens: TokenBook, logins: Logins) -> Who | None:
    """The holder of the request's bearer token or sign-in cookie, if live."""
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        holder = tokens.holder(token.strip()) if scheme.lower() == "bearer" else None
        return Who(holder.name, "bearer", role=holder.role, principal=holder.principal) if holder is not None else None
    key = request.cookies.get(COOKIE)
    return logins.who(key) if key else None


AGENT_PATHS = ("/api/guard/", "/api/openapi.json")
"""What an agent token may reach (prefixes); everything else is for overseers."""


def _agent_may_reach(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in AGENT_PATHS)


def same_origin(request: Request) -> bool:
    """A write's Origin (or Referer), when the browser sends one, names this service."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True  # not a browser form or fetch: the token or CSRF secret must still hold
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def check_csrf(request: Request, given: str | None) -> None:
    """A cookie-authenticated write must echo the login's CSRF secret (403 otherwise)."""
    who: Who = request.state.who
    if who.via == "bearer":
        return  # a bearer token is not sent by a browser on its own: no cross-site forgery
    if not given or not hmac.compare_digest(given, who.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def security_headers(response: Response | MutableHeaders, nonce: str) -> None:
    """Headers every response carries: no framing, no sniffing, no caching, scripts by nonce only, no referrer leaving the site."""
    headers = response.headers if isinstance(response, Response) else response
    headers["content-security-policy"] = _CSP.format(nonce=nonce)
    headers["x-content-type-options"] = "nosniff"
    headers["x-frame-options"] = "DENY"
    headers["referrer-policy"] = "same-origin"  # a browser then sends Origin on its own forms (not "null")
    headers["cache-control"] = "no-store"


def bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``HTTPException(413)`` once the body passes ``limit`` bytes (a body
    sent in chunks, with no length said up front): nobody holds more than ``limit`` of it. FastAPI
    re-raises an HTTPException met while reading a body, so its routes answer 413; the guard's lean
    path answers it itself."""
    seen = 0

    async def read() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"the request body is over {limit} bytes")
        return message

    return read


class Gate:
    """The middleware in front of every route: Host, origin of writes, then a live token; security
    headers on every response. Plain ASGI (no ``BaseHTTPMiddleware``): it costs a request no task
    group or body streams, and server-sent events pass straight through."""

    def __init__(self, app: ASGIApp, *, tokens: TokenBook, logins: Logins, hosts: Collection[str], max_body: int) -> None:
        self.app = app
        self.tokens = tokens
        self.logins = logins
        self.allowed = frozenset(h.lower().strip("[]") for h in hosts)
        self.max_body = max_body
        """The largest request body read (bytes): past it, 413 (see :func:`bounded`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce
        request = Request(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                security_headers(MutableHeaders(scope=message), nonce)
            await send(message)

        refusal = self._refusal(request)
        if refusal is None:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                refusal = JSONResponse({"detail": f"the request body is over {self.max_body} bytes"}, status_code=413)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, bounded(receive, self.max_body), send_with_headers)

    def _refusal(self, request: Request) -> Response | None:
        """The response that refuses the request, or None to let it through (with ``state.who`` set)."""
        host = host_name(request.headers.get("host", ""))
        if host is None or host.strip("[]") not in self.allowed:
            return JSONResponse({"detail": "unknown Host header"}, status_code=400)
        if request.method in _UNSAFE and not same_origin(request):
            return JSONResponse({"detail": "cross-origin write refused"}, status_code=403)
        if request.url.path == "/login":
            return None
        who = authenticate(request, self.tokens, self.logins)
        if who is None:
            if request.method == "GET" and not request.url.path.startswith("/api/"):
                return RedirectResponse("/login?next=" + quote(request.url.path, safe="/"), status_code=303)
            return JSONResponse({"detail": "a valid token is required"}, status_code=401, headers={"www-authenticate": "Bearer"})
        if who.role == "agent" and not _agent_may_reach(request.url.path):
            return JSONResponse({"detail": "an agent token may use the guard API (/api/guard/) only"}, status_code=403)
        request.state.who = who
        return None
