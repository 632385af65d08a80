"""The guard as a service: how fast is a logged check through ``tether serve``?

What is measured: real ``tether serve`` processes (``--workers 1`` and ``--workers 2``) on
loopback over one store, and agents (threads of this process, each with its own
:class:`tether.client.RemoteGuard` and its own session) that send logged checks of a read tool as
fast as the answers come, 1, 4 and 16 agents at once. Each check is decided and appended to
the session's chain before it is answered (the same work as an in-process ``session.check``).

* ``rows``: per (workers, agents): decisions per second over the run and the p50/p99 latency of
  one check as the agent sees it (HTTP round trip included).
* ``service_check_p50_ms``: one agent, one worker (the store named by ``--db``).
* ``inprocess_check_p50_ms``: ``session.check`` in this process on a store of the same kind, for
  the same calls; ``service_vs_inprocess_p50`` is their ratio.
* ``speedup_2_workers``: decisions per second with 2 workers / with 1, at 16 agents.
* ``service_cpu_ms_per_check`` / ``client_cpu_ms_per_check``: CPU time the server processes (and
  this client process) spent per check, one agent, one worker: what a check costs whatever the
  machine's load (on a busy machine latency is mostly waiting for a core).

The load generator runs on the same machine as the workers (and competes with them for the
cores). Targets (issue #17): p50 <= 2 ms on loopback; 2 workers >= 1.6x one worker.

Usage: python benchmarks/service_load.py [--quick] [--json] [--db PATH_OR_URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.client import RemoteGuard
from tether.server import TokenBook
from tether.session import policy_document

POLICY = """
tether: 1
name: service-load
default: deny
tools:
  lookup:
    effect: read
    output: trusted
    args:
      key: {type: string, maxLength: 64}
      page: {type: integer, minimum: 0}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (the uvicorn workers)."""
    pids = [root]
    for tid in os.listdir(f"/proc/{root}/task"):
        with open(f"/proc/{root}/task/{tid}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _serve(db: str, token: str, workers: int) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "tether", "serve", "--db", db, "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/openapi.json", headers={"authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tether serve did not come up")
            time.sleep(0.1)
        time.sleep(1.0 if workers > 1 else 0.2)  # let every worker finish starting
        yield url, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load(url: str, pid: int, token: str, agents: int, per_agent: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(agents + 1)
    errors: list[str] = []

    def agent(i: int) -> None:
        with RemoteGuard(url, token) as guard:
            session = guard.start(f"look up keys for agent {i}", policy=POLICY)
            session.check("lookup", {"key": "warm-up", "page": 0})  # a connection, and the session cached
            mine = []
            ready.wait()
            for n in range(per_agent):
                t0 = time.perf_counter()
                d = session.check("lookup", {"key": f"k{i}-{n}", "page": n})
                mine.append(time.perf_counter() - t0)
                if d.verdict != "allow":
                    errors.append(d.explain())
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    ready.wait()
    t0, server0, client0 = time.perf_counter(), _cpu_s(pid), time.process_time()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = _cpu_s(pid) - server0, time.process_time() - client0
    if errors:
        raise RuntimeError(f"unexpected verdicts: {errors[:3]}")
    return {
        "agents": agents,
        "checks": len(latencies),
        "decisions_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(_pct(latencies, 0.5) * 1e3, 3),
        "p99_ms": round(_pct(latencies, 0.99) * 1e3, 3),
        "server_cpu_ms_per_check": round(server_cpu / len(latencies) * 1e3, 3),
        "client_cpu_ms_per_check": round(client_cpu / len(latencies) * 1e3, 3),
    }


def _in_process(db: str, checks: int) -> dict[str, float]:
    store = SQLiteStore(db)
    session = Guard(Policy.from_yaml(POLICY), store).start_session("look up keys in process")
    times = []
    for n in range(checks):
        t0 = time.perf_counter()
        session.check(ToolCall("lookup", {"key": f"k-{n}", "page": n}))
        times.append(time.perf_counter() - t0)
    store.close()
    return {"p50_ms": round(_pct(times, 0.5) * 1e3, 3), "p99_ms": round(_pct(times, 0.99) * 1e3, 3)}


def run(quick: bool, db: str | None) -> dict[str, Any]:
    total = 600 if quick else 3000
    with tempfile.TemporaryDirectory() as tmp:
        target = db or str(Path(tmp) / "service.db")
        if "://" in target:
            raise SystemExit("only a SQLite path is supported until the PostgreSQL store lands (tether.store.open_store)")
        with SQLiteStore(target) as store:
            token = TokenBook(store).create(f"bench-{os.getpid()}", role="agent")
        policy = Policy.from_yaml(POLICY)
        with SQLiteStore(target) as store:  # an overseer's step: agents begin sessions under stored policies only
            store.put_policy(policy.hash, policy.name, policy_document(policy))
        inproc = _in_process(str(Path(tmp) / "inproc.db") if db is None else target, total)
        rows = []
        for workers in (1, 2):
            with _serve(target, token, workers) as (url, pid):
                for agents in (1, 4, 16):
                    rows.append({"workers": workers, **_load(url, pid, token, agents, max(20, total // agents))})
        if db is not None:
            with SQLiteStore(target) as store:
                TokenBook(store).revoke(f"bench-{os.getpid()}")
    by = {(r["workers"], r["agents"]): r for r in rows}
    p50 = by[(1, 1)]["p50_ms"]
    speedup = by[(2, 16)]["decisions_per_s"] / by[(1, 16)]["decisions_per_s"]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    return {
        "store": "sqlite",
        "cores": os.cpu_count(),
        "load_average_1m_before": round(load, 2),
        "rows": rows,
        "service_check_p50_ms": p50,
        "service_check_p99_ms": by[(1, 1)]["p99_ms"],
        "inprocess_check_p50_ms": inproc["p50_ms"],
        "inprocess_check_p99_ms": inproc["p99_ms"],
        "service_vs_inprocess_p50": round(p50 / inproc["p50_ms"], 2),
        "service_cpu_ms_per_check": by[(1, 1)]["server_cpu_ms_per_check"],
        "client_cpu_ms_per_check": by[(1, 1)]["client_cpu_ms_per_check"],
        "speedup_2_workers": round(speedup, 2),
        "targets": {"service_check_p50_ms<=2": p50 <= 2.0, "speedup_2_workers>=1.6": speedup >= 1.6},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer checks per configuration")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--db", default=None, help="the store the service runs on (default: a temporary SQLite file)")
    args = parser.parse_args()
    result = run(args.quick, args.db)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"store {result['store']}, {result['cores']} cores, load {result['load_average_1m_before']}")
    print("workers agents  decisions/s   p50 ms   p99 ms  server cpu ms/check")
    for r in result["rows"]:
        print(
            f"{r['workers']:>7} {r['agents']:>6} {r['decisions_per_s']:>12} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['server_cpu_ms_per_check']:>10}"
        )
    print(
        f"in process: p50 {result['inprocess_check_p50_ms']} ms; service/in-process p50 {result['service_vs_inprocess_p50']}x; "
        f"2 workers / 1 at 16 agents: {result['speedup_2_workers']}x"
    )


if __name__ == "__main__":
    main()
