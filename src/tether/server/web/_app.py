"""The oversight service's ASGI app: the JSON API, its OpenAPI spec and the web UI, in one process."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tether import __version__
from tether.errors import StoreError
from tether.server import GuardService, Oversight, OversightError, TimelineEntry, TokenBook, page_templates
from tether.server.web import _api, _guard_api, _pages
from tether.server.web._auth import Gate, Logins
from tether.server.web._changes import ChangeFeed
from tether.server.web._guard_fast import GuardFastPath

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Host names the service answers to by default."""

MAX_BODY_BYTES = 64 << 20
"""The largest request body the service reads (413 past it, before it is read whole): a holder of
any token must not make a worker hold gigabytes. Above what a record needs: an output over
``MAX_OUTPUT_CHARS`` (16 Mi characters) is not recorded anyway."""


def create_app(
    oversight: Oversight,
    tokens: TokenBook,
    *,
    hosts: Collection[str] = LOOPBACK_HOSTS,
    guard: GuardService | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app over one store's :class:`Oversight`, admitting the holders of ``tokens`` and
    answering to the Host names ``hosts`` only. ``guard`` serves the guard API (default: one
    over the same store). The live streams wait on the store's changes (``_changes.ChangeFeed``).
    ``max_body``: the largest request body read, in bytes (:data:`MAX_BODY_BYTES`), on every route
    and on the guard's lean path alike."""
    app = FastAPI(
        title="Tether oversight",
        version=__version__,
        description="Sessions, timelines, pending approvals, answers and stops. Every route needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    templates = page_templates()
    logins = Logins(tokens)
    app.state.oversight = oversight
    app.state.guard = guard if guard is not None else GuardService(oversight.store)
    app.state.templates = templates
    app.state.logins = logins
    app.state.tokens = tokens
    app.state.changes = ChangeFeed(oversight.store)
    row = templates.get_template("_entry.html")

    def render_entry(entry: TimelineEntry) -> str:
        return row.render(e=entry)

    app.state.render_entry = render_entry
    app.add_middleware(GuardFastPath)  # inside the Gate: Host, origin and token are checked first
    app.add_middleware(Gate, tokens=tokens, logins=logins, hosts=hosts, max_body=max_body)

    @app.exception_handler(OversightError)
    async def refused(request: Request, exc: OversightError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(StoreError)
    async def store_failed(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"the event store failed: {exc}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The errors' echo of the input is left out: it may hold anything the client sent.
        problems = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    app.include_router(_api.router)
    app.include_router(_guard_api.router)
    app.include_router(_pages.router)
    return app
