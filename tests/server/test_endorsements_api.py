"""Approve and remember, endorsements and check-ins through the JSON API (a real server on loopback)."""

from __future__ import annotations

import httpx
from tests.server.conftest import LONG, Served, agent_session

from tether.events import CheckedIn, EndorsementAdded
from tether.session import Session

PLAIN = "Quarterly figures attached: revenue up 4%."


def _ask_again(session: Session, body: str = LONG) -> str:
    return session.check("send_email", {"to": ["ops-team@company.com"], "body": body}).verdict


def test_approve_and_remember_spares_the_next_identical_ask_until_revoked(served: Served) -> None:
    agent, call = agent_session(served.db, body=PLAIN)
    item = httpx.get(f"{served.url}/api/approvals/{call}", headers=served.auth).json()
    assert item["remember"] == ["to", "body"]  # the arguments whose provenance caused the ask
    long_item = httpx.get(f"{served.url}/api/approvals/{served.pending_call}", headers=served.auth).json()
    assert long_item["remember"] == ["to"]  # a value with a right-to-left override is never endorsed
    r = httpx.post(
        f"{served.url}/api/approvals/{call}",
        json={"action": "approve_and_remember", "note": "ops is ours", "scope": "principal", "expires_in_s": 3600},
        headers=served.auth,
    )
    assert r.status_code == 200 and r.json()["allowed"] is True
    agent.refresh()
    assert _ask_again(agent, PLAIN) == "allow"  # the agent goes on: no new pending call
    assert [p["call_id"] for p in httpx.get(f"{served.url}/api/approvals", headers=served.auth).json()] == [served.pending_call]

    listed = httpx.get(f"{served.url}/api/endorsements", headers=served.auth).json()
    assert {(e["tool"], e["arg"], e["scope"], e["by"]) for e in listed} == {
        ("send_email", "to", "principal", "ops"),
        ("send_email", "body", "principal", "ops"),
    }
    to = next(e for e in listed if e["arg"] == "to")
    assert to["value"] == "ops-team@company.com" and to["live"] and to["spared"] == 1
    assert to["spared_calls"][0]["session_id"] == agent.id
    assert to["expires_at"] is not None and abs(to["expires_at"] - to["time"] - 3600) < 5
    assert httpx.get(f"{served.url}/api/endorsements", params={"principal": "bob"}, headers=served.auth).json() == []

    gone = httpx.delete(f"{served.url}/api/endorsements/{to['id'][:10]}", headers=served.auth)
    assert gone.status_code == 200 and gone.json() == {"revoked": to["id"]}
    assert httpx.delete(f"{served.url}/api/endorsements/{to['id']}", headers=served.auth).status_code == 404
    agent.refresh()
    assert _ask_again(agent, PLAIN) == "ask"


def test_only_named_arguments_are_remembered_and_a_deny_remembers_nothing(served: Served) -> None:
    r = httpx.post(
        f"{served.url}/api/approvals/{served.pending_call}",
        json={"decision": "approve_and_remember", "remember": ["to"]},
        headers=served.auth,
    )
    assert r.status_code == 200
    added = [i.event() for i in served.session.store.read(served.session.id) if isinstance(i.event(), EndorsementAdded)]
    assert [(e.arg, e.scope) for e in added] == [("to", "session")]
    assert added[0].expires_at is not None and abs(added[0].expires_at - added[0].time - 7 * 86400) < 5
    served.session.refresh()
    assert _ask_again(served.session) == "ask"  # the body was not remembered (it inherited the untrusted context)


def test_bad_answers_are_refused(served: Served) -> None:
    url = f"{served.url}/api/approvals/{served.pending_call}"
    for body in (
        {"decision": "approve_and_remember", "expires_in_s": -1},
        {"decision": "approve_and_remember", "scope": "world"},
        {"decision": "approve_and_remember", "remember": [""]},
        {"decision": "maybe"},
    ):
        assert httpx.post(url, json=body, headers=served.auth).status_code == 422
    assert httpx.get(f"{served.url}/api/endorsements").status_code == 401
    assert httpx.delete(f"{served.url}/api/endorsements/x").status_code == 401


def test_checkin_is_logged(served: Served) -> None:
    r = httpx.post(f"{served.url}/api/sessions/{served.session.id}/checkin", json={"note": "all fine"}, headers=served.auth)
    assert r.status_code == 200 and r.json()["checkin"] is None  # this policy sets no check-ins
    events = [i.event() for i in served.session.store.read(served.session.id)]
    assert isinstance(events[-1], CheckedIn) and events[-1].by == "ops" and events[-1].note == "all fine"
    assert httpx.post(f"{served.url}/api/sessions/nope/checkin", headers=served.auth).status_code == 404
