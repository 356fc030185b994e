"""A technician's test output (a ``show`` on a display, a test pattern on the board, a keypad's
LED) stays up for a while, then the app shows the hall's truth again; a real change of the hall
(a call) ends the hold at once. Shared by the apps that drive a display."""

from __future__ import annotations

import asyncio

#: how long a technician's test output stays (s)
HOLD_S = 30.0


class TestHold:
    """``start()`` when a technician drew on the device; ``active`` while the app must leave it;
    ``wake`` is set when the hold ends so the app's loop shows the truth again."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, wake: asyncio.Event) -> None:
        self.wake = wake
        self._until = 0.0

    def start(self, seconds: float = HOLD_S) -> None:
        loop = asyncio.get_running_loop()
        self._until = loop.time() + seconds
        loop.call_later(seconds, self.wake.set)

    def end(self) -> None:
        self._until = 0.0

    @property
    def active(self) -> bool:
        return asyncio.get_running_loop().time() < self._until
