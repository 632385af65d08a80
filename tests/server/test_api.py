"""The JSON API on a real uvicorn server on loopback: what it shows, answers and stops, and what it refuses."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.server.conftest import LONG, Served, agent_session

from tether import SQLiteStore
from tether.events import ApprovalRequested, CallProposed, Event
from tether.server import Oversight, TokenBook


def test_sessions_list_with_status_principal_policy_and_budgets(served: Served) -> None:
    rows = httpx.get(f"{served.url}/api/sessions", headers=served.auth).json()
    (row,) = rows
    assert row["session_id"] == served.session.id and row["status"] == "active" and row["principal"] == "ana"
    assert row["policy"]["name"] == "bank-assistant" and row["policy"]["hash"].startswith("sha256:")
    assert row["pending_approvals"] == 1 and row["events"] == served.session.state.last_seq
    calls = next(b for b in row["budgets"] if b["name"] == "calls")
    assert calls["used"] == 1 and calls["limit"] == 50 and calls["left"] == 49
    assert httpx.get(f"{served.url}/api/sessions", params={"principal": "bob"}, headers=served.auth).json() == []
    assert len(httpx.get(f"{served.url}/api/sessions", params={"status": "active", "q": "inbox"}, headers=served.auth).json()) == 1


def test_events_are_readable(served: Served) -> None:
    events = httpx.get(f"{served.url}/api/sessions/{served.session.id}/events", headers=served.auth).json()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "session_started" and "approval_requested" in kinds
    ask = next(e for e in events if e["kind"] == "decision" and e["verdict"] == "ask")
    assert ask["rules"] == ["write-after-untrusted"]
    result = next(e for e in events if e["kind"] == "result_recorded")
    assert result["label"] == {"integrity": "untrusted", "tags": []}
    later = httpx.get(f"{served.url}/api/sessions/{served.session.id}/events", params={"after": 3}, headers=served.auth).json()
    assert [e["seq"] for e in later] == list(range(4, len(events) + 1))


def test_pending_call_is_whole_with_provenance(served: Served) -> None:
    (item,) = httpx.get(f"{served.url}/api/approvals", headers=served.auth).json()
    assert item["call_id"] == served.pending_call and item["args"]["body"] == LONG
    prov = {p["path"]: p for p in item["provenance"]}
    assert prov["to[0]"]["found"] and prov["to[0]"]["label"]["integrity"] == "untrusted"
    assert prov["to[0]"]["sources"][0]["what"].startswith("output of read_inbox")
    assert prov["body"]["inherited"] and not prov["body"]["found"]
    assert item["reasons"][0]["rule"] == "write-after-untrusted" and item["history"]
    one = httpx.get(f"{served.url}/api/approvals/{served.pending_call[:10]}", headers=served.auth).json()
    assert one["args"] == item["args"]


def test_a_week_of_stale_asks_is_not_read_per_request(served: Served) -> None:
    """Thousands of asks of an abandoned session, expired days ago, stay in the store's index (nobody
    answers them): the service lists, pages and counts only the live ones, in the database."""
    week_ago = time.time() - 7 * 86400
    stale: list[Event] = []
    for i in range(3000):
        call_id = f"stale-{i}"
        stale.append(CallProposed(session_id="abandoned", time=week_ago, call_id=call_id, tool="send_email", args={}, call_hash=call_id))
        stale.append(
            ApprovalRequested(
                session_id="abandoned", time=week_ago, call_id=call_id, call_hash=call_id, expires_at=week_ago + 60, summary=""
            )
        )
    store = SQLiteStore(served.db)
    store.append("abandoned", stale)
    assert len(store.pending_approvals()) == 3001
    over = Oversight(store)
    assert (
        over.pending_count() == 1 and over.pending_count("abandoned") == 0 and over.pending_page(limit=5) == (over.pending_approvals(), 1)
    )
    r = httpx.get(f"{served.url}/api/approvals", params={"limit": 1}, headers=served.auth)
    assert [item["call_id"] for item in r.json()] == [served.pending_call] and r.headers["x-total-count"] == "1"
    r = httpx.get(f"{served.url}/api/approvals", params={"offset": 1}, headers=served.auth)
    assert r.json() == [] and r.headers["x-total-count"] == "1"
    rows = {row["session_id"]: row for row in httpx.get(f"{served.url}/api/sessions", headers=served.auth).json()}
    assert rows[served.session.id]["pending_approvals"] == 1 and rows["abandoned"]["pending_approvals"] == 0
    store.close()


def test_approve_reaches_the_agent(served: Served) -> None:
    r = httpx.post(f"{served.url}/api/approvals/{served.pending_call}", json={"decision": "approve", "note": "ok"}, headers=served.auth)
    assert r.status_code == 200 and r.json()["allowed"] is True and "approved by ops" in r.json()["message"]
    served.session.refresh()  # the agent's process folds in what the service appended
    assert served.session.approval_status(served.pending_call) == "approved"
    again = httpx.post(f"{served.url}/api/approvals/{served.pending_call}", json={"decision": "deny"}, headers=served.auth)
    assert again.status_code == 404  # no longer pending


def test_pause_resume_kill_and_stop_by_principal(served: Served) -> None:
    sid, agent = served.session.id, served.session
    r = httpx.post(f"{served.url}/api/sessions/{sid}/pause", json={"note": "odd"}, headers=served.auth)
    assert r.json() == {"session_id": sid, "status": "paused"}
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "deny"  # a check folds in the pause first
    assert agent.approval_status(served.pending_call) == "denied"
    assert httpx.post(f"{served.url}/api/sessions/{sid}/resume", headers=served.auth).json()["status"] == "active"
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "allow"
    other, _ = agent_session(served.db, principal="bob")
    r = httpx.post(f"{served.url}/api/stop", json={"action": "kill", "principal": "ana"}, headers=served.auth)
    assert [s["session_id"] for s in r.json()["stopped"]] == [sid]
    assert agent.check("read_inbox", {"folder": "inbox"}).verdict == "deny"
    assert other.check("read_inbox", {"folder": "inbox"}).verdict == "allow"
    refused = httpx.post(f"{served.url}/api/sessions/{sid}/resume", headers=served.auth)
    assert refused.status_code == 409 and "killed" in refused.json()["detail"]
    assert httpx.post(f"{served.url}/api/stop", json={"action": "pause"}, headers=served.auth).status_code == 422
    r = httpx.post(f"{served.url}/api/stop", json={"action": "pause", "all": True}, headers=served.auth)
    assert [s["session_id"] for s in r.json()["stopped"]] == [other.id]


def _routes(served: Served) -> list[tuple[str, str]]:
    spec = httpx.get(f"{served.url}/api/openapi.json", headers=served.auth).json()
    out = []
    for path, methods in spec["paths"].items():
        for method in methods:
            out.append((method.upper(), path.replace("{session_id}", served.session.id).replace("{call_id}", served.pending_call)))
    return out


def test_every_route_refuses_without_a_valid_token(served: Served) -> None:
    routes = _routes(served)
    assert len(routes) >= 12
    for method, path in [*routes, ("GET", "/api/openapi.json"), ("GET", "/approvals/list")]:
        for headers in ({}, {"Authorization": "Bearer tth_wrong"}, {"Authorization": f"Basic {served.token}"}):
            r = httpx.request(method, served.url + path, headers=headers, json={"decision": "approve", "action": "kill", "all": True})
            assert r.status_code in (401, 303), (method, path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login")
    assert served.session.approval_status(served.pending_call) == "pending"
    assert served.session.state.status == "active"


def test_revoked_token_is_refused_at_once(served: Served) -> None:
    assert httpx.get(f"{served.url}/api/sessions", headers=served.auth).status_code == 200
    with SQLiteStore(served.db) as store:  # the CLI's own connection, as 'tether serve token revoke' has
        assert TokenBook(store).revoke("ops")
    assert httpx.get(f"{served.url}/api/sessions", headers=served.auth).status_code == 401


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "", "a b"])
def test_unknown_host_header_is_refused(served: Served, host: str) -> None:
    r = httpx.get(f"{served.url}/api/sessions", headers={**served.auth, "Host": host})
    assert r.status_code == 400


def test_cookie_sign_in_needs_csrf_and_same_origin(served: Served) -> None:
    with httpx.Client(base_url=served.url) as browser:
        assert browser.post("/login", data={"token": "tth_nope"}).status_code == 401
        r = browser.post("/login", data={"token": served.token, "next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
        cookie = r.cookies["tether_login"]
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        browser.cookies.set("tether_login", cookie)
        page = browser.get("/approvals")
        assert page.status_code == 200 and "content-security-policy" in page.headers
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        no_csrf = browser.post(f"/sessions/{served.session.id}/control", data={"action": "pause"})
        assert no_csrf.status_code == 403
        api_no_csrf = browser.post(f"/api/sessions/{served.session.id}/pause")
        assert api_no_csrf.status_code == 403
        cross = browser.post(
            f"/sessions/{served.session.id}/control", data={"action": "pause", "csrf": csrf}, headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        assert served.session.check("read_inbox", {"folder": "inbox"}).verdict == "allow"
        ok = browser.post(f"/sessions/{served.session.id}/control", data={"action": "pause", "csrf": csrf}, headers={"Origin": served.url})
        assert ok.status_code == 303
        assert served.session.check("read_inbox", {"folder": "inbox"}).verdict == "deny"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/sessions/nope", None),
        ("GET", "/api/sessions/nope/events", None),
        ("GET", "/api/approvals/nope", None),
        ("POST", "/api/approvals/nope", {"decision": "approve"}),
        ("POST", "/api/sessions/nope/kill", None),
        ("GET", "/api/sessions/" + "x" * 300, None),
        ("POST", "/api/approvals/abc", {"decision": "maybe"}),
        ("POST", "/api/approvals/abc", "not json"),
        ("GET", "/api/sessions/%00", None),
        ("GET", "/api/sessions?status=weird", None),
        ("GET", "/api/sessions/x/events?after=-1", None),
    ],
)
def test_bad_input_is_a_client_error(served: Served, method: str, path: str, body: object) -> None:
    r = httpx.request(method, served.url + path, headers=served.auth, json=body)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


def test_streams_send_new_events_and_end_when_the_token_is_revoked(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        after = served.session.state.last_seq
        with client.stream("GET", f"/api/sessions/{served.session.id}/stream", params={"after": after}) as stream:
            lines = stream.iter_lines()
            served.session.check("read_inbox", {"folder": "inbox"})
            first = [next(lines) for _ in range(2)]
            assert first[0] == "event: entry" and '"kind": "call_proposed"' in first[1] and "read_inbox" in first[1]
            with SQLiteStore(served.db) as store:
                TokenBook(store).revoke("ops")
            rest = list(lines)  # the server ends the stream: iteration stops
            assert len(rest) < 50
