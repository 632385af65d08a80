"""Run the service: one store (which keeps its tokens), uvicorn on a loopback address unless told otherwise.

With ``workers`` > 1, uvicorn runs that many worker processes on one port (its supervisor
restarts one that dies); each opens the store itself and builds the app with :func:`worker_app`,
from the configuration this process hands down in the environment. Workers share nothing but
the store, so any of them serves any session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from tether.server import GuardService, Oversight, TokenBook
from tether.server.web._app import LOOPBACK_HOSTS, create_app
from tether.store import EventStore, open_store

_CONFIG = "TETHER_SERVE_WORKER_CONFIG"
"""The environment variable that carries the configuration to worker processes."""


def _open(db: str) -> EventStore:
    """The store a worker serves (one connection per worker process): a SQLite file or a PostgreSQL URL."""
    return open_store(db)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory), configured by the process that started uvicorn."""
    config = json.loads(os.environ[_CONFIG])
    store = _open(config["db"])
    return create_app(
        Oversight(store),
        TokenBook(_open(config["db"])),  # a connection of its own: a check of a token never waits for a session's turn
        hosts=config["hosts"],
        guard=GuardService(store, cache_size=config["cache_size"]),
    )


def serve(
    db: str, *, host: str = "127.0.0.1", port: int = 8321, extra_hosts: Sequence[str] = (), workers: int = 1, cache_size: int = 256
) -> None:
    """Serve the store at ``db`` until interrupted. The Host names answered to are the loopback
    names, ``host`` itself and ``extra_hosts``; ``workers`` processes serve one port; each keeps
    at most ``cache_size`` sessions folded in memory."""
    hosts = [*LOOPBACK_HOSTS, host, *extra_hosts]
    if workers > 1:
        os.environ[_CONFIG] = json.dumps({"db": db, "hosts": hosts, "cache_size": cache_size})
        uvicorn.run(
            "tether.server.web._run:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
        )
        return
    store = _open(db)
    tokens = _open(db)  # a connection of its own: a check of a token never waits for a session's turn
    try:
        app = create_app(Oversight(store), TokenBook(tokens), hosts=hosts, guard=GuardService(store, cache_size=cache_size))
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
    finally:
        tokens.close()
        store.close()
