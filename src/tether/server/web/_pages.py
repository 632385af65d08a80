"""The web UI: server-rendered pages (sessions, a session's live timeline, the approvals inbox) and their forms."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tether.errors import SessionError
from tether.server import DEFAULT_ENDORSEMENT_S, Oversight, OversightError, SessionRow, chain_status, replay_changes, session_activity
from tether.server.web._auth import COOKIE, LOGIN_TTL_S, Logins, check_csrf

router = APIRouter(include_in_schema=False)

ID = Annotated[str, Path(min_length=1, max_length=256)]
FormText = Annotated[str, Form(max_length=2000)]


def _over(request: Request) -> Oversight:
    found: Oversight = request.app.state.oversight
    return found


def _logins(request: Request) -> Logins:
    found: Logins = request.app.state.logins
    return found


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Render a page with what every page needs (who, CSRF secret, script nonce, messages)."""
    who = getattr(request.state, "who", None)
    key = request.cookies.get(COOKIE, "")
    # Fragments (``_name.html``, fetched by a page's script) leave the messages to the next whole page.
    flash = _logins(request).take_flash(key) if key and who is not None and not template.startswith("_") else []
    html = request.app.state.templates.get_template(template).render(
        request=request, who=who, csrf=who.csrf if who is not None else "", nonce=request.state.nonce, flash=flash, **context
    )
    return HTMLResponse(html)


def _back(request: Request, message: str, to: str) -> RedirectResponse:
    key = request.cookies.get(COOKIE, "")
    if key:
        _logins(request).flash(key, message)
    return RedirectResponse(to, status_code=303)


def _safe_next(target: str) -> str:
    """Only a path on this service (never ``//host`` or a scheme): no open redirect."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.get("/login")
async def login_form(request: Request, next: Annotated[str, Query(max_length=512)] = "/") -> HTMLResponse:
    return page(request, "login.html", next=_safe_next(next), error="")


@router.post("/login")
async def login(request: Request, token: FormText = "", next: Annotated[str, Form(max_length=512)] = "/") -> Response:
    key = _logins(request).sign_in(token.strip())
    if key is None:
        refused = page(request, "login.html", next=_safe_next(next), error="That token is not valid.")
        refused.status_code = 401
        return refused
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, key, max_age=int(LOGIN_TTL_S), httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: FormText = "") -> Response:
    check_csrf(request, csrf)
    _logins(request).sign_out(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def sessions_page(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    principal: Annotated[str, Query(max_length=256)] = "",
    q: Annotated[str, Query(max_length=256)] = "",
) -> HTMLResponse:
    rows = await run_in_threadpool(_over(request).sessions, status=status or None, principal=principal or None, query=q)
    pending = await run_in_threadpool(_over(request).pending_count)
    return page(request, "sessions.html", rows=rows, status=status, principal=principal, q=q, pending=pending)


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: ID) -> HTMLResponse:
    over = _over(request)
    try:
        row = await run_in_threadpool(over.row, session_id)
    except OversightError as exc:
        response = page(request, "error.html", message=str(exc))
        response.status_code = exc.status
        return response
    entries = await run_in_threadpool(over.recent, session_id, 300)
    calls = await run_in_threadpool(lambda: over.pending(session_id=session_id, limit=INBOX_PAGE))
    endorsements = await run_in_threadpool(lambda: over.endorsements(session_id=session_id))
    back = f"/sessions/{quote(session_id, safe='')}"
    return page(
        request,
        "session.html",
        row=row,
        entries=list(reversed(entries)),
        calls=calls,
        last_seq=row.events,
        back=back,
        endorsements=endorsements,
    )


CHARTS = ("decisions", "budgets", "waits")
"""The session page's charts, each an SVG image of its own (the page does not wait for them)."""


@router.get("/sessions/{session_id}/charts/{name}.svg")
async def chart(request: Request, session_id: ID, name: Annotated[Literal["decisions", "budgets", "waits"], Path()]) -> Response:
    """One chart of a session, drawn by matplotlib on the server (an image: nothing in it runs)."""
    over = _over(request)
    try:
        row = await run_in_threadpool(over.row, session_id)
    except OversightError as exc:
        return Response(str(exc), status_code=exc.status, media_type="text/plain")
    svg = await run_in_threadpool(_chart, over, row, name)
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})


def _chart(over: Oversight, row: SessionRow, name: str) -> str:
    from tether.charts import ask_waits, budget_use, decisions_over_time

    if name == "budgets":
        budgets = [(b.name.replace("_", " "), b.used, b.limit) for b in row.budgets]
        budgets += [(f"{b.name} (all of {row.principal}'s sessions)", b.used, b.limit) for b in row.fleet]
        return budget_use(budgets)
    activity = session_activity(over.store, row.session_id)
    return decisions_over_time(activity.decisions) if name == "decisions" else ask_waits(activity.waits)


@router.get("/sessions/{session_id}/audit")
async def audit_page(request: Request, session_id: ID) -> HTMLResponse:
    over = _over(request)
    try:
        row = await run_in_threadpool(over.row, session_id)
    except OversightError as exc:
        return _error(request, exc.status, str(exc))
    status = await run_in_threadpool(chain_status, over.store, session_id)
    return page(request, "audit.html", row=row, status=status)


@router.get("/sessions/{session_id}/replay")
async def replay_page(request: Request, session_id: ID, policy: Annotated[str, Query(max_length=80)] = "") -> HTMLResponse:
    over = _over(request)
    try:
        row = await run_in_threadpool(over.row, session_id)
    except OversightError as exc:
        return _error(request, exc.status, str(exc))
    chosen = policy.strip() or row.policy_hash
    try:
        calls, changes = await run_in_threadpool(replay_changes, over.store, session_id, chosen)
        problem = ""
    except SessionError as exc:
        calls, changes, problem = 0, [], str(exc)
    return page(request, "replay.html", row=row, policy=chosen, calls=calls, changes=changes, problem=problem)


@router.get("/policies/{policy_hash}")
async def policy_page(request: Request, policy_hash: Annotated[str, Path(max_length=80)]) -> HTMLResponse:
    text = await run_in_threadpool(_over(request).store.get_policy, policy_hash)
    if text is None:
        return _error(request, 404, f"the store holds no policy {policy_hash}")
    return page(request, "policy.html", policy_hash=policy_hash, text=text)


def _error(request: Request, status: int, message: str) -> HTMLResponse:
    response = page(request, "error.html", message=message)
    response.status_code = status
    return response


INBOX_PAGE = 50
"""Pending calls on one page of the inbox (each shown whole, with its provenance)."""


@router.get("/approvals")
async def approvals_page(request: Request, offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> HTMLResponse:
    over = _over(request)
    items, total = await run_in_threadpool(lambda: over.pending_page(limit=INBOX_PAGE, offset=offset))
    calls = await run_in_threadpool(over.explain_all, items)
    # The endorsements of the principals whose asks are on this page (all of them: GET /api/endorsements).
    principals = {c.principal for c in calls}
    endorsements = await run_in_threadpool(lambda: over.endorsements(principals=principals))
    return page(
        request, "approvals.html", calls=calls, back="/approvals", endorsements=endorsements, total=total, offset=offset, size=INBOX_PAGE
    )


@router.get("/endorsements")
async def endorsements_page(request: Request, principal: Annotated[str, Query(max_length=256)] = "") -> HTMLResponse:
    over = _over(request)
    items = await run_in_threadpool(lambda: over.endorsements(principal=principal or None))
    return page(request, "endorsements.html", endorsements=items, back="/endorsements", principal=principal)


@router.get("/approvals/list")
async def approvals_fragment(request: Request, session_id: Annotated[str | None, Query(max_length=256)] = None) -> HTMLResponse:
    """The inbox's cards alone (the page's script swaps them in when the pending set changes)."""
    calls = await run_in_threadpool(lambda: _over(request).pending(session_id=session_id, limit=INBOX_PAGE))
    # Answering from a refreshed fragment returns to the page it sits in.
    back = f"/sessions/{quote(session_id, safe='')}" if session_id else "/approvals"
    return page(request, "_inbox.html", calls=calls, back=back)


@router.post("/approvals/{call_id}")
async def answer(
    request: Request,
    call_id: ID,
    decision: Annotated[Literal["approve", "deny", "approve_and_remember"], Form()],
    csrf: FormText = "",
    note: FormText = "",
    scope: Annotated[Literal["session", "principal"], Form()] = "session",
    expires: Annotated[float, Form(gt=0, le=366 * 86400)] = DEFAULT_ENDORSEMENT_S,
    next: Annotated[str, Form(max_length=512)] = "/approvals",
) -> Response:
    check_csrf(request, csrf)
    remember: list[str] | None = [] if decision == "approve_and_remember" else None
    try:
        out = await run_in_threadpool(
            lambda: _over(request).answer(
                call_id, decision != "deny", by=request.state.who.name, note=note, remember=remember, scope=scope, expires_in_s=expires
            )
        )
        message = out.message + (" (and remembered)" if remember is not None and out.approved else "")
    except OversightError as exc:
        message = f"not answered: {exc}"
    return _back(request, message, _safe_next(next))


@router.post("/endorsements/{endorsement_id}/revoke")
async def revoke(
    request: Request, endorsement_id: ID, csrf: FormText = "", next: Annotated[str, Form(max_length=512)] = "/approvals"
) -> Response:
    check_csrf(request, csrf)
    try:
        out = await run_in_threadpool(lambda: _over(request).revoke_endorsement(endorsement_id, by=request.state.who.name))
        message = f"endorsement of {out.tool}.{out.arg} revoked"
    except OversightError as exc:
        message = f"not revoked: {exc}"
    return _back(request, message, _safe_next(next))


@router.post("/sessions/{session_id}/checkin")
async def checkin(request: Request, session_id: ID, csrf: FormText = "", note: FormText = "") -> Response:
    check_csrf(request, csrf)
    try:
        await run_in_threadpool(lambda: _over(request).checkin(session_id, by=request.state.who.name, note=note))
        message = f"checked in on session {session_id}"
    except OversightError as exc:
        message = f"refused: {exc}"
    return _back(request, message, f"/sessions/{quote(session_id, safe='')}")


@router.post("/sessions/{session_id}/control")
async def control(
    request: Request,
    session_id: ID,
    action: Annotated[Literal["pause", "resume", "kill"], Form()],
    csrf: FormText = "",
    note: FormText = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        out = await run_in_threadpool(lambda: _over(request).control(session_id, action, by=request.state.who.name, note=note))
        message = f"session {out.session_id} is now {out.status}"
    except OversightError as exc:
        message = f"refused: {exc}"
    return _back(request, message, f"/sessions/{quote(session_id, safe='')}")


@router.post("/stop")
async def stop(
    request: Request,
    action: Annotated[Literal["pause", "kill"], Form()],
    csrf: FormText = "",
    principal: FormText = "",
    everything: FormText = "",
    note: FormText = "",
) -> Response:
    check_csrf(request, csrf)
    who = principal.strip()
    if not who and everything != "yes":
        return _back(request, "name a principal, or tick 'every session in the store'", "/")
    outs = await run_in_threadpool(lambda: _over(request).stop(action, principal=who or None, by=request.state.who.name, note=note))
    failed = [o for o in outs if o.error]
    message = f"{action}: {len(outs) - len(failed)} session(s) stopped" + (
        f", {len(failed)} could not be: {failed[0].error}" if failed else ""
    )
    return _back(request, message, "/")
