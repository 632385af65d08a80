"""Request bodies are bounded: a holder of any token (an agent's) cannot make a worker of the
service read a body of gigabytes into memory, on the guard API's lean path or through FastAPI's
routes, whether the body says its length or comes in chunks. A body past the bound is refused
(413) before it is read whole, and nothing is logged for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.server.guard_fixtures import POLICY, Tokens, make_tokens, serving

from tether.server import GuardService, Oversight, TokenBook
from tether.server.web import create_app
from tether.store import open_store

LIMIT = 64 * 1024


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Tokens, str]]:
    db = str(tmp_path / "limit.db")
    tokens = make_tokens(db)
    store = open_store(db)
    app = create_app(Oversight(store), TokenBook(store), guard=GuardService(store), max_body=LIMIT)
    try:
        with serving(app) as url:
            yield url, tokens, db
    finally:
        store.close()


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"call_id": "big", "output": "'
    for _ in range(total // 8192):
        yield b"x" * 8192
    yield b'"}'


@pytest.mark.parametrize("params", [None, {"via": "route"}], ids=["lean", "route"])
def test_a_body_past_the_bound_is_refused_and_nothing_is_logged(api: tuple[str, Tokens, str], params: dict[str, str] | None) -> None:
    url, tok, db = api
    headers = {"authorization": f"Bearer {tok.ana}"}
    begun = httpx.post(url + "/api/guard/sessions", json={"task": "Read", "principal": "ana", "policy": POLICY}, headers=headers)
    sid = begun.json()["session_id"]
    check = httpx.post(
        f"{url}/api/guard/sessions/{sid}/check", json={"tool": "read_note", "args": {"n": 1}, "call_id": "big"}, headers=headers
    )
    assert check.json()["verdict"] == "allow"
    where = f"{url}/api/guard/sessions/{sid}/record"
    said = httpx.post(where, json={"call_id": "big", "output": "x" * (2 * LIMIT)}, params=params, headers=headers, timeout=30)
    assert said.status_code == 413, said.text
    chunked = httpx.post(
        where, content=_chunks(4 * LIMIT), params=params, headers={**headers, "content-type": "application/json"}, timeout=30
    )
    assert chunked.status_code == 413, chunked.text
    with open_store(db) as store:
        assert not any(i.event().kind == "result_recorded" for i in store.read(sid))
    # Under the bound the same record goes through.
    small = httpx.post(where, json={"call_id": "big", "output": "x" * (LIMIT // 2)}, params=params, headers=headers, timeout=30)
    assert small.status_code == 200, small.text
