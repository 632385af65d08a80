"""The JSON API under ``/api/``: sessions, timelines, pending approvals, answers, endorsements, check-ins and stops."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AliasChoices, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tether.errors import SessionError
from tether.server import DEFAULT_ENDORSEMENT_S, Action, Oversight, chain_status, replay_changes
from tether.server.web._auth import authenticate, check_csrf
from tether.server.web._changes import ChangeFeed

ID = Annotated[str, Path(min_length=1, max_length=256)]
CSRF = Annotated[str | None, Header(alias="x-csrf-token", max_length=256)]

router = APIRouter(prefix="/api")

KEEP_ALIVE_S = 15.0
"""A stream with nothing new sends a comment this often (and checks its token and client, and reads the store again)."""
_PAGE = 200
"""Events a session stream reads at a time."""

MAX_ENDORSEMENT_S = 366 * 86400.0
"""The longest an endorsement may be given for through the API (a year and a day)."""


class AnswerBody(BaseModel):
    """A human's answer to a pending call."""

    decision: Literal["approve", "deny", "approve_and_remember"] = Field(validation_alias=AliasChoices("decision", "action"))
    """Approve (the call is checked again, then may run), deny, or approve and remember (also
    endorse the values of ``remember`` for ``scope`` during ``expires_in_s``). Also accepted as ``action``."""
    note: str = Field("", max_length=2000)
    """Why (kept in the log)."""
    remember: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(None, max_length=64)
    """Approve and remember: the arguments whose values are endorsed (default: those whose provenance caused the ask)."""
    scope: Literal["session", "principal"] = "session"
    """Approve and remember: this session only, or every session of its principal."""
    expires_in_s: float | None = Field(DEFAULT_ENDORSEMENT_S, gt=0, le=MAX_ENDORSEMENT_S)
    """Approve and remember: how long the endorsement holds (null: until revoked)."""


class ControlBody(BaseModel):
    """Why a session is paused, resumed or killed."""

    note: str = Field("", max_length=2000)
    """Kept in the log."""


class StopBody(BaseModel):
    """Stop many sessions at once."""

    action: Literal["pause", "kill"]
    """Pause (resumable) or kill (for good)."""
    principal: str | None = Field(None, min_length=1, max_length=256)
    """Every live session of this principal..."""
    all: bool = False
    """...or, with ``all`` and no principal, every live session in the store."""
    note: str = Field("", max_length=2000)
    """Kept in the log."""


def _signed_in(request: Request) -> bool:
    """The request's token (or sign-in) is still live: a stream ends when its token is revoked."""
    return authenticate(request, request.app.state.tokens, request.app.state.logins) is not None


def oversight(request: Request) -> Oversight:
    """The app's :class:`Oversight`."""
    found: Oversight = request.app.state.oversight
    return found


@router.get("/sessions", summary="Sessions, most recently active first")
async def list_sessions(
    request: Request,
    status: Annotated[Literal["active", "paused", "killed", "ended", "?"] | None, Query()] = None,
    principal: Annotated[str | None, Query(max_length=256)] = None,
    q: Annotated[str, Query(max_length=256)] = "",
) -> list[dict[str, Any]]:
    rows = await run_in_threadpool(oversight(request).sessions, status=status, principal=principal, query=q)
    return [r.to_json() for r in rows]


@router.get("/sessions/{session_id}", summary="One session")
async def get_session(request: Request, session_id: ID) -> dict[str, Any]:
    return (await run_in_threadpool(oversight(request).row, session_id)).to_json()


@router.get("/sessions/{session_id}/events", summary="A session's events, readable")
async def session_events(
    request: Request,
    session_id: ID,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    entries = await run_in_threadpool(oversight(request).timeline, session_id, after_seq=after, limit=limit)
    return [e.to_json() for e in entries]


@router.get("/sessions/{session_id}/stream", summary="A session's new events as server-sent events")
async def session_stream(request: Request, session_id: ID, after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> StreamingResponse:
    over = oversight(request)
    await run_in_threadpool(over.row, session_id)  # 404 before the stream starts
    render = request.app.state.render_entry
    feed: ChangeFeed = request.app.state.changes

    async def events() -> AsyncIterator[str]:
        seq = after
        with feed.stream():
            seen = feed.version
            while _signed_in(request) and not await request.is_disconnected():
                entries = await run_in_threadpool(over.timeline, session_id, after_seq=seq, limit=_PAGE)
                for e in entries:
                    seq = e.seq
                    yield f"event: entry\ndata: {json.dumps({**e.to_json(), 'html': render(e)})}\n\n"
                if entries:
                    row = await run_in_threadpool(over.row, session_id)
                    yield f"event: status\ndata: {json.dumps({'status': row.status, 'pending': row.pending, 'events': row.events})}\n\n"
                if len(entries) == _PAGE:
                    continue  # more to send before waiting
                now = await feed.wait(seen, KEEP_ALIVE_S)
                if now == seen:
                    yield ": keep-alive\n\n"
                seen = now

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})


@router.get("/approvals", summary="Pending calls, oldest first, whole, with the provenance of every argument (paginated)")
async def list_approvals(
    request: Request,
    response: Response,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> list[dict[str, Any]]:
    """At most ``limit`` calls from ``offset``; the ``x-total-count`` header says how many are waiting in all."""
    over = oversight(request)
    page, total = await run_in_threadpool(lambda: over.pending_page(session_id=session_id, limit=limit, offset=offset))
    items = await run_in_threadpool(over.explain_all, page)
    response.headers["x-total-count"] = str(total)
    return [p.to_json() for p in items]


@router.get("/approvals/stream", summary="Server-sent events when the set of pending calls changes")
async def approvals_stream(request: Request) -> StreamingResponse:
    over = oversight(request)
    feed: ChangeFeed = request.app.state.changes

    async def events() -> AsyncIterator[str]:
        pending: frozenset[str] | None = None
        with feed.stream():
            seen = feed.version
            while _signed_in(request) and not await request.is_disconnected():
                now = frozenset(p.call_id for p in await run_in_threadpool(over.pending_approvals))
                if now != pending:
                    pending = now
                    yield f"event: changed\ndata: {json.dumps({'pending': len(now)})}\n\n"
                version = await feed.wait(seen, KEEP_ALIVE_S)
                if version == seen:
                    yield ": keep-alive\n\n"
                seen = version

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})


@router.get("/approvals/{call_id}", summary="One pending call (an id or a unique prefix)")
async def get_approval(request: Request, call_id: ID) -> dict[str, Any]:
    over = oversight(request)
    target = await run_in_threadpool(over.find, call_id)
    return (await run_in_threadpool(over.explain, target)).to_json()


@router.post("/approvals/{call_id}", summary="Approve or deny a pending call")
async def answer_approval(request: Request, call_id: ID, body: Annotated[AnswerBody, Body()], csrf: CSRF = None) -> dict[str, Any]:
    check_csrf(request, csrf)
    remember = (body.remember or []) if body.decision == "approve_and_remember" else None
    out = await run_in_threadpool(
        lambda: oversight(request).answer(
            call_id,
            body.decision != "deny",
            by=request.state.who.name,
            note=body.note,
            remember=remember,
            scope=body.scope,
            expires_in_s=body.expires_in_s,
        )
    )
    return {"session_id": out.session_id, "call_id": out.call_id, "approved": out.approved, "allowed": out.allowed, "message": out.message}


@router.get("/endorsements", summary="Endorsements not revoked, newest first, with the asks each spared")
async def list_endorsements(
    request: Request,
    principal: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    live: bool = False,
) -> list[dict[str, Any]]:
    items = await run_in_threadpool(lambda: oversight(request).endorsements(principal=principal, session_id=session_id, live_only=live))
    return [e.to_json() for e in items]


@router.delete("/endorsements/{endorsement_id}", summary="Revoke an endorsement (an id or a unique prefix)")
async def revoke_endorsement(request: Request, endorsement_id: ID, csrf: CSRF = None) -> dict[str, Any]:
    check_csrf(request, csrf)
    out = await run_in_threadpool(lambda: oversight(request).revoke_endorsement(endorsement_id, by=request.state.who.name))
    return {"revoked": out.id}


@router.post("/sessions/{session_id}/checkin", summary="Check in: a person looked, the session may go on")
async def checkin(
    request: Request, session_id: ID, body: Annotated[ControlBody | None, Body()] = None, csrf: CSRF = None
) -> dict[str, Any]:
    check_csrf(request, csrf)
    note = body.note if body is not None else ""
    row = await run_in_threadpool(lambda: oversight(request).checkin(session_id, by=request.state.who.name, note=note))
    return row.to_json()


async def _control(request: Request, session_id: str, action: Action, body: ControlBody | None, csrf: str | None) -> dict[str, Any]:
    check_csrf(request, csrf)
    note = body.note if body is not None else ""
    out = await run_in_threadpool(lambda: oversight(request).control(session_id, action, by=request.state.who.name, note=note))
    return {"session_id": out.session_id, "status": out.status}


@router.post("/sessions/{session_id}/pause", summary="Pause a session (its pending approvals are denied)")
async def pause(request: Request, session_id: ID, body: Annotated[ControlBody | None, Body()] = None, csrf: CSRF = None) -> dict[str, Any]:
    return await _control(request, session_id, "pause", body, csrf)


@router.post("/sessions/{session_id}/resume", summary="Resume a paused session")
async def resume(request: Request, session_id: ID, body: Annotated[ControlBody | None, Body()] = None, csrf: CSRF = None) -> dict[str, Any]:
    return await _control(request, session_id, "resume", body, csrf)


@router.post("/sessions/{session_id}/kill", summary="Kill a session for good")
async def kill(request: Request, session_id: ID, body: Annotated[ControlBody | None, Body()] = None, csrf: CSRF = None) -> dict[str, Any]:
    return await _control(request, session_id, "kill", body, csrf)


@router.post("/stop", summary="Pause or kill every live session of a principal, or of the whole store")
async def stop(request: Request, body: Annotated[StopBody, Body()], csrf: CSRF = None) -> dict[str, Any]:
    check_csrf(request, csrf)
    if (body.principal is None) == (not body.all):
        raise HTTPException(422, "name a principal, or set all: true to stop every session in the store (not both)")
    outs = await run_in_threadpool(
        lambda: oversight(request).stop(body.action, principal=body.principal, by=request.state.who.name, note=body.note)
    )
    return {"stopped": [{"session_id": o.session_id, "status": o.status, "error": o.error} for o in outs]}


POLICY_HASH = Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{64}$")]


async def _session_exists(request: Request, session_id: str) -> None:
    await run_in_threadpool(oversight(request).row, session_id)  # 404 for an unknown or internal id


@router.get("/sessions/{session_id}/audit", summary="Recompute a session's hash chain: verified up to which event, its head to export")
async def session_audit(request: Request, session_id: ID) -> dict[str, Any]:
    await _session_exists(request, session_id)
    status = await run_in_threadpool(chain_status, oversight(request).store, session_id)
    if status is None:
        raise HTTPException(404, f"no session {session_id!r}")
    return status.to_json()


@router.get("/policies/{policy_hash}", summary="A policy the store keeps, by its content hash")
async def get_policy(request: Request, policy_hash: POLICY_HASH) -> dict[str, Any]:
    text = await run_in_threadpool(oversight(request).store.get_policy, policy_hash)
    if text is None:
        raise HTTPException(404, f"the store holds no policy {policy_hash}")
    return {"hash": policy_hash, "text": text}


@router.get("/sessions/{session_id}/replay", summary="Replay a session under another stored policy: the decisions that change")
async def session_replay(
    request: Request, session_id: ID, policy: Annotated[str, Query(pattern=r"^sha256:[0-9a-f]{64}$")]
) -> dict[str, Any]:
    await _session_exists(request, session_id)
    try:
        calls, rows = await run_in_threadpool(replay_changes, oversight(request).store, session_id, policy)
    except SessionError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"session_id": session_id, "policy": policy, "calls": calls, "changes": [r.to_json() for r in rows]}
