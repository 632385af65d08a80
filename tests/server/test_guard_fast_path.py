"""The lean path of checks and records answers exactly as the FastAPI routes do: the same
answers, the same refusals (unknown session, another principal's session, a call that may not
be recorded), and malformed input handed to FastAPI untouched. A query string sends a request
down the FastAPI route, which makes the two comparable side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.guard_fixtures import POLICY, Tokens, make_tokens, thread_server

ROUTE = {"via": "route"}
"""A query the lean path leaves to FastAPI (the routes ignore it)."""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Tokens]]:
    db = str(tmp_path / "fast.db")
    tokens = make_tokens(db)
    with thread_server(db) as url:
        yield url, tokens


def post(url: str, token: str, path: str, body: Any, params: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return httpx.post(url + path, json=body, params=params, headers=headers, timeout=30, **kw)


def both(url: str, token: str, path: str, body: Any) -> tuple[httpx.Response, httpx.Response]:
    return post(url, token, path, body), post(url, token, path, body, ROUTE)


def test_checks_and_records_answer_as_the_routes_do(api: tuple[str, Tokens]) -> None:
    url, tok = api
    begun = post(url, tok.ana, "/api/guard/sessions", {"task": "Pay alice 10", "principal": "ana", "policy": POLICY}).json()
    path = f"/api/guard/sessions/{begun['session_id']}"
    lean = post(url, tok.ana, f"{path}/check", {"tool": "pay", "args": {"to": "alice", "amount": 10}, "call_id": "c1"})
    route = post(url, tok.ana, f"{path}/check", {"tool": "pay", "args": {"to": "alice", "amount": 10}, "call_id": "c2"}, ROUTE)
    assert lean.status_code == route.status_code == 200
    assert lean.headers["content-type"] == route.headers["content-type"]
    assert lean.headers["x-frame-options"] == "DENY"  # the Gate's headers on the lean path too
    a, b = lean.json(), route.json()
    assert a["call_id"] == "c1" and b["call_id"] == "c2"
    assert {k: v for k, v in a.items() if k not in ("call_id", "call_hash")} == {
        k: v for k, v in b.items() if k not in ("call_id", "call_hash")
    }
    # Asked again: the decision already logged, both ways.
    again = post(url, tok.ana, f"{path}/check", {"tool": "pay", "args": {"to": "alice", "amount": 10}, "call_id": "c1"})
    assert again.json() == {**a, "replayed": True}
    rec = [post(url, tok.ana, f"{path}/record", {"call_id": "c1", "output": "paid"})]
    rec.append(post(url, tok.ana, f"{path}/record", {"call_id": "c2", "output": "paid"}, ROUTE))
    assert [r.status_code for r in rec] == [200, 200]
    assert rec[0].json() == {**rec[1].json(), "call_id": "c1"}
    # Refusals: a result recorded twice, a call never made, an unknown session, another principal's session.
    cases = [
        (tok.ana, f"{path}/record", {"call_id": "c1", "output": "again"}, 409),
        (tok.ana, f"{path}/record", {"call_id": "nope", "output": "x"}, 409),
        (tok.ana, "/api/guard/sessions/nobody/check", {"tool": "pay", "args": {}, "call_id": "x"}, 404),
        (tok.ana, "/api/guard/sessions/nobody/record", {"call_id": "x", "output": "x"}, 404),
    ]
    other = post(url, tok.agent, "/api/guard/sessions", {"task": "Pay bob", "principal": "bo", "policy": POLICY}).json()
    cases.append((tok.ana, f"/api/guard/sessions/{other['session_id']}/check", {"tool": "pay", "args": {}, "call_id": "x"}, 404))
    for token, where, body, status in cases:
        lean, route = both(url, token, where, body)
        assert lean.status_code == route.status_code == status, (where, lean.text, route.text)
        assert lean.json() == route.json()


@pytest.mark.parametrize(
    "body",
    [
        {"tool": "pay", "args": {}},  # no call id
        {"tool": 5, "args": {}, "call_id": "x"},
        {"tool": "pay", "args": {}, "call_id": ""},
        {"tool": "p" * 2000, "args": {}, "call_id": "x"},
        ["not", "an", "object"],
        "just text",
    ],
)
def test_malformed_input_is_refused_by_fastapi_itself(api: tuple[str, Tokens], body: Any) -> None:
    url, tok = api
    sid = post(url, tok.ana, "/api/guard/sessions", {"task": "Pay alice", "principal": "ana", "policy": POLICY}).json()["session_id"]
    lean, route = both(url, tok.ana, f"/api/guard/sessions/{sid}/check", body)
    assert lean.status_code == route.status_code == 422
    assert lean.json() == route.json()


def test_bodies_that_are_not_plain_json_go_to_the_route(api: tuple[str, Tokens]) -> None:
    url, tok = api
    sid = post(url, tok.ana, "/api/guard/sessions", {"task": "Pay alice", "principal": "ana", "policy": POLICY}).json()["session_id"]
    where = f"/api/guard/sessions/{sid}/check"
    headers = {"authorization": f"Bearer {tok.ana}"}
    for content, kind in [(b'{"tool": "pay", "args": {}, "call_id": "t"', "application/json"), (b"tool=pay", "text/plain"), (b"", "")]:
        sent = {**headers, "content-type": kind} if kind else headers
        lean = httpx.post(url + where, content=content, headers=sent, timeout=30)
        route = httpx.post(url + where, content=content, headers=sent, params=ROUTE, timeout=30)
        assert lean.status_code == route.status_code == 422, (kind, lean.text)
        assert lean.json() == route.json()
    # Without a token the Gate refuses before any path is chosen.
    assert httpx.post(url + where, json={"tool": "pay", "args": {}, "call_id": "u"}, timeout=30).status_code == 401


def test_json_nested_too_deep_to_parse_is_refused_as_the_route_does(api: tuple[str, Tokens]) -> None:
    """``json.loads`` raises RecursionError (not ValueError) for a body nested past the interpreter's
    recursion limit: the lean path must hand it to FastAPI (400), never crash the request (500)."""
    url, tok = api
    sid = post(url, tok.ana, "/api/guard/sessions", {"task": "Pay alice", "principal": "ana", "policy": POLICY}).json()["session_id"]
    where = f"/api/guard/sessions/{sid}/check"
    headers = {"authorization": f"Bearer {tok.ana}", "content-type": "application/json"}
    for depth in (3000, 100_000):
        content = b'{"tool": "pay", "call_id": "deep", "args": {"x": ' + b"[" * depth + b"1" + b"]" * depth + b"}}"
        lean = httpx.post(url + where, content=content, headers=headers, timeout=30)
        route = httpx.post(url + where, content=content, headers=headers, params=ROUTE, timeout=30)
        assert lean.status_code == route.status_code == 400, (depth, lean.text)
        assert lean.json() == route.json()
        assert lean.headers["x-frame-options"] == "DENY"


def test_path_tricks_reach_no_other_principals_session(api: tuple[str, Tokens]) -> None:
    """Spellings of the check path (trailing or doubled slashes, percent-encoded slashes or
    letters, another method) either reach the route with its access rule or no route at all: a
    token bound to ``ana`` never gets a decision on another principal's session, and nothing is
    logged there."""
    url, tok = api
    other = post(url, tok.agent, "/api/guard/sessions", {"task": "Pay bob", "principal": "bo", "policy": POLICY}).json()["session_id"]
    body = {"tool": "pay", "args": {"to": "bob", "amount": 1}, "call_id": "trick"}
    paths = [
        f"/api/guard/sessions/{other}/check/",
        f"/api/guard/sessions/{other}//check",
        f"//api/guard/sessions/{other}/check",
        f"/api/guard/sessions/{other}%2Fcheck",
        f"/api/guard/sessions/{other}/%63heck",
        f"/api/guard/sessions/{other[:4]}%{ord(other[4]):02x}{other[5:]}/check",
        f"/api/guard/sessions/x/../{other}/check",
    ]
    headers = {"authorization": f"Bearer {tok.ana}"}
    for path in paths:
        for method in ("POST", "PUT", "HEAD"):
            answer = httpx.request(method, url + path, json=body, headers=headers, timeout=30, follow_redirects=True)
            assert answer.status_code in (403, 404, 405), (method, path, answer.status_code, answer.text)
    events = httpx.get(f"{url}/api/guard/sessions/{other}/events", headers={"authorization": f"Bearer {tok.overseer}"}, timeout=30)
    assert [e for e in events.json() if "trick" in e["body"]] == []
