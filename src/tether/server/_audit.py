"""What the oversight service shows of a session's audit chain, its policy, and a replay under another policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.session import replay_session, stored_policy
from tether.store import EventStore


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """A session's hash chain, recomputed now."""

    session_id: str
    """The session."""
    head_seq: int
    """Its last event."""
    head_hash: str
    """The chain hash of that event: export it (``tether audit heads``) to detect later rewriting."""
    verified_to: int
    """Events verified from the first: ``head_seq`` when the whole chain holds."""
    problem: str
    """Where and why the chain breaks (empty: it holds)."""

    @property
    def ok(self) -> bool:
        """The whole chain holds."""
        return not self.problem

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "session_id": self.session_id,
            "ok": self.ok,
            "verified_to": self.verified_to,
            "head": {"session_id": self.session_id, "seq": self.head_seq, "hash": self.head_hash},
            "problem": self.problem,
        }


def chain_status(store: EventStore, session_id: str) -> ChainStatus | None:
    """Recompute the session's chain (None: no such session)."""
    head = store.head(session_id)
    if head is None:
        return None
    report = store.verify([session_id])
    if report.ok:
        return ChainStatus(session_id, head.seq, head.hash, head.seq, "")
    problem = report.problem
    assert problem is not None
    return ChainStatus(session_id, head.seq, head.hash, max(0, problem.seq - 1), f"event {problem.seq}: {problem.message}")


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One recorded call whose verdict changes under the replayed policy."""

    call_id: str
    tool: str
    args: Any
    old_verdict: str
    new_verdict: str
    new_reasons: tuple[str, ...]
    answer: str

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "args": self.args,
            "old_verdict": self.old_verdict,
            "new_verdict": self.new_verdict,
            "new_reasons": list(self.new_reasons),
            "answer": self.answer,
        }


def replay_changes(store: EventStore, session_id: str, policy_hash: str) -> tuple[int, list[ReplayRow]]:
    """Replay a session under the stored policy ``policy_hash``: the calls replayed, and those whose verdict changes.
    Raises ``SessionError`` (no such policy or session) or ``StoreError``."""
    policy = stored_policy(store, policy_hash)
    calls = replay_session(store, session_id, policy)
    rows = [
        ReplayRow(
            c.call_id,
            c.tool,
            c.args,
            c.old_verdict,
            c.new.verdict,
            tuple(f"{r.rule}: {r.message}" for r in c.new.reasons),
            c.answer.describe() if c.answer is not None else "",
        )
        for c in calls
        if c.new.verdict != c.old_verdict
    ]
    return len(calls), rows
