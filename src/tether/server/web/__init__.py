"""The oversight service over HTTP: the JSON API, its OpenAPI spec and the web UI (needs ``tether-guard[serve]``)."""

from tether.server.web._app import LOOPBACK_HOSTS, create_app
from tether.server.web._run import serve

__all__ = ["LOOPBACK_HOSTS", "create_app", "serve"]
