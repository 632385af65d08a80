"""The guard (reference monitor): a policy, an event store and optional detectors.

It starts sessions, reopens them from the store (after a crash, or in another
process: the policy itself is kept in the store by its content hash), and is the
one place where a decision is tightened by detectors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tether._decision import new_id
from tether.errors import PolicyError, SessionError, StaleSession, StoreError
from tether.events import Event, SessionStarted, SnapshotTaken
from tether.flow import FlowLimits, FlowTracker
from tether.monitor import Detector, SessionState
from tether.policy import Policy
from tether.session import _snapshot as snapshots
from tether.session._inputs import free_text, loggable, shown, text_param
from tether.session._session import Session
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


class Guard:
    """The reference monitor: a policy, an event store, optional detectors."""

    def __init__(
        self,
        policy: Policy,
        store: EventStore | None = None,
        *,
        detectors: Sequence[Detector] = (),
        clock: Callable[[], float] = time.time,
        snapshot_every: int | None = 10_000,
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
        self.snapshot_every = snapshot_every
        """Save a snapshot of a session's state after this many new events (None: never automatically)."""
        self.flow_limits = flow_limits if flow_limits is not None else FlowLimits()
        """Memory bounds of each session's provenance (see :class:`~tether.flow.FlowLimits`)."""
        self._policy_stored = False

    def _new_state(self, session_id: str) -> SessionState:
        return SessionState(session_id, flow=FlowTracker(self.flow_limits))

    @classmethod
    def for_session(cls, store: EventStore, session_id: str, *, detectors: Sequence[Detector] = ()) -> Guard:
        """A guard for an existing session, under the policy the session was started with
        (read from the store: no policy file needed)."""
        first = store.read(session_id, 0, limit=1)
        if not first:
            raise SessionError(f"no session {session_id!r} in the store")
        event = first[0].event()
        if not isinstance(event, SessionStarted):
            raise SessionError(f"session {session_id!r} does not begin with session_started")
        return cls(stored_policy(store, event.policy_hash), store, detectors=detectors)

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
        safe_scope = None
        if scope is not None:
            if not isinstance(scope, dict) or not isinstance(scope.get("writes", {}), dict):
                raise SessionError(f"scope must look like {{'writes': {{tool: {{arg: [values]}}}}}}, got {shown(scope)}")
            safe_scope = loggable("scope", scope)
        safe_metadata = loggable("metadata", metadata or {})
        self._store_policy()
        session = Session(self, self._new_state(sid))
        event = SessionStarted(
            session_id=sid,
            time=self.clock(),
            principal=principal,
            task=task,
            policy_hash=self.policy.hash,
            policy_name=self.policy.name,
            scope=safe_scope,
            metadata=safe_metadata,
        )
        if self.store.head(sid) is not None:
            raise SessionError(f"session {sid!r} already exists")

        def build() -> tuple[list[Event], None]:
            # Another process may have started this id since the check above: the append then
            # loses the race and folds that start; never append a second one after it.
            if session.state.last_seq:
                raise SessionError(f"session {sid!r} already exists")
            return [event], None

        try:
            session._transact(build)
        except StoreError as exc:
            if self.store.head(sid) is not None:
                raise SessionError(f"session {sid!r} already exists") from exc
            raise
        return session

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
        first = self.store.read(session_id, 0, limit=1)
        if not first:
            raise SessionError(f"no session {session_id!r} in the store")
        started = first[0].event()
        if not isinstance(started, SessionStarted):
            raise SessionError(f"session {session_id!r} does not begin with session_started")
        if started.policy_hash != self.policy.hash:
            raise SessionError(
                f"session {session_id!r} was started under policy {started.policy_hash[:19]} but this guard has {self.policy.hash[:19]}"
            )
        restored = snapshots.restore(self.store, session_id, self.policy)
        if restored is None:
            session = Session(self, self._new_state(session_id))
            head = self.store.head(session_id)
            stored = self.store.read(session_id)
            if verify != "full":  # a full verification has just recomputed every hash
                session._check_chain(stored)
            session._apply(stored)
            last = (session.state.last_seq, session.state.last_hash)
            if head is None or last[0] < head.seq or (last[0] == head.seq and last[1] != head.hash):
                raise SessionError(
                    f"session {session_id!r}: the log does not end at its recorded head (truncated?); run 'tether audit verify'"
                )
        else:
            state, tail = restored
            session = Session(self, state)
            session._apply(tail)
        return session

    def open_session(self, session_id: str) -> Session:
        """Resume a session quickly (from its latest snapshot when one is bound to the chain)."""
        return self.resume_session(session_id, verify="snapshot")

    def _maybe_snapshot(self, session: Session) -> None:
        """After a commit: save a snapshot once ``snapshot_every`` events were folded since the last."""
        if self.snapshot_every is not None and session._since_snapshot >= self.snapshot_every:
            self.save_snapshot(session)

    def save_snapshot(self, session: Session) -> bool:
        """Save a snapshot of ``session``'s state now, bound to its chain; False when another
        writer appended first (the next commit tries again) or the store refused it."""
        state = session.state
        try:
            body, digest = snapshots.encode(state)
        except Exception:  # a snapshot only saves time: failing to take one must never fail a commit
            return False
        record = snapshots.record_for(state, body, digest)
        marker = SnapshotTaken(session_id=session.id, time=self.clock(), seq=state.last_seq, digest=digest, policy_hash=self.policy.hash)
        try:
            stored = self.store.append(session.id, [marker], expect_seq=state.last_seq)
            session._apply(stored)
            self.store.put_snapshot(record)
        except (StaleSession, StoreError):
            return False
        session._since_snapshot = 0
        return True
