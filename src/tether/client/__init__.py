"""The guard service's Python client (needs ``httpx``: ``tether-guard[agent]``): an agent that runs
elsewhere checks, records and waits for answers through ``tether serve`` with a
:class:`RemoteSession`, which satisfies the same :class:`~tether.session.AgentSession` protocol as an
in-process :class:`~tether.session.Session`."""

from tether.client._remote import GuardServiceError, GuardUnavailable, RemoteGuard, RemoteSession

__all__ = ["GuardServiceError", "GuardUnavailable", "RemoteGuard", "RemoteSession"]
