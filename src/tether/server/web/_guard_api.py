"""The guard API under ``/api/guard/``: agents that run elsewhere begin, check, declare plans,
record, add sources to and end their sessions here; overseers also answer asks (a plan's too).

Who may do what: an ``agent`` token runs sessions (of its own principal when it is bound to
one; other sessions do not exist for it) under policies an overseer stored, may add untrusted
data only, and may refuse its own asks but never approve them: storing policies and approving
are for ``overseer`` tokens (an agent never chooses its own rules or answers its own asks). Every failure is an
HTTP error with a reason (404 unknown session, 409 refused by the session, 422 malformed,
503 store down), never a traceback; a check the guard cannot log is a logged deny.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tether.approvals import ApprovalStatus
from tether.flow import Integrity, label
from tether.server import GuardService
from tether.server.web._auth import Who, check_csrf

ID = Annotated[str, Path(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=1 << 20)]
Retry = Annotated[bool, Query(description="Sent again after a lost reply: what was logged the first time is the answer.")]


async def _csrf(request: Request, csrf: Annotated[str | None, Header(alias="x-csrf-token", max_length=256)] = None) -> None:
    """A write signed in by cookie (a browser) must echo the login's CSRF secret; bearer tokens need not.
    (Async: no worker-thread hop for a check this small.)"""
    if request.method != "GET":
        check_csrf(request, csrf)


router = APIRouter(prefix="/api/guard", tags=["guard"], dependencies=[Depends(_csrf)])


class BeginBody(BaseModel):
    """A new session: the user's task (trusted text), who it acts for and its policy."""

    task: Text
    """The task, as the user gave it (trusted)."""
    principal: str = Field("user", min_length=1, max_length=256)
    """Who the agent acts for."""
    policy_hash: str | None = Field(None, min_length=1, max_length=128)
    """A policy the store already holds, by its content hash..."""
    policy: str | None = Field(None, max_length=1 << 20)
    """...or a policy as YAML text (stored by its hash)."""
    scope: dict[str, Any] | None = None
    """Values the user's task allows for write arguments: ``{"writes": {tool: {arg: [values]}}}``."""
    metadata: dict[str, Any] | None = None
    """Free data kept with the start (runner, model, ...)."""
    session_id: str | None = Field(None, min_length=1, max_length=256)
    """The id to use (the client's choice lets it ask again safely); default a fresh one."""


class CheckBody(BaseModel):
    """A call the agent proposes."""

    tool: str = Field(max_length=1024)
    """The tool's name."""
    args: Any = None
    """Its arguments (an object; anything else is denied and logged)."""
    call_id: str = Field(min_length=1, max_length=256)
    """The client's id for the call: asking again with the same id and call gets the same logged decision."""


class PlanBody(BaseModel):
    """The writes the task intends, declared before (or while) the agent acts."""

    writes: Any = None
    """A list of ``{"tool": NAME, "args": {ARG: VALUE}}`` (an argument left out is unconstrained by
    the plan); anything else is denied and logged."""
    plan_id: str = Field(min_length=1, max_length=256)
    """The client's id for the plan: declaring it again with the same id and writes gets the same logged decision."""


class RecordBody(BaseModel):
    """What an admitted call returned."""

    call_id: str = Field(min_length=1, max_length=256)
    """The call."""
    output: Any = None
    """Its output (text, or JSON made text)."""
    error: bool = False
    """The output is an error."""


class LabelBody(BaseModel):
    """A label: integrity and confidentiality tags."""

    integrity: Integrity = "untrusted"
    """``trusted`` (overseer tokens only) or ``untrusted``."""
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=32)
    """Confidentiality tags such as ``secret``."""


class SourceBody(BaseModel):
    """Data the agent read outside a tool call."""

    text: Text
    """The data."""
    label: LabelBody = Field(default_factory=LabelBody)
    """Its label (default untrusted)."""
    origin: str = Field("user", max_length=256)
    """Where it came from."""


class AnswerBody(BaseModel):
    """A human's answer to an ask."""

    approved: bool
    """Approve (the call is checked again, then may run) or refuse."""
    note: str = Field("", max_length=2000)
    """Why (kept in the log)."""


class EndBody(BaseModel):
    """Why the session ends."""

    reason: str = Field("completed", max_length=256)
    """Kept in the log."""


def _service(request: Request) -> GuardService:
    found: GuardService = request.app.state.guard
    return found


def _who(request: Request) -> Who:
    found: Who = request.state.who
    return found


def _session(request: Request, session_id: str) -> GuardService:
    """The service, after checking that the token may use ``session_id`` (a token bound to
    a principal sees no other principal's sessions)."""
    service, who = _service(request), _who(request)
    if who.principal is not None and service.principal_of(session_id) != who.principal:
        raise HTTPException(404, f"no session {session_id!r}")
    return service


class PolicyBody(BaseModel):
    """A policy to keep in the store."""

    policy: str = Field(max_length=1 << 20)
    """The policy as YAML text."""


@router.post("/policies", summary="Keep a policy in the store so agents can begin sessions under it (overseer tokens only)")
def put_policy(request: Request, body: Annotated[PolicyBody, Body()]) -> dict[str, str]:
    if _who(request).role != "overseer":
        raise HTTPException(403, "only an overseer token may store a policy: an agent never chooses its own rules")
    return _service(request).put_policy(body.policy)


@router.post("/sessions", summary="Begin a session under a stored policy (by hash, or its YAML text)")
def begin(request: Request, body: Annotated[BeginBody, Body()], retry: Retry = False) -> dict[str, Any]:
    who, service = _who(request), _service(request)
    if who.principal is not None and body.principal != who.principal:
        raise HTTPException(403, f"this token acts for principal {who.principal!r} only")
    policy_hash, policy_text = body.policy_hash, body.policy
    if who.role != "overseer" and policy_text is not None and policy_hash is None:
        # An agent names a policy an overseer stored; YAML text is accepted when it is one of those.
        policy_hash = service.stored_hash(policy_text)
        if policy_hash is None:
            raise HTTPException(403, "this policy is not in the store: an overseer stores it first (POST /api/guard/policies)")
        policy_text = None
    return service.begin(
        body.task,
        principal=body.principal,
        policy_hash=policy_hash,
        policy_text=policy_text,
        scope=body.scope,
        metadata=body.metadata,
        session_id=body.session_id,
        retry=retry,
    )


@router.get("/sessions/{session_id}", summary="A session's status, budgets and pending asks")
def summary(request: Request, session_id: ID) -> dict[str, Any]:
    return _session(request, session_id).summary(session_id)


# The hot paths return plain JSON objects: no response model, so no second worker-thread hop to validate them.
@router.post("/sessions/{session_id}/check", summary="Decide on a call (logged before the answer)", response_model=None)
def check(request: Request, session_id: ID, body: Annotated[CheckBody, Body()]) -> dict[str, Any]:
    return _session(request, session_id).check(session_id, body.tool, body.args, body.call_id).to_json()


@router.post(
    "/sessions/{session_id}/plans",
    summary="Declare the writes the task intends: decided like a call of tether.plan (logged before the answer)",
    response_model=None,
)
def declare_plan(request: Request, session_id: ID, body: Annotated[PlanBody, Body()]) -> dict[str, Any]:
    return _session(request, session_id).declare_plan(session_id, body.writes, body.plan_id).to_json()


@router.post("/sessions/{session_id}/record", summary="Record what an admitted call returned; answers its label", response_model=None)
def record(request: Request, session_id: ID, body: Annotated[RecordBody, Body()], retry: Retry = False) -> dict[str, Any]:
    found, replayed = _session(request, session_id).record(session_id, body.call_id, body.output, error=body.error, retry=retry)
    return {"call_id": body.call_id, "label": found.to_json(), "replayed": replayed}


@router.post("/sessions/{session_id}/sources", summary="Add data the agent read outside a tool call")
def add_source(request: Request, session_id: ID, body: Annotated[SourceBody, Body()]) -> dict[str, Any]:
    if body.label.integrity == "trusted" and _who(request).role != "overseer":
        raise HTTPException(403, "an agent token may add untrusted data only (trusted text comes from an overseer token)")
    service = _session(request, session_id)
    event = service.add_source(session_id, body.text, label=label(body.label.integrity, body.label.tags), origin=body.origin)
    return {"event_id": event}


@router.post("/sessions/{session_id}/messages", summary="Log a message of the agent's conversation")
def log_message(request: Request, session_id: ID, body: Annotated[dict[str, Any], Body()], retry: Retry = False) -> dict[str, Any]:
    return {"event_id": _session(request, session_id).log_message(session_id, body, retry=retry)}


@router.get("/sessions/{session_id}/events", summary="A session's events as logged")
def events(
    request: Request,
    session_id: ID,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[dict[str, Any]]:
    return _session(request, session_id).events(session_id, after_seq=after, limit=limit)


WAIT_POLL_S = 0.2
"""How often a held approval request looks at the log again (no worker thread is held in between)."""


@router.get("/sessions/{session_id}/approvals/{call_id}", summary="An ask's status, waiting up to wait_s while it is pending")
async def approval(
    request: Request, session_id: ID, call_id: ID, wait_s: Annotated[float, Query(ge=0, le=20)] = 0.0
) -> dict[str, ApprovalStatus | str]:
    # Waiting happens on the event loop: many agents waiting for humans hold no worker threads.
    service = await run_in_threadpool(_session, request, session_id)
    deadline = time.monotonic() + wait_s
    while True:
        status = await run_in_threadpool(service.approval, session_id, call_id)
        left = deadline - time.monotonic()
        if status != "pending" or left <= 0 or await request.is_disconnected():
            return {"call_id": call_id, "status": status}
        await asyncio.sleep(min(WAIT_POLL_S, left))


@router.post("/sessions/{session_id}/approvals/{call_id}", summary="Answer an ask (approving needs an overseer token)")
def answer(request: Request, session_id: ID, call_id: ID, body: Annotated[AnswerBody, Body()]) -> dict[str, Any]:
    who = _who(request)
    if who.role != "overseer" and body.approved:
        raise HTTPException(403, "only an overseer token may approve an ask: an agent never approves its own calls (it may refuse them)")
    allowed = _session(request, session_id).answer(session_id, call_id, body.approved, by=who.name, note=body.note)
    return {"call_id": call_id, "approved": body.approved, "allowed": allowed}


@router.post("/sessions/{session_id}/end", summary="End a session (its pending asks are denied)")
def end(request: Request, session_id: ID, body: Annotated[EndBody | None, Body()] = None) -> dict[str, Any]:
    return _session(request, session_id).end(session_id, body.reason if body is not None else "completed")
