"""Real guard services for the tests: ``tether serve`` processes (one or many uvicorn workers) or
in-process uvicorn threads on loopback, over one store target.

The store target is one fixture (``store_target``): a SQLite file, or a PostgreSQL URL where a
test parametrizes it so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from tether import Policy
from tether.server import GuardService, Oversight, TokenBook
from tether.server.web import create_app
from tether.session import policy_document
from tether.store import EventStore, open_store

POLICY = """\
tether: 1
name: service-test
description: Agents pay from a small budget; a write after untrusted data asks.
default: deny
budgets:
  max_calls: 40
  max_spend: 100
ask:
  - name: write-after-untrusted
    when:
      all:
        - effect: write
        - args_untrusted: true
    reason: a payment uses values the session only saw in untrusted data
tools:
  read_note:
    effect: read
    output: untrusted
    args:
      n: {type: integer}
  pay:
    effect: write
    output: trusted
    spend: amount
    args:
      to: {type: string, required: true}
      amount: {type: number, required: true, exclusiveMinimum: 0, maximum: 50}
"""


def open_target(target: str) -> EventStore:
    """The store at a test's ``store_target``: a SQLite file or a PostgreSQL URL."""
    return open_store(target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Tokens:
    """An overseer token, an agent token for any principal, and one bound to principal ``ana``."""

    overseer: str
    agent: str
    ana: str


def make_tokens(db: str, *policies: Policy) -> Tokens:
    """The tokens, and the policies an overseer stored for agents (the test policy and ``policies``)."""
    store = open_target(db)
    for policy in (Policy.from_yaml(POLICY), *policies):
        store.put_policy(policy.hash, policy.name, policy_document(policy))
    book = TokenBook(store)
    made = Tokens(book.create("ops"), book.create("bot", role="agent"), book.create("ana-bot", role="agent", principal="ana"))
    store.close()
    return made


def wait_up(url: str, token: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/api/openapi.json", headers={"authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.1)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread of this process, on a free loopback port: its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def thread_server(db: str, *, cache_size: int = 256) -> Iterator[str]:
    """The service in this process (a worker with its own store connection and cache), on a free port."""
    store = open_target(db)
    app = create_app(Oversight(store), TokenBook(store), guard=GuardService(store, cache_size=cache_size))
    try:
        with serving(app) as url:
            yield url
    finally:
        store.close()


@dataclass
class ServeProcess:
    """A ``tether serve`` process and its URL."""

    proc: subprocess.Popen[bytes]
    url: str

    def workers(self) -> list[int]:
        """The pids of its uvicorn worker processes (none with a single worker: it serves itself)."""
        out = []
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{tid}/children") as fh:
                for pid in fh.read().split():
                    with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                        if b"resource_tracker" not in cmd.read():
                            out.append(int(pid))
        return sorted(out)


@contextlib.contextmanager
def serve_process(db: str, token: str, *, workers: int = 1, port: int | None = None) -> Iterator[ServeProcess]:
    """``tether serve --db DB --workers N`` in a new process (tokens already made: none is printed)."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "tether", "serve", "--db", db, "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, token)
        served = ServeProcess(proc, url)
        deadline = time.monotonic() + 30
        while workers > 1 and len(served.workers()) < workers:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        assert proc.stderr is not None
        proc.stderr.close()
