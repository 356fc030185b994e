"""An in-memory transport for byte-level driver tests (python-escpos's ``Dummy``, with replies).

It behaves like one :class:`~hallctl_drivers.transports.serial.SerialTransport` handle: one
transaction at a time, a baud rate a driver may change, and a device that can vanish::

    fake = FakeTransport(responder=lambda request: ACK)   # answer every write
    fake = FakeTransport(replies=[CORRUPT_ACK, ACK])      # one reply per write, then silence
    driver = SomeDriver(settings, options, transport=fake)
    await driver.start()
    assert fake.written == [PING]                          # exactly the bytes on the wire
    fake.unplug()    # like a pulled USB adapter: I/O fails (DeviceOffline), opening fails
    fake.replug()    # the next transaction opens it again (``fake.opens`` counts the opens)
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Iterable

from hallctl.errors import DeviceOffline
from hallctl_drivers.transports import Channel, SerialLine, exclusive

#: given the bytes of one write, the device's answer (None: it says nothing)
Responder = Callable[[bytes], bytes | None]


class FakeTransport(SerialLine):
    """Records every write (:attr:`written`) and answers from ``responder`` or ``replies``."""

    def __init__(
        self,
        name: str = "fake",
        *,
        responder: Responder | None = None,
        replies: Iterable[bytes] = (),
        baudrate: int = 9600,
    ) -> None:
        self.name = name
        self.responder = responder
        #: scripted answers, one per write (b"" = silence); used when there is no responder
        self.replies: deque[bytes] = deque(replies)
        #: every write, in order, one entry per call
        self.written: list[bytes] = []
        self._baudrate = baudrate
        #: how many times the device was opened (a reopen after a replug counts)
        self.opens = 0
        self.unplugged = False
        self._handle_open = False  # open() was called and close() not yet
        self._device_open = False  # the "OS handle": lost when unplugged, reopened on demand
        self._inbox = bytearray()
        self._arrived = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- the device side, for tests ---------------------------------------------------------

    @property
    def wire(self) -> bytes:
        """Everything written, as one byte string."""
        return b"".join(self.written)

    def feed(self, data: bytes) -> None:
        """Bytes the device sends on its own (or a reply a test wants to time itself)."""
        if data and not self.unplugged:
            self._inbox += data
            self._arrived.set()

    def unplug(self) -> None:
        self.unplugged = True
        self._inbox.clear()

    def replug(self) -> None:
        self.unplugged = False

    # -- Transport ----------------------------------------------------------------------------

    async def open(self) -> None:
        if not self._handle_open:
            self._ensure_device()
            self._handle_open = True

    async def close(self) -> None:
        if self._handle_open:
            async with self._lock:
                self._handle_open = self._device_open = False

    @property
    def baudrate(self) -> int:
        return self._baudrate

    async def set_baudrate(self, baudrate: int) -> None:
        async with self._lock:
            self._baudrate = baudrate

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Channel]:
        async with exclusive(self.name, self._lock, lambda: self._handle_open):
            yield _FakeChannel(self)

    def _ensure_device(self) -> None:
        """Like every serial I/O call: open the device if needed, fail while it is unplugged."""
        if self.unplugged:
            self._device_open = False
            raise DeviceOffline(f"{self.name} is unplugged", transport=self.name)
        if not self._device_open:
            self._device_open = True
            self.opens += 1

    def _answer(self, data: bytes) -> None:
        if self.responder is not None:
            reply = self.responder(data)
        else:
            reply = self.replies.popleft() if self.replies else None
        if reply:
            self.feed(reply)


class _FakeChannel(Channel):
    def __init__(self, fake: FakeTransport) -> None:
        self._fake = fake

    async def write(self, data: bytes) -> None:
        self._fake._ensure_device()
        self._fake.written.append(bytes(data))
        self._fake._answer(bytes(data))

    async def read(self, timeout: float) -> bytes:
        fake = self._fake
        fake._ensure_device()
        if not fake._inbox:
            fake._arrived.clear()
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await fake._arrived.wait()
            except TimeoutError:
                pass
            fake._ensure_device()  # unplugged while we waited
        data = bytes(fake._inbox)
        fake._inbox.clear()
        return data

    async def discard_input(self) -> None:
        self._fake._ensure_device()
        self._fake._inbox.clear()
