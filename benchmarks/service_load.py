"""The guard as a service: how fast is a logged check through ``tether serve``?

What is measured: real ``tether serve`` processes on loopback over one store, and agents
(threads of this process, each with its own :class:`tether.client.RemoteGuard` and its own
session) that send logged checks of a read tool as fast as the answers come, 1, 4 and 16 agents
at once. Each check is decided and appended to the session's chain before it is answered (the
same work as an in-process ``session.check``).

Stores: a SQLite file (``--workers 1`` and ``2``), and PostgreSQL (``--workers 1`` and ``4``): a
throw-away cluster this script starts (``tests/postgres_cluster.py``: ``initdb`` + ``pg_ctl`` in a
temporary directory, unix socket only) with ``fsync`` on, as a server is deployed; then, for
one agent and one worker, the same cluster with ``fsync`` off (``postgres-fsync-off``: NOT
durable, an OS crash or power loss may lose acknowledged commits; what the commit's flush
costs). ``--db PATH_OR_URL`` measures one existing store instead (SQLite rows for a path,
PostgreSQL rows for a URL); ``--no-postgres`` leaves PostgreSQL out.

* ``rows``: per (store, workers, agents): decisions per second over the run and the p50/p99
  latency of one check as the agent sees it (HTTP round trip included), and CPU time per check
  of the server processes and of this (client) process.
* ``service_check_p50_ms``: one agent, one worker, PostgreSQL (issue #17's key; SQLite when
  PostgreSQL is left out: ``service_check_store`` says which); ``service_check_p50_ms_sqlite``
  and ``..._postgres_fsync_off`` likewise.
* ``inprocess_check_p50_ms[_postgres]``: ``session.check`` in this process on a store of the same
  kind, for the same calls; ``service_vs_inprocess_p50`` is their ratio (SQLite).
* ``speedup_2_workers``: decisions per second with 2 workers / with 1, SQLite, 16 agents;
  ``speedup_4_workers_postgres``: 4 workers / 1, PostgreSQL, 16 agents.
* ``service_cpu_ms_per_check[_postgres]`` / ``client_cpu_ms_per_check``: CPU time the server
  processes (and this client process) spent per check, one agent, one worker: what a check
  costs whatever the machine's load (on a busy machine latency is mostly waiting for a core).
* ``guard_service_in_process_*``: ``GuardService.check`` in this process (no HTTP): p50 and CPU
  per check when the worker trusts the store's change hints (``hints``) and when it reads the
  log's tail before every check (``read_every_time``, as before the hints), interleaved.
* ``--compare-src DIR``: also serve the SQLite one-worker rows from another source tree (an
  older commit's ``src``) in the same run: ``baseline_*`` keys.

The load generator runs on the same machine as the workers (and competes with them for the
cores). Targets (issue #17): p50 <= 2 ms on loopback; 2 workers >= 1.6x one worker.

Usage: python benchmarks/service_load.py [--quick] [--json] [--db PATH_OR_URL] [--no-postgres] [--compare-src DIR]
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

from tether import Guard, Policy, ToolCall
from tether.client import RemoteGuard
from tether.session import policy_document
from tether.store import open_store

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


def _env(src: str | None) -> dict[str, str]:
    """The environment of a ``tether`` subprocess: this process's import path, or ``src`` first."""
    path = [src] if src else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*path, *sys.path])}


def _token(db: str, cwd: str, src: str | None = None) -> str:
    """An agent token for the store at ``db``, made as a user makes one (``tether serve token create``)."""
    name = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "tether", "serve", "token", "create", name, "--db", db, "--role", "agent"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(src), cwd=cwd, check=True)
    return done.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def _serve(db: str, token: str, workers: int, cwd: str, src: str | None = None) -> Iterator[tuple[str, int]]:
    port = _free_port()
    cmd = [sys.executable, "-m", "tether", "serve", "--db", db, "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(src), cwd=cwd, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/openapi.json", headers={"authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
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
        try:
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
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            ready.abort()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    t0, server0, client0 = time.perf_counter(), _cpu_s(pid), time.process_time()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = _cpu_s(pid) - server0, time.process_time() - client0
    if errors:
        raise RuntimeError(f"unexpected verdicts or failures: {errors[:3]}")
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
    store = open_store(db)
    session = Guard(Policy.from_yaml(POLICY), store).start_session("look up keys in process")
    times = []
    for n in range(checks):
        t0 = time.perf_counter()
        session.check(ToolCall("lookup", {"key": f"k-{n}", "page": n}))
        times.append(time.perf_counter() - t0)
    store.close()
    return {"p50_ms": round(_pct(times, 0.5) * 1e3, 3), "p99_ms": round(_pct(times, 0.99) * 1e3, 3)}


class _NoHints:
    """A store seen without its ``known_head``: a worker that reads the log's tail before every
    request (the service before its caches trusted the store's change hints)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "known_head":
            raise AttributeError(name)
        return getattr(self._store, name)


def _service_in_process(db: str, checks: int) -> dict[str, Any]:
    """``GuardService.check`` in this process (no HTTP), with the store's change hints and with a
    catch-up read before every check: p50 and CPU per check, interleaved in rounds."""
    from tether.server import GuardService

    store = open_store(db)
    out: dict[str, Any] = {}
    try:
        services = {"hints": GuardService(store), "read_every_time": GuardService(_NoHints(store))}
        sids = {k: s.begin(f"in-process {k}", principal="bench", policy_text=POLICY)["session_id"] for k, s in services.items()}
        times: dict[str, list[float]] = {k: [] for k in services}
        cpu = dict.fromkeys(services, 0.0)
        for k, service in services.items():  # warm up (and let a PostgreSQL listener start)
            for n in range(20):
                service.check(sids[k], "lookup", {"key": f"w-{n}", "page": n}, f"w-{n}")
        time.sleep(0.5)
        for r in range(10):
            for k, service in services.items():
                c0 = time.process_time()
                for n in range(checks // 10):
                    t0 = time.perf_counter()
                    service.check(sids[k], "lookup", {"key": f"k-{r}-{n}", "page": n}, f"c-{r}-{n}")
                    times[k].append(time.perf_counter() - t0)
                cpu[k] += time.process_time() - c0
        for k in services:
            out[k] = {"p50_ms": round(_pct(times[k], 0.5) * 1e3, 3), "cpu_ms_per_check": round(cpu[k] / len(times[k]) * 1e3, 3)}
        out["reads_skipped"] = services["hints"].reads_skipped
    finally:
        store.close()
    return out


def _prepare(db: str) -> None:
    """An overseer's step: agents begin sessions under stored policies only."""
    policy = Policy.from_yaml(POLICY)
    store = open_store(db)
    try:
        store.put_policy(policy.hash, policy.name, policy_document(policy))
    finally:
        store.close()


def _rows(
    label: str, db: str, cwd: str, total: int, workers: tuple[int, ...], agents: tuple[int, ...], src: str | None = None
) -> list[dict[str, Any]]:
    token = _token(db, cwd, src)
    rows = []
    for n in workers:
        with _serve(db, token, n, cwd, src) as (url, pid):
            for count in agents:
                rows.append({"store": label, "workers": n, **_load(url, pid, token, count, max(20, total // count))})
    return rows


@contextlib.contextmanager
def _cluster() -> Iterator[Any]:
    """A throw-away PostgreSQL cluster, fsync on (``tests/postgres_cluster.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
    from tests.postgres_cluster import PostgresCluster

    cluster = PostgresCluster(fsync=True)
    try:
        yield cluster
    finally:
        cluster.remove()


def _set_fsync(url: str, on: bool) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET fsync = {'on' if on else 'off'}")
        conn.execute("SELECT pg_reload_conf()")


def run(quick: bool, db: str | None, postgres: bool = True, compare_src: str | None = None) -> dict[str, Any]:
    total = 600 if quick else 3000
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_average_1m_before": round(load, 2)}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        sqlite = db if db is not None and "://" not in db else None
        pg = db if db is not None and "://" in db else None
        if db is None:
            sqlite = str(Path(tmp) / "service.db")
            if postgres:
                pg = stack.enter_context(_cluster()).new_database()
        if sqlite is not None:
            _prepare(sqlite)
            inproc = _in_process(str(Path(tmp) / "inproc.db") if db is None else sqlite, total)
            out["inprocess_check_p50_ms"], out["inprocess_check_p99_ms"] = inproc["p50_ms"], inproc["p99_ms"]
            out["guard_service_in_process_sqlite"] = _service_in_process(sqlite, max(200, total // 2))
            rows += _rows("sqlite", sqlite, tmp, total, (1, 2), (1, 4, 16))
            if compare_src:
                base = str(Path(tmp) / "baseline.db")
                _prepare(base)
                rows += _rows("sqlite-baseline", base, tmp, total, (1,), (1, 4), compare_src)
        if pg is not None:
            _prepare(pg)
            inproc = _in_process(pg, max(100, total // 3))
            out["inprocess_check_p50_ms_postgres"] = inproc["p50_ms"]
            out["guard_service_in_process_postgres"] = _service_in_process(pg, max(200, total // 2))
            rows += _rows("postgres", pg, tmp, total, (1, 4), (1, 4, 16))
            if db is None:  # our own cluster: the same without the commit's flush (not durable)
                _set_fsync(pg, False)
                try:
                    rows += _rows("postgres-fsync-off", pg, tmp, total, (1,), (1,))
                finally:
                    _set_fsync(pg, True)
    by = {(r["store"], r["workers"], r["agents"]): r for r in rows}
    out["rows"] = rows
    targets: dict[str, bool] = {}
    if sqlite is not None:
        one = by[("sqlite", 1, 1)]
        out["service_check_p50_ms_sqlite"], out["service_check_p99_ms_sqlite"] = one["p50_ms"], one["p99_ms"]
        out["service_vs_inprocess_p50"] = round(one["p50_ms"] / out["inprocess_check_p50_ms"], 2)
        out["service_cpu_ms_per_check"] = one["server_cpu_ms_per_check"]
        out["client_cpu_ms_per_check"] = one["client_cpu_ms_per_check"]
        speedup = by[("sqlite", 2, 16)]["decisions_per_s"] / by[("sqlite", 1, 16)]["decisions_per_s"]
        out["speedup_2_workers"] = round(speedup, 2)
        targets["service_check_p50_ms_sqlite<=2"] = one["p50_ms"] <= 2.0
        targets["speedup_2_workers>=1.6"] = speedup >= 1.6
        if ("sqlite-baseline", 1, 1) in by:
            base = by[("sqlite-baseline", 1, 1)]
            out["baseline_service_check_p50_ms_sqlite"] = base["p50_ms"]
            out["baseline_service_cpu_ms_per_check"] = base["server_cpu_ms_per_check"]
            out["baseline_client_cpu_ms_per_check"] = base["client_cpu_ms_per_check"]
            out["service_cpu_new_over_baseline"] = round(one["server_cpu_ms_per_check"] / base["server_cpu_ms_per_check"], 2)
    if pg is not None:
        one = by[("postgres", 1, 1)]
        out["service_check_p50_ms_postgres"], out["service_check_p99_ms_postgres"] = one["p50_ms"], one["p99_ms"]
        out["service_cpu_ms_per_check_postgres"] = one["server_cpu_ms_per_check"]
        out["speedup_4_workers_postgres"] = round(
            by[("postgres", 4, 16)]["decisions_per_s"] / by[("postgres", 1, 16)]["decisions_per_s"], 2
        )
        targets["service_check_p50_ms<=2 (postgres, durable)"] = one["p50_ms"] <= 2.0
        if ("postgres-fsync-off", 1, 1) in by:
            off = by[("postgres-fsync-off", 1, 1)]
            out["service_check_p50_ms_postgres_fsync_off"] = off["p50_ms"]
            targets["service_check_p50_ms<=2 (postgres, fsync off: not durable)"] = off["p50_ms"] <= 2.0
    main_store = "postgres" if pg is not None else "sqlite"
    out["service_check_store"] = main_store
    out["service_check_p50_ms"] = out[f"service_check_p50_ms_{main_store}"]
    out["service_check_p99_ms"] = out[f"service_check_p99_ms_{main_store}"]
    out["targets"] = targets
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer checks per configuration")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--db", default=None, help="one existing store to measure (a SQLite path or a PostgreSQL URL)")
    parser.add_argument("--no-postgres", action="store_true", help="leave PostgreSQL out (no throw-away cluster)")
    parser.add_argument("--compare-src", default=None, help="also serve SQLite rows from this source tree (an older src/)")
    args = parser.parse_args()
    result = run(args.quick, args.db, postgres=not args.no_postgres, compare_src=args.compare_src)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['cores']} cores, load {result['load_average_1m_before']}")
    print("store               workers agents  decisions/s   p50 ms   p99 ms  server cpu ms/check  client cpu ms/check")
    for r in result["rows"]:
        print(
            f"{r['store']:<19} {r['workers']:>7} {r['agents']:>6} {r['decisions_per_s']:>12} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['server_cpu_ms_per_check']:>20} {r['client_cpu_ms_per_check']:>20}"
        )
    print({k: v for k, v in result.items() if k not in ("rows",)})


if __name__ == "__main__":
    main()
