"""Run the service: one store, its token file, uvicorn on a loopback address unless told otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn

from tether.server import Oversight, TokenBook, tokens_path
from tether.server.web._app import LOOPBACK_HOSTS, create_app
from tether.store import open_store


def serve(db: str, *, host: str = "127.0.0.1", port: int = 8321, extra_hosts: Sequence[str] = ()) -> None:
    """Serve the store at ``db`` until interrupted. The Host names answered to are the loopback
    names, ``host`` itself and ``extra_hosts``."""
    store = open_store(db)
    try:
        app = create_app(Oversight(store), TokenBook(tokens_path(db)), hosts=(*LOOPBACK_HOSTS, host, *extra_hosts))
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
    finally:
        store.close()
