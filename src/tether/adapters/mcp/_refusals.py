"""Refused protocol messages into the session's log, bounded: the first few of each kind, then a count.

What the proxy refuses or cuts down at the protocol layer (a method it does not
relay, a request sent as a notification, params members or ``_meta`` it drops,
an answer to an id nobody waits for, a malformed message) is what a client, an
agent or a server tried past the guard: it belongs in the hash-chained log next
to the decisions, not only on stderr. A peer can send such messages as fast as
it can write, so each kind (who sent it, and the class of refusal) logs at most
``burst`` events per ``window_s`` seconds; the rest are counted, and one
``protocol_refused`` event with ``count`` (and the first few methods named)
stands for them when the window is over, at the next refusal of that kind or
when the proxy stops (:meth:`RefusalLog.flush`). Memory is bounded by the number
of kinds (at most :data:`MAX_KINDS`, a fixed set of classes times the client
and the configured servers), never by the number of messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tether.errors import SessionError, StoreError
from tether.events import ProtocolRefused

BURST = 10
"""Refusals of one kind logged one by one per window."""
WINDOW_S = 60.0
"""The window (seconds) after which refusals of a kind are logged one by one again."""
MAX_KINDS = 256
"""Kinds (source and class) tracked at once; beyond that, new kinds share one overflow kind."""
MAX_SAMPLES = 3
"""Methods named in a summary event."""
MAX_METHOD_CHARS = 80
"""A method name longer than this is clipped (the name is the sender's choice)."""
MAX_DETAIL_CHARS = 600
"""A detail longer than this is clipped: details quote the sender's method and member names."""


def clip(text: str, n: int = MAX_METHOD_CHARS) -> str:
    """``text`` cut to ``n`` characters (marked with an ellipsis)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def printable(text: str, n: int = MAX_DETAIL_CHARS) -> str:
    """``text`` clipped to about ``n`` characters with every unprintable character (newlines, terminal
    escapes, line separators) written as its escape, so a sender's text cannot forge a line of the
    proxy's log or swell an event."""
    text = clip(text, n)
    if text.isprintable():
        return text
    return clip("".join(c if c.isprintable() else repr(c)[1:-1] for c in text), n)


@dataclass(slots=True)
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0
    samples: list[str] = field(default_factory=list)


class RefusalLog:
    """Records refused protocol messages through ``record`` (one :class:`ProtocolRefused` each), bounded per kind.

    ``record`` appends an event to the session (it may raise; the refusal is then said on the log
    only). ``say`` writes one line on the proxy's log for every refusal recorded one by one.
    """

    def __init__(
        self,
        session_id: str,
        record: Callable[[ProtocolRefused], None],
        say: Callable[[str], None],
        *,
        burst: int = BURST,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_id = session_id
        self._record = record
        self._say = say
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self.recorded = 0
        """Events written (one by one and summaries)."""
        self.refused = 0
        """Refusals seen in all."""

    def refuse(self, source: str, what: str, method: str, detail: str) -> None:
        """One refused message: logged as an event (and said) while its kind is under the burst, else counted."""
        self.refused += 1
        key = (source, what)
        if key not in self._windows and len(self._windows) >= MAX_KINDS:
            key = ("(several)", "overflow")
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window.start >= self._window_s:
            self._summarise(key, window)
            window = None
        if window is None:
            window = self._windows[key] = _Window(now)
        if window.logged < self._burst:
            window.logged += 1
            detail = printable(detail)
            self._say(detail if detail else printable(f"refused {what} {clip(method)!r} from {source}"))
            self._write(ProtocolRefused(session_id=self._session_id, source=source, what=what, method=clip(method), detail=detail))
            return
        window.suppressed += 1
        if len(window.samples) < MAX_SAMPLES and clip(method) not in window.samples:
            window.samples.append(clip(method))

    def flush(self) -> None:
        """Write the summary of every kind with refusals not yet logged (the proxy stops)."""
        for key, window in list(self._windows.items()):
            self._summarise(key, window)
        self._windows.clear()

    def _summarise(self, key: tuple[str, str], window: _Window) -> None:
        if window.suppressed == 0:
            return
        source, what = key
        seen = ", ".join(repr(m) for m in window.samples)
        detail = f"{window.suppressed} more refused messages of this kind in {self._window_s:g} s, logged as one event" + (
            f" (methods: {seen}{', ...' if window.suppressed > len(window.samples) else ''})" if seen else ""
        )
        self._say(f"{detail} ({what} from {source})")
        self._write(
            ProtocolRefused(
                session_id=self._session_id,
                source=source,
                what=what,
                method=window.samples[0] if window.samples else "",
                detail=detail,
                count=window.suppressed,
            )
        )
        window.suppressed = 0
        window.samples = []

    def _write(self, event: ProtocolRefused) -> None:
        try:
            self._record(event)
            self.recorded += 1
        except (StoreError, SessionError) as exc:  # the refusal stands; its trace is on stderr only
            self._say(f"could not log a refused message ({event.what} from {event.source}): {type(exc).__name__}: {exc}")
