"""Appends pushed to waiting readers: one LISTEN connection per store, read by a thread.

Every append of the PostgreSQL store sends ``NOTIFY tether_events, '<seq>:<session id>'``
in its transaction, so the notification arrives exactly when the events are committed.
A reader waiting for a session to move (an approval answered, a kill) sleeps on a
condition that this thread wakes, instead of polling the database. While the listening
connection is down the waiters fall back to reading the head every ``fallback_s``, so a
lost notification delays a reader, never leaves it waiting for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

CHANNEL = "tether_events"
"""The channel every append notifies."""
_KNOWN_SESSIONS = 65536


class ChangeListener:
    """Waits for appends to sessions of one database (see the module docstring)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], *, fallback_s: float = 0.5) -> None:
        self._connect = connect
        self._fallback_s = fallback_s
        self._changed = threading.Condition()
        self._resets = 0
        """Times the listener (re)connected: what was appended meanwhile was not notified."""
        self._latest: dict[str, int] = {}
        """The last seq notified per session (bounded: cleared when it grows large)."""
        self._any = 0
        """Appends notified, to any session."""
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tether-pg-listen", daemon=True)
        self._thread.start()

    def wait(self, session_id: str | None, after_seq: int, timeout: float, current: Callable[[], int]) -> bool:
        """Wait until ``current()`` (the session's head, read from the database) passes
        ``after_seq`` or ``timeout`` seconds pass; True when it did."""
        deadline = time.monotonic() + max(0.0, timeout)
        # Listen before the first read, so that an append between the read and the wait wakes us.
        self._listening.wait(min(max(0.0, timeout), 2.0))
        with self._changed:
            seen = (self._resets, self._any)
        if current() > after_seq:
            return True
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                if self._news(session_id, after_seq, seen) is None:
                    self._changed.wait(left if self._listening.is_set() else min(left, self._fallback_s))
                news = self._news(session_id, after_seq, seen)
                seen = (self._resets, self._any)
            # A notification for this session, a reconnect, or no listener: the database decides.
            if (news is not None or not self._listening.is_set()) and current() > after_seq:
                return True

    def wait_any(self, timeout: float) -> bool:
        """Wait until an append to any session is notified (or the listener reconnects, when
        appends may have gone unnotified) or ``timeout`` seconds pass; True when one was."""
        deadline = time.monotonic() + max(0.0, timeout)
        # Seen before the listener is known to be up: its (re)connection then counts as a change,
        # since what was appended before LISTEN took hold was never notified.
        with self._changed:
            seen = (self._resets, self._any)
        self._listening.wait(min(max(0.0, timeout), 2.0))
        with self._changed:
            while (self._resets, self._any) == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def epoch(self) -> int | None:
        """Which unbroken stretch of listening this is (it changes when the listener reconnects, or
        forgets what it was told): None while not listening. Every append committed after the
        stretch began is notified in it (soon after its commit)."""
        with self._changed:
            return self._resets if self._listening.is_set() else None

    def notified(self, session_id: str) -> int:
        """The highest seq notified for ``session_id`` (0: none, or forgotten: see :meth:`epoch`)."""
        with self._changed:
            return self._latest.get(session_id, 0)

    def _news(self, session_id: str | None, after_seq: int, seen: tuple[int, int]) -> bool | None:
        """Whether something was notified since ``seen`` that may concern the waiter: True (yes),
        False (a reconnect: unknown, read the head), None (nothing relevant)."""
        if self._resets != seen[0]:
            return False
        if self._any == seen[1]:
            return None
        if session_id is None:
            return True
        return True if self._latest.get(session_id, 0) > after_seq else None

    def close(self) -> None:
        """Stop listening (the thread ends within about a second)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self._reset()  # what was appended while we were not listening was not notified
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._bump(note.payload)
            except Exception:  # a server restart: wake waiters (they read the head) and reconnect
                self._listening.clear()
                self._reset()
                self._stop.wait(self._fallback_s)
        self._listening.clear()

    def _bump(self, payload: str) -> None:
        seq, _, session_id = payload.partition(":")
        with self._changed:
            self._any += 1
            if seq.isdigit():
                if len(self._latest) >= _KNOWN_SESSIONS and session_id not in self._latest:
                    self._latest.clear()
                    self._resets += 1  # waiters read the head once more
                self._latest[session_id] = max(int(seq), self._latest.get(session_id, 0))
            self._changed.notify_all()

    def _reset(self) -> None:
        with self._changed:
            self._resets += 1
            self._changed.notify_all()
