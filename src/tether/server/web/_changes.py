"""What wakes the web UI's live streams: one thread per app waiting on the store, not a poll per client.

Each stream (a session's timeline, the approvals inbox) used to read the store every 200 ms,
whether anything had changed or not. Now one thread waits in ``EventStore.wait_for_change(None,
...)`` (PostgreSQL: woken by LISTEN/NOTIFY when an append or a token revocation commits, from any
process or machine; SQLite: the store watches the file's ``data_version``, a one-page read, in
that thread only) and counts the changes; every stream awaits the count passing the one it last
read at, on the event loop, and then reads the store once. So a new ask or an answer reaches
every open inbox as soon as it is committed, streams cost nothing while nothing happens, and
however many browsers are open there is one waiting thread, which runs only while a stream is
open and ends within :data:`WAIT_S` of the last stream closing.

Waits are bounded: a stream wakes at least every ``timeout`` seconds (its keep-alive), checks
that its token is still live and its client still there, and reads the store again, so even a
change that fell between two of the thread's waits (a window of a few instructions) or a store
that cannot push changes is seen within that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tether.store import EventStore

WAIT_S = 1.0
"""How long the thread waits on the store at a time (how soon it sees that no stream is left)."""


class ChangeFeed:
    """Counts the store's changes for the streams of one app (see the module docstring)."""

    def __init__(self, store: EventStore, *, wait_s: float = WAIT_S) -> None:
        self.store = store
        """The store whose changes are counted."""
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._version = 0
        self._streams = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> int:
        """Changes seen so far (read it before reading the store; wait for it to pass that)."""
        return self._version

    @property
    def waiting(self) -> bool:
        """Whether the waiting thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Hold the feed open for one stream (the thread runs while any stream holds it)."""
        with self._lock:
            self._streams += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tether-ui-changes", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1

    async def wait(self, seen: int, timeout: float) -> int:
        """Wait until the store changed after version ``seen`` or ``timeout`` seconds passed; the version now."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._version != seen:
                return self._version
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self._version

    def _run(self) -> None:
        failed = False
        while True:
            with self._lock:
                if self._streams <= 0:
                    self._thread = None
                    return
            try:
                changed = self.store.wait_for_change(None, 0, self._wait_s)
            except Exception:
                failed = True
                threading.Event().wait(self._wait_s)
                continue
            if changed or failed:  # after an outage, what was committed meanwhile was not seen: read again
                failed = False
                self._changed()

    def _changed(self) -> None:
        with self._lock:
            self._version += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(event.set)
