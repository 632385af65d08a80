"""The guard: the configuration sessions run under (policy, store, detectors, clock, limits),
and the factory that starts them and reopens them from the store (after a crash, or in
another process: the policy itself is kept in the store by its content hash).

A :class:`~tether.session.Session` owns its whole commit path (decide, detect, append, fold,
snapshot); the guard only builds sessions and never reaches into one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tether._decision import new_id
from tether.errors import PolicyError, SessionError
from tether.events import SessionStarted
from tether.flow import FlowLimits, FlowTracker
from tether.monitor import LEDGER_PREFIX, Detector, SessionState
from tether.policy import Policy
from tether.session._inputs import free_text, loggable, shown, text_param
from tether.session._session import Session
from tether.session._snapshot import NEVER, SnapshotPolicy
from tether.store import EventStore, SQLiteStore


def policy_document(policy: Policy) -> str:
    """The self-contained form of a policy kept in the store (its content hash is unchanged)."""
    return json.dumps(policy.spec.model_dump(mode="json", by_alias=True, exclude_unset=True), sort_keys=True, ensure_ascii=False)


def stored_policy(store: EventStore, policy_hash: str) -> Policy:
    """Load a policy the store keeps under ``policy_hash`` (checking that it still has that hash)."""
    text = store.get_policy(policy_hash)
    if text is None:
        raise SessionError(
            f"the store does not hold policy {policy_hash[:19]} (sessions started before policies were stored need --policy)"
        )
    try:
        policy = Policy.from_yaml(text, source=f"store:{policy_hash[:19]}")
    except PolicyError as exc:
        raise SessionError(f"stored policy {policy_hash[:19]} no longer loads: {exc}") from exc
    if policy.hash != policy_hash:
        raise SessionError(f"stored policy {policy_hash[:19]} hashes to {policy.hash[:19]}: the store was altered")
    return policy


def _first_event(store: EventStore, session_id: str) -> SessionStarted:
    first = store.read(session_id, 0, limit=1)
    if not first:
        raise SessionError(f"no session {session_id!r} in the store")
    event = first[0].event()
    if not isinstance(event, SessionStarted):
        raise SessionError(f"session {session_id!r} does not begin with session_started")
    return event


class Guard:
    """The reference monitor's configuration and the factory of its sessions."""

    def __init__(
        self,
        policy: Policy,
        store: EventStore | None = None,
        *,
        detectors: Sequence[Detector] = (),
        clock: Callable[[], float] = time.time,
        snapshot_every: int | None = 5_000,
        snapshot_bytes: int | None = 4 << 20,
        flow_limits: FlowLimits | None = None,
    ) -> None:
        self.policy = policy
        """The policy every decision is made under."""
        self.store: EventStore = store if store is not None else SQLiteStore(":memory:")
        """Where events go."""
        self.detectors = tuple(detectors)
        """Optional checks that can only tighten a decision."""
        self.clock = clock
        """The time source (UTC Unix seconds)."""
        self.snapshots = NEVER if snapshot_every is None else SnapshotPolicy(every_events=snapshot_every, every_bytes=snapshot_bytes)
        """When sessions save snapshots on their own: after ``snapshot_every`` events or ``snapshot_bytes``
        bytes of logged events since the last, whichever comes first (``snapshot_every=None``: never)."""
        self.flow_limits = flow_limits if flow_limits is not None else FlowLimits()
        """Memory bounds of each session's provenance (see :class:`~tether.flow.FlowLimits`)."""
        self._policy_stored = False

    def new_state(self, session_id: str) -> SessionState:
        """The empty state a session's events are folded into."""
        return SessionState(session_id, flow=FlowTracker(self.flow_limits))

    @classmethod
    def for_session(cls, store: EventStore, session_id: str, *, detectors: Sequence[Detector] = ()) -> Guard:
        """A guard for an existing session, under the policy the session was started with
        (read from the store: no policy file needed)."""
        return cls(stored_policy(store, _first_event(store, session_id).policy_hash), store, detectors=detectors)

    def start_session(
        self,
        task: str,
        *,
        principal: str = "user",
        scope: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Begin a session for a trusted ``task`` text."""
        task = free_text("the task", task)
        principal = free_text("the principal", principal)
        sid = new_id() if session_id is None else text_param("session id", session_id, allow_empty=False)
        if sid.startswith(LEDGER_PREFIX):
            raise SessionError(f"session id {sid!r} is refused: ids starting with {LEDGER_PREFIX!r} name principals' ledgers")
        safe_scope = None
        if scope is not None:
            if not isinstance(scope, dict) or not isinstance(scope.get("writes", {}), dict):
                raise SessionError(f"scope must look like {{'writes': {{tool: {{arg: [values]}}}}}}, got {shown(scope)}")
            safe_scope = loggable("scope", scope)
        safe_metadata = loggable("metadata", metadata or {})
        self._store_policy()
        started = SessionStarted(
            session_id=sid,
            time=self.clock(),
            principal=principal,
            task=task,
            policy_hash=self.policy.hash,
            policy_name=self.policy.name,
            scope=safe_scope,
            metadata=safe_metadata,
        )
        return Session.begin(self, started)

    def _store_policy(self) -> None:
        if not self._policy_stored:
            self.store.put_policy(self.policy.hash, self.policy.name, policy_document(self.policy))
            self._policy_stored = True

    def resume_session(self, session_id: str, *, verify: Literal["full", "snapshot"] = "full") -> Session:
        """Rebuild a session from its log (after a crash, or in another process).

        ``verify="full"`` recomputes the whole chain first; the state is then folded
        from the whole log (or from a snapshot when one is bound to the chain).
        """
        if verify == "full":
            report = self.store.verify([session_id])
            if not report.ok:
                assert report.problem is not None
                raise SessionError(f"session {session_id!r} fails verification: {report.problem.message} (event {report.problem.seq})")
        started = _first_event(self.store, session_id)
        if started.policy_hash != self.policy.hash:
            raise SessionError(
                f"session {session_id!r} was started under policy {started.policy_hash[:19]} but this guard has {self.policy.hash[:19]}"
            )
        return Session.load(self, session_id, verified=verify == "full")

    def open_session(self, session_id: str) -> Session:
        """Resume a session quickly (from its latest snapshot when one is bound to the chain)."""
        return self.resume_session(session_id, verify="snapshot")
