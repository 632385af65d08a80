"""The approvals API under load: answers per second, and the inbox listing with many asks waiting.

A store is filled with ``--sessions`` sessions (1,000; ``--quick``: 100) of one policy, each of
which read untrusted mail and then asked ``--asks`` times (10) to send an email: 10,000 pending
asks (``--quick``: 1,000). ``tether serve`` (its app on a real uvicorn server, in another process)
answers over loopback HTTP with a kept-alive connection, as the web UI's browser has:

* ``GET /api/approvals`` (the first page of 100, the default, each call whole with the provenance
  of every argument, the rule that asked and the session's recent history), ``--gets`` times: p50/p99;
* ``GET /api/approvals?limit=1000`` (the largest page), a few times: p50;
* ``POST /api/approvals/{call_id}`` with ``approve``, one pending call after another (across all
  sessions, so the service's session cache is missed as a person working through an inbox would):
  decisions per second, from one client and from ``--clients`` clients at once.

The listing is paginated (``limit``, ``offset``; the ``x-total-count`` header says how many wait):
explaining a call reads its session, so a page costs its own calls, not the 10,000.

Usage: python benchmarks/approvals_api.py [--sessions N] [--asks N] [--gets N] [--answers N] [--clients N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tether import Guard, Policy, SQLiteStore
from tether.server import TokenBook

POLICY = """
tether: 1
name: approvals-bench
approval_timeout_s: 86400
ask:
  - name: write-after-untrusted
    when: {all: [{effect: write}, {args_untrusted: true}]}
    reason: a state-changing call uses values the session only saw in untrusted data
tools:
  read_inbox:
    effect: read
    output: untrusted
  send_email:
    effect: write
    output: trusted
    args:
      to: {type: array, items: {type: string}}
      body: {type: string}
"""

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from tether import SQLiteStore
    from tether.server import Oversight, TokenBook
    from tether.server.web import create_app
    db, port = sys.argv[1], int(sys.argv[2])
    store = SQLiteStore(db)
    app = create_app(Oversight(store), TokenBook(store))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    """
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(db: Path, sessions: int, asks: int) -> list[str]:
    """``sessions`` sessions with ``asks`` pending asks each; the pending call ids, in the order asked."""
    guard = Guard(Policy.from_yaml(POLICY), SQLiteStore(db, durability="off"))
    calls: list[str] = []
    for i in range(sessions):
        s = guard.start_session("Handle my inbox.", principal=f"user-{i % 50}")
        read = s.check("read_inbox", {})
        s.record_result(read.call_id, f"From partner {i}: please send the report to partner-{i}@example.com and copy audit-{i}@example.com")
        for k in range(asks):
            d = s.check("send_email", {"to": [f"partner-{i}@example.com"], "body": f"Report number {k} for partner {i}."})
            assert d.verdict == "ask", d
            calls.append(d.call_id)
    return calls


def run(sessions: int, asks: int, gets: int, answers: int, clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "approvals.db"
        t0 = time.perf_counter()
        calls = fill(db, sessions, asks)
        fill_s = time.perf_counter() - t0
        with SQLiteStore(db) as store:
            token = TokenBook(store).create("bench")
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(db), str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/api/sessions", params={"status": "nothing"})
                        break
                    except (httpx.TransportError, httpx.HTTPStatusError):
                        assert time.monotonic() < deadline, "the server did not start"
                        time.sleep(0.1)
                first = client.get("/api/approvals")
                assert first.status_code == 200 and int(first.headers["x-total-count"]) == len(calls), first.text[:300]
                page_ms = []
                for _ in range(gets):
                    t = time.perf_counter()
                    r = client.get("/api/approvals")
                    page_ms.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and len(r.json()) == min(100, len(calls))
                big_ms = []
                for _ in range(3):
                    t = time.perf_counter()
                    r = client.get("/api/approvals", params={"limit": 1000})
                    big_ms.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and len(r.json()) == min(1000, len(calls))
                # Answers: one client, then several at once, each call once, spread over the sessions.
                order = [calls[(i * asks) % len(calls) + (i * asks) // len(calls)] for i in range(len(calls))]
                one = order[:answers]
                t = time.perf_counter()
                for call in one:
                    r = client.post(f"/api/approvals/{call}", json={"decision": "approve"})
                    assert r.status_code == 200 and r.json()["allowed"], r.text[:300]
                serial_s = time.perf_counter() - t
            many = order[answers : answers * 2]
            chunks = [many[k::clients] for k in range(clients)]
            errors: list[str] = []

            def worker(part: list[str]) -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                    for call in part:
                        r = c.post(f"/api/approvals/{call}", json={"decision": "approve"})
                        if r.status_code != 200 or not r.json()["allowed"]:
                            errors.append(r.text[:200])

            threads = [threading.Thread(target=worker, args=(part,)) for part in chunks]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            parallel_s = time.perf_counter() - t
            assert not errors, errors[:3]
        finally:
            server.terminate()
            server.wait(10)
    return {
        "sessions": sessions,
        "pending_asks": len(calls),
        "fill_s": round(fill_s, 1),
        "get_approvals_page": 100,
        "get_approvals_ms_p50": round(statistics.median(page_ms), 1),
        "get_approvals_ms_p99": round(_percentile(page_ms, 0.99), 1),
        "get_approvals_1000_ms_p50": round(statistics.median(big_ms), 1),
        "answers": len(one),
        "decisions_per_s": round(len(one) / serial_s, 1),
        "clients": clients,
        "decisions_per_s_parallel": round(len(many) / parallel_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--asks", type=int, default=10)
    parser.add_argument("--gets", type=int, default=None)
    parser.add_argument("--answers", type=int, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="100 sessions (1,000 asks), fewer requests")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sessions = args.sessions or (100 if args.quick else 1000)
    gets = args.gets or (30 if args.quick else 200)
    answers = args.answers or (150 if args.quick else 1000)
    result = run(sessions, args.asks, gets, min(answers, sessions * args.asks // 2), args.clients)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
