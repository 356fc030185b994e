"""One RS485 line of QSystem keypads, shared by the keypad drivers on it.

Keypads speak whenever a key is pressed, so the line is read all the time, by one reader per
port (two readers would take each other's bytes). Each driver attaches its address and gets its
presses; frames to the keypads go out between the reader's short reads (each read holds the port
for at most 50 ms, the serial transport's poll slice). Nothing is ever acknowledged: a frame that
was written is all the host can know.

Keypads belong on a port of their own: a driver that asks its device and waits for the reply
(``Transport.transact``) drops whatever arrived before, a key press included.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Callable, ClassVar

from hallctl.errors import ConfigError, DeviceOffline, HallctlError
from hallctl_drivers.keypad.qsys_codec import KeyPress, PressFramer
from hallctl_drivers.transports import Transport

log = logging.getLogger(__name__)

#: one read of the line; also how long a frame to send may wait for the reader
READ_SLICE_S = 0.05
#: after the adapter vanished, how often the reader tries the port again
REOPEN_S = 0.5
#: a received frame equal to one we sent this recently is our own echo (a half-duplex adapter
#: that hears itself): an LED frame 01 AA 31 07 reads exactly like key '1' of keypad AA
ECHO_S = 0.5

#: called on the event loop with the key of each press at the listener's address
OnPress = Callable[[str], None]


class QsysBus:
    """The shared reader and writer of one port; get it with :meth:`acquire`."""

    _buses: ClassVar[dict[tuple[asyncio.AbstractEventLoop, str], "QsysBus"]] = {}

    def __init__(self, path: str, transport: Transport) -> None:
        self.path = path
        self.transport = transport
        #: why the line is unusable now (the adapter vanished), or None
        self.error: str | None = None
        #: address -> loop time of its last press (a keypad is known to be there once heard)
        self.heard: dict[int, float] = {}
        #: presses from addresses nobody attached (a keypad renumbered or missing in the config)
        self.strays = 0
        self._listeners: dict[int, OnPress] = {}
        self._reader: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._last_sent: dict[int, float] = {}
        self._echoes: collections.deque[tuple[bytes, float]] = collections.deque(maxlen=64)
        self._stray_logged: set[int] = set()

    @classmethod
    def acquire(cls, path: str, transport_factory: Callable[[], Transport]) -> "QsysBus":
        """The bus of ``path`` in this event loop (made on first use, with a transport from
        ``transport_factory``)."""
        key = (asyncio.get_running_loop(), path)
        bus = cls._buses.get(key)
        if bus is None:
            bus = cls._buses[key] = cls(path, transport_factory())
        return bus

    # -- drivers ------------------------------------------------------------------------------

    async def attach(self, address: int, on_press: OnPress) -> None:
        """Listen for ``address``'s presses; opens the port for the first listener. Raises
        DeviceOffline when the port is not there."""
        if address in self._listeners:
            raise ConfigError(f"address 0x{address:02X} on {self.path} is already another keypad device's",
                              key="options.address")
        async with self._opening:
            if not self._listeners:
                try:
                    await self.transport.open()
                except BaseException:
                    self._forget()
                    raise
                self.error = None
                self._reader = asyncio.create_task(self._read_loop(), name=f"keypads on {self.path}")
            elif self.error is not None:
                raise DeviceOffline(self.error, transport=self.path)
            self._listeners[address] = on_press

    async def detach(self, address: int) -> None:
        """Stop listening for ``address``; the last one out closes the port."""
        if self._listeners.pop(address, None) is None:
            return
        async with self._opening:
            if self._listeners:
                return
            self._forget()
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            await self.transport.close()

    async def send(self, address: int, frame: bytes, gap: float = 0.0) -> None:
        """Write one whole frame, at least ``gap`` s after the last one to the same keypad."""
        if self.error is not None:
            raise DeviceOffline(self.error, transport=self.path)
        loop = asyncio.get_running_loop()
        wait = self._last_sent.get(address, float("-inf")) + gap - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        async with self.transport.transaction() as wire:
            await wire.write(frame)
        now = loop.time()
        self._last_sent[address] = now
        if len(frame) == 4:
            self._echoes.append((frame, now))

    # -- the reader ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        framer = PressFramer()
        while True:
            try:
                async with self.transport.transaction() as wire:
                    chunk = await wire.read(READ_SLICE_S)
            except HallctlError as exc:  # the adapter was pulled: the next transaction reopens it
                if self.error is None:
                    log.warning("keypad line %s lost: %s", self.path, exc.message)
                self.error = f"RS485 line {self.path}: {exc.message}"
                framer.reset()
                await asyncio.sleep(REOPEN_S)
                continue
            if self.error is not None:
                log.info("keypad line %s is back", self.path)
                self.error = None
            if not chunk:
                framer.reset()  # a quiet line: a half frame will not be completed now
                continue
            for press in framer.feed(chunk):
                self._dispatch(press)

    def _dispatch(self, press: KeyPress) -> None:
        now = asyncio.get_running_loop().time()
        raw = bytes([0x01, press.address, ord(press.key), 0x07])
        for i, (sent, at) in enumerate(self._echoes):
            if sent == raw and now - at <= ECHO_S:
                del self._echoes[i]
                return
        listener = self._listeners.get(press.address)
        if listener is None:
            self.strays += 1
            if press.address not in self._stray_logged:
                self._stray_logged.add(press.address)
                log.warning("keypad line %s: key %r pressed on address 0x%02X, which no device here has",
                            self.path, press.key, press.address)
            return
        self.heard[press.address] = now
        try:
            listener(press.key)
        except Exception:  # noqa: BLE001 - one driver's bug must not deafen the line
            log.exception("keypad line %s: the listener of 0x%02X failed", self.path, press.address)

    def _forget(self) -> None:
        for key, bus in list(self._buses.items()):
            if bus is self:
                del self._buses[key]
