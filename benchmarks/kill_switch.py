"""Time to halt: from the stop command to the first denied call in another process.

An agent process holds a session and checks a call in a loop (every ``--interval-ms``; 0: as
fast as it can). The controller, another process, kills the session at a random moment and
the agent reports the wall-clock time of its first denied check. Two ways to stop:

* ``direct``: the call ``tether session kill`` makes (``Session.control`` through
  :class:`tether.server.Oversight`), in an already running process: the interpreter start of
  the command line itself (a few hundred ms) is left out, as it is for a human typing it;
* ``http``: ``POST /api/sessions/{id}/kill`` to ``tether serve``'s app on a real uvicorn
  server on loopback (a kept-alive connection, as the web UI's browser has).

Both processes share one SQLite store on disk. Target: p99 <= 100 ms.

Usage: python benchmarks/kill_switch.py [--trials N] [--interval-ms MS] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
import uvicorn

from tether import Guard, Policy, SQLiteStore
from tether.server import Oversight, TokenBook
from tether.server.web import create_app

POLICY = """
tether: 1
name: kill-switch
tools:
  ping:
    effect: read
    output: trusted
"""

AGENT = textwrap.dedent(
    """
    import sys, time
    from tether import SQLiteStore
    from tether.session import Guard
    store = SQLiteStore(sys.argv[1])
    interval = float(sys.argv[2]) / 1000
    for line in sys.stdin:
        sid = line.strip()
        session = Guard.for_session(store, sid).open_session(sid)
        ready = False
        while True:
            verdict = session.check("ping", {}).verdict
            if verdict != "allow":
                print("denied", repr(time.time()), flush=True)
                break
            if not ready:
                print("ready", flush=True)
                ready = True
            if interval:
                time.sleep(interval)
    """
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _server(oversight: Oversight, tokens: TokenBook) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(oversight, tokens), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}"


def measure(trials: int, interval_ms: float) -> dict[str, Any]:
    """Run ``trials`` kills per way of stopping; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "k.db")
        store = SQLiteStore(db)
        guard = Guard(Policy.from_yaml(POLICY), store)
        token = TokenBook(store).create("bench")
        oversight = Oversight(store)
        server, url = _server(oversight, TokenBook(store))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, db, str(interval_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert agent.stdin is not None and agent.stdout is not None
        halts: dict[str, list[float]] = {"direct": [], "http": []}
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
                for i in range(trials * 2):
                    way = "direct" if i % 2 == 0 else "http"
                    sid = guard.start_session("ping until stopped", principal="bench").id
                    agent.stdin.write(sid + "\n")
                    agent.stdin.flush()
                    assert agent.stdout.readline().strip() == "ready"
                    time.sleep(random.uniform(0.01, 0.05))
                    start = time.time()
                    if way == "direct":
                        oversight.control(sid, "kill", by="bench")
                    else:
                        client.post(f"/api/sessions/{sid}/kill").raise_for_status()
                    word, when = agent.stdout.readline().split()
                    assert word == "denied"
                    halts[way].append((float(when) - start) * 1000)
        finally:
            agent.stdin.close()
            agent.wait(10)
            agent.stdout.close()
            server.should_exit = True
            store.close()
    out: dict[str, Any] = {"trials_per_way": trials, "agent_interval_ms": interval_ms}
    for way, values in halts.items():
        out[f"{way}_time_to_halt_ms_p50"] = round(statistics.median(values), 2)
        out[f"{way}_time_to_halt_ms_p99"] = round(_percentile(values, 0.99), 2)
        out[f"{way}_time_to_halt_ms_max"] = round(max(values), 2)
    # The headline figures are the slower way's.
    out["time_to_halt_ms_p50"] = max(out["direct_time_to_halt_ms_p50"], out["http_time_to_halt_ms_p50"])
    out["time_to_halt_ms_p99"] = max(out["direct_time_to_halt_ms_p99"], out["http_time_to_halt_ms_p99"])
    out["target_ms_p99"] = 100
    out["target_met"] = out["time_to_halt_ms_p99"] <= 100
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="Kills per way of stopping (default 200).")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="The agent's pause between checks (default 0: as fast as it can).")
    parser.add_argument("--quick", action="store_true", help="20 kills per way.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    result = measure(20 if args.quick else args.trials, args.interval_ms)
    if args.json:
        print(json.dumps(result))
        return
    for way in ("direct", "http"):
        print(
            f"{way:>6}: time to halt p50 {result[f'{way}_time_to_halt_ms_p50']:.1f} ms, "
            f"p99 {result[f'{way}_time_to_halt_ms_p99']:.1f} ms, max {result[f'{way}_time_to_halt_ms_max']:.1f} ms"
        )
    print(f"target p99 <= 100 ms: {'met' if result['target_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
