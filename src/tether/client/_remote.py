"""The guard service's Python client: :class:`RemoteGuard` opens sessions on a ``tether serve``
(one URL, or several workers or machines in front of one store), and :class:`RemoteSession`
drives one the way an agent drives an in-process :class:`~tether.session.Session` (both satisfy
:class:`~tether.session.AgentSession`), so an agent switches by configuration.

It fails closed like the in-process session: a check that cannot reach any worker is a deny
(not logged: nothing could be), a record that cannot be delivered raises. A request that failed
in transit is sent again to the next URL; every request is safe to repeat: a check carries a call
id the client chose (the service answers a repeated check with the decision already logged), a
plan its plan id (likewise), a begin its session id, a record and a message say that they are
repeated (what was logged first stands), an answer and an end are idempotent anyway; a repeated
source is logged twice, which changes no decision.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from tether import __version__
from tether._decision import Decision, Reason, ToolCall, new_id
from tether._json import jsonsafe_exact, output_text
from tether.approvals import ApprovalStatus
from tether.errors import SessionError, StoreError
from tether.events import Event, MessageAdded
from tether.flow import TRUSTED, Label
from tether.monitor import PLAN_TOOL
from tether.policy import Policy
from tether.session import policy_document
from tether.store import GENESIS, StoredEvent, chain_break

_PARSED_URLS = 4096
"""Most request URLs a client keeps parsed."""

RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers after which a request is tried on the next URL (a worker or the store is down)."""


class GuardUnavailable(StoreError):
    """No URL of the guard service could carry out the request (unreachable, or its store is down)."""


class RemoteGuard:
    """A guard service (``tether serve``) reached over HTTP with a token.

    ``urls``: one base URL (``http://127.0.0.1:8321``) or several serving the same store; requests
    go to the first that answers, in turn after a failure. ``attempts``: tries per request over
    all URLs (default: twice each, at least 3), ``backoff_s`` doubling between rounds.
    ``transport``: the httpx transport requests go through (default: a keep-alive pool; proxy
    settings in the environment are not read: pass ``httpx.HTTPTransport(proxy=...)`` to use one).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        token: str,
        *,
        timeout_s: float = 30.0,
        attempts: int | None = None,
        backoff_s: float = 0.05,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls: tuple[str, ...] = (urls,) if isinstance(urls, str) else tuple(urls)
        """The service's base URLs."""
        if not self.urls:
            raise ValueError("name at least one URL of the guard service")
        self.attempts = attempts if attempts is not None else max(3, 2 * len(self.urls))
        """Tries per request, over all URLs."""
        self.backoff_s = backoff_s
        """Pause after a round of failures (doubling)."""
        self._headers = [("authorization", f"Bearer {token}"), ("user-agent", f"tether-client/{__version__}")]
        if transport is None:
            # Headers and body go out as two writes: without TCP_NODELAY the body waits for the
            # server's delayed acknowledgement of the headers (tens of milliseconds per request).
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        # Requests go straight to the transport (a keep-alive connection pool): an agent's client
        # needs no cookies, redirects or auth flows, and httpx.Client's layers for them cost about
        # as much CPU per call as the rest of the request.
        self._transport = transport
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._parsed: dict[str, httpx.URL] = {}
        self._next = itertools.count()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def _url(self, url: str, params: dict[str, Any] | None) -> httpx.URL:
        """``url`` parsed (once per URL: an agent sends to a few paths again and again)."""
        if params:
            return httpx.URL(url, params=params)
        parsed = self._parsed.get(url)
        if parsed is None:
            if len(self._parsed) >= _PARSED_URLS:
                self._parsed.clear()
            parsed = self._parsed[url] = httpx.URL(url)
        return parsed

    def _send(self, method: str, url: str, body: Any, params: dict[str, Any] | None) -> httpx.Response:
        request = httpx.Request(
            method,
            self._url(url, params),
            headers=self._headers,
            json=body,
            extensions={"timeout": self._timeout},
        )
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def __enter__(self) -> RemoteGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, retry_flag: bool = False) -> Any:
        """Send a request to the service, on the next URL after a failure in transit or a 502/503/504.
        ``retry_flag``: mark repeats (``?retry=true``) so the service answers with what it logged
        the first time. Raises :class:`GuardUnavailable`, :class:`SessionError` (404, 409),
        or :class:`GuardServiceError` for other refusals."""
        with self._lock:
            first = next(self._next) % len(self.urls)
        problem = ""
        for attempt in range(self.attempts):
            url = self.urls[(first + attempt) % len(self.urls)]
            if attempt and attempt % len(self.urls) == 0:
                time.sleep(self.backoff_s * 2 ** (attempt // len(self.urls) - 1))
            query = {**(params or {}), "retry": "true"} if retry_flag and attempt else params
            try:
                response = self._send(method, url + path, body, query)
            except httpx.TransportError as exc:
                problem = f"{url}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"{url}: {response.status_code} {_detail(response)}"
                continue
            if response.status_code >= 400:
                raise _refusal(response)
            with self._lock:
                # Stay on a URL that answers (its cache holds the session).
                self._next = itertools.count(first + attempt)
            return json.loads(response.content)
        raise GuardUnavailable(f"the guard service could not carry out {method} {path} after {self.attempts} tries (last: {problem})")

    # ------------------------------------------------------------ sessions

    def put_policy(self, policy: Policy | str) -> str:
        """Keep a policy (a :class:`Policy` or its YAML text) in the service's store, so agents can
        begin sessions under it; returns its hash. Needs an overseer token."""
        text = policy_document(policy) if isinstance(policy, Policy) else policy
        return str(self.request("POST", "/api/guard/policies", body={"policy": text})["policy_hash"])

    def start(
        self,
        task: str,
        *,
        policy: Policy | str | None = None,
        policy_hash: str | None = None,
        principal: str = "user",
        scope: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> RemoteSession:
        """Begin a session for a trusted ``task`` under ``policy`` (a :class:`Policy`, or its YAML
        text) or ``policy_hash``. With an agent token the policy must be one the store holds (an
        overseer stored it: :meth:`put_policy`); an overseer's token stores it on the way."""
        body: dict[str, Any] = {
            "task": task,
            "principal": principal,
            "scope": scope,
            "metadata": metadata,
            "session_id": session_id or new_id(),
        }
        if isinstance(policy, Policy):
            body["policy"] = policy_document(policy)
        elif policy is not None:
            body["policy"] = policy
        if policy_hash is not None:
            body["policy_hash"] = policy_hash
        summary = self.request("POST", "/api/guard/sessions", body=body, retry_flag=True)
        return RemoteSession(self, summary)

    def resume(self, session_id: str) -> RemoteSession:
        """Continue a session (begun here or elsewhere) by its id."""
        return RemoteSession(self, self.request("GET", f"/api/guard/sessions/{_seg(session_id)}"))


class GuardServiceError(SessionError):
    """The service refused a request (401/403: the token may not; 422: malformed), with its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status."""


class RemoteSession:
    """One session served by the guard service, driven like an in-process session."""

    def __init__(self, guard: RemoteGuard, summary: dict[str, Any]) -> None:
        self.guard = guard
        """The service."""
        self.summary = summary
        """The session's last known summary (status, principal, task, policy, budgets, pending asks)."""

    @property
    def id(self) -> str:
        """The session id."""
        return str(self.summary["session_id"])

    @property
    def status(self) -> str:
        """``active``, ``paused``, ``killed`` or ``ended`` (as of the last refresh)."""
        return str(self.summary["status"])

    @property
    def length(self) -> int:
        """Events in the session's chain (as of the last refresh)."""
        return int(self.summary["events"])

    @property
    def task(self) -> str:
        """The trusted task text."""
        return str(self.summary["task"])

    def _path(self, tail: str = "") -> str:
        return f"/api/guard/sessions/{_seg(self.id)}{tail}"

    def check(self, call: ToolCall | str, args: dict[str, Any] | None = None) -> Decision:
        """Decide on a proposed call (logged by the service before it answers). Never raises: a call
        the service cannot be asked about is denied (not logged: nothing could be)."""
        if not isinstance(call, ToolCall):
            call = ToolCall(call, args if args is not None else {})
        call_id = call.id if isinstance(call.id, str) and call.id else new_id()
        tool = call.tool if isinstance(call.tool, str) else repr(call.tool)
        safe, lost = jsonsafe_exact(call.args)
        # What JSON cannot carry faithfully is not decided on a copy: the service denies a non-object (logged).
        sent = safe if lost is None else f"[tether client: the arguments cannot be sent as JSON faithfully ({lost})]"
        try:
            out = self.guard.request("POST", self._path("/check"), body={"tool": tool, "args": sent, "call_id": call_id})
        except (StoreError, SessionError) as exc:
            return Decision("deny", call_id, tool, (Reason("error", "service", f"the guard service did not decide: {exc}"),))
        return _decision(out)

    def declare_plan(self, writes: Any, *, plan_id: str | None = None) -> Decision:
        """Declare the writes the task intends (see :meth:`Session.declare_plan
        <tether.session.Session.declare_plan>`), decided like a call of ``tether.plan`` and logged by
        the service before it answers; an ask is answered by an overseer like any call. The plan id
        is chosen here (default a fresh one), so a declaration sent again after a lost reply gets the
        decision already logged. Never raises: a plan the service cannot be asked about is denied."""
        plan_id = plan_id if isinstance(plan_id, str) and plan_id else new_id()
        safe, lost = jsonsafe_exact(writes)
        # What JSON cannot carry faithfully is not decided on a copy: the service denies a non-list (logged).
        sent = safe if lost is None else f"[tether client: the plan cannot be sent as JSON faithfully ({lost})]"
        try:
            out = self.guard.request("POST", self._path("/plans"), body={"writes": sent, "plan_id": plan_id})
        except (StoreError, SessionError) as exc:
            return Decision("deny", plan_id, PLAN_TOOL, (Reason("error", "service", f"the guard service did not decide the plan: {exc}"),))
        return _decision(out)

    def record_result(self, call_id: str, output: Any, *, error: bool = False) -> Label:
        """Record what an admitted call returned; returns its label. Raises :class:`SessionError`
        for a call that may not have run, :class:`GuardUnavailable` when nothing could be recorded."""
        try:
            text = output_text(output)
        except Exception as exc:
            text, error = f"[tether client: the output could not be read as text ({type(exc).__name__})]", True
        out = self.guard.request("POST", self._path("/record"), body={"call_id": call_id, "output": text, "error": error}, retry_flag=True)
        return Label.from_json(out["label"])

    def add_source(self, text: str, *, label: Label = TRUSTED, origin: str = "user") -> str:
        """Add data the agent read outside a tool call (an agent token may add untrusted data only)."""
        body = {"text": text, "label": label.to_json(), "origin": origin}
        return str(self.guard.request("POST", self._path("/sources"), body=body)["event_id"])

    def approval_status(self, call_id: str) -> ApprovalStatus:
        """``none``, ``pending``, ``approved`` or ``denied``."""
        out = self.guard.request("GET", self._path(f"/approvals/{_seg(call_id)}"))
        status: ApprovalStatus = out["status"]
        return status

    def wait_for_approval(self, call_id: str, *, timeout_s: float | None = None) -> bool:
        """Wait until the ask is answered (in the UI, the API or the CLI) or expires; True when the
        call may run. The service holds each request up to 20 s while the ask is pending."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = 20.0 if deadline is None else max(0.0, min(20.0, deadline - time.monotonic()))
            out = self.guard.request("GET", self._path(f"/approvals/{_seg(call_id)}"), params={"wait_s": round(left, 3)})
            if out["status"] != "pending":
                return bool(out["status"] == "approved")
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def answer(self, call_id: str, approved: bool, *, by: str = "", note: str = "") -> bool:
        """Answer a pending ask (needs an overseer token; the token's name is logged as who answered,
        ``by`` is not used). An ask already answered keeps its answer, which is returned (as in
        process: so a :class:`~tether.session.Gate` whose approver waited for a human's answer
        needs no overseer token to confirm it)."""
        status = self.approval_status(call_id)
        if status in ("approved", "denied"):
            return status == "approved"
        out = self.guard.request("POST", self._path(f"/approvals/{_seg(call_id)}"), body={"approved": approved, "note": note})
        return bool(out["allowed"])

    def log_message(self, message: MessageAdded) -> None:
        """Log a message of the agent's conversation (the service stamps its time)."""
        body = message.model_dump(mode="json", exclude={"session_id", "time"})
        self.guard.request("POST", self._path("/messages"), body=body, retry_flag=True)

    def logged(self, after_seq: int = 0) -> list[StoredEvent]:
        """The session's events after ``after_seq`` exactly as logged. Each links to the one before
        (from the chain's start when ``after_seq`` is 0): a service that served an altered or
        reordered log is caught here (:class:`StoreError`)."""
        out: list[StoredEvent] = []
        # After event N the client takes the served predecessor hash of N+1 on trust; from 0 nothing.
        prev: tuple[int, str] | None = (0, GENESIS) if after_seq == 0 else None
        while True:
            page = self.guard.request("GET", self._path("/events"), params={"after": after_seq, "limit": 1000})
            items = [StoredEvent(self.id, int(e["seq"]), e["body"].encode("utf-8"), e["prev_hash"], e["hash"]) for e in page]
            if items:
                start = prev if prev is not None else (after_seq, items[0].prev_hash)
                bad = chain_break(items, *start)
                if bad is not None:
                    raise StoreError(f"session {self.id!r}: event {bad.seq} served by the guard service does not follow the chain")
                prev = (items[-1].seq, items[-1].hash)
            out += items
            if len(page) < 1000:
                return out
            after_seq = items[-1].seq

    def logged_events(self, after_seq: int = 0) -> list[Event]:
        """The session's events after ``after_seq`` (checked as :meth:`logged` does)."""
        return [item.event() for item in self.logged(after_seq)]

    def refresh(self) -> int:
        """Fetch the session's summary again; returns how many events were logged since the last one."""
        before = int(self.summary.get("events", 0))
        self.summary = self.guard.request("GET", self._path())
        return int(self.summary["events"]) - before

    def end(self, reason: str = "completed") -> None:
        """Mark the session finished (pending asks are denied)."""
        self.summary = self.guard.request("POST", self._path("/end"), body={"reason": reason})


def _decision(out: dict[str, Any]) -> Decision:
    reasons = tuple(Reason.from_json(r) for r in out["reasons"])
    return Decision(out["verdict"], out["call_id"], out["tool"], reasons, out["call_hash"], out["policy_hash"])


def _seg(value: str) -> str:
    return quote(value, safe="")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        detail = response.text[:300]
    return str(detail)[:500]


def _refusal(response: httpx.Response) -> SessionError:
    status, detail = response.status_code, _detail(response)
    if status in (404, 409):
        return SessionError(detail)
    return GuardServiceError(status, f"the guard service refused ({status}): {detail}")
