"""One timer for the moments the hall changes with no request and no event: the hall opening or
closing (the catalogue says whether tickets are issued), a print confirmation falling due (the
ticket is voided). Housekeeping's round would find both too, up to a round late; the timer makes
them happen on time, without polling."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Callable, Iterable

#: never sooner than this after arming: a moment that is already due (the clock stands still in a
#: test, a tick failed) must not spin the loop
MIN_DELAY_S = 1.0


class Wakeup:
    """Calls ``wake`` (on the loop) at the earliest of the moments last given to :meth:`arm`."""

    def __init__(self, wake: Callable[[], None], clock: Callable[[], datetime]) -> None:
        self._wake = wake
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, moments: Iterable[datetime | None]) -> None:
        """Wake at the earliest of ``moments`` (None ones ignored) instead of any time armed
        before. Only on the event loop's thread; elsewhere (a blocking tool) it does nothing."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.cancel()
        due = min((m for m in moments if m is not None), default=None)
        if due is not None:
            delay = max(MIN_DELAY_S, (due - self._clock()).total_seconds())
            self._handle = loop.call_later(delay, self._wake)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
