"""Transports shared by drivers: serial (a shared RS485 port), TCP, USB, GPIO, and in-memory fakes.

A driver speaks a protocol; a transport only moves bytes (python-escpos's split: one command
language over transports that implement raw write/read). Every byte transport has the same small
interface, so a driver is tested on :class:`~hallctl_drivers.transports.fake.FakeTransport` by
comparing the bytes it wrote, and runs on the real thing unchanged::

    transport = SerialTransport("/dev/ttyUSB0", 57600)   # no I/O yet
    await transport.open()                              # DeviceOffline if it is not there
    reply = await transport.transact(frame, read_reply, timeout=2.0)
    async with transport.transaction() as wire:         # the wire is ours until the block ends
        await wire.discard_input()
        await wire.write(frame)                         # a whole frame per call
        chunk = await wire.read(timeout=0.5)            # b"" if nothing came
    await transport.close()                             # idempotent

Promises of every :class:`Transport`:

* the constructor does no I/O; ``open()`` and ``close()`` are idempotent;
* one transaction at a time on the wire, whoever holds the transport (two displays on one RS485
  port never interleave frames); blocking libraries run off the event loop;
* a device that vanishes (a pulled USB adapter, a dropped TCP connection) raises
  :class:`~hallctl.errors.DeviceOffline` and the transport closes its handle; the next
  transaction opens it again, so the driver recovers when the device is back;
* silence is :class:`~hallctl.errors.DeviceTimeout` (from :meth:`Transport.transact`).

A :class:`SerialLine` (``SerialTransport``, and ``FakeTransport`` standing in for one) also has a
``baudrate`` and ``set_baudrate()``, for devices with fallback speeds.

Modules: :mod:`.serial` (``SerialTransport``: one pyserial handle per port path, shared and
reference-counted), :mod:`.tcp` (``TcpTransport``), :mod:`.usb` (``UsbTransport``, bulk endpoints
via pyusb), :mod:`.fake` (``FakeTransport``). :mod:`.gpio` (``GpioPins``) is not a byte stream: it
shares only the lifecycle (open/close) and its fake is gpiozero's own ``MockFactory``. The device
side of a pty for emulators lives in :mod:`.pty`; no production module imports it.
"""

from __future__ import annotations

import abc
import asyncio
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import AsyncIterator, Callable, TypeVar

from hallctl.errors import DeviceOffline, DeviceTimeout

T = TypeVar("T")

__all__ = ["Channel", "ReplyReader", "SerialLine", "Transport", "exclusive"]

#: fed every chunk that arrives after a request; returns the reply once complete, else None
#: (it may raise, e.g. a FrameError for a corrupt reply, which ends the transaction)
ReplyReader = Callable[[bytes], T | None]


class Channel(abc.ABC):
    """The wire inside one transaction (see :meth:`Transport.transaction`)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send ``data``. Write a whole frame per call: a cancelled transaction can stop
        between two calls, never inside one."""

    @abc.abstractmethod
    async def read(self, timeout: float) -> bytes:
        """Bytes that arrived, waiting up to ``timeout`` s for the first one; ``b""`` if none."""

    @abc.abstractmethod
    async def discard_input(self) -> None:
        """Drop what arrived before now (e.g. a late reply to an earlier, timed-out request)."""


class Transport(abc.ABC):
    """A byte transport (see the module docstring for what every implementation promises)."""

    #: where the bytes go, for messages: "/dev/ttyUSB0", "tcp://10.0.0.5:9100", "usb:0416:5011"
    name: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the device (idempotent). Raises DeviceOffline when it is not there."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the device (idempotent). Waits for a transaction in progress."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Channel]:
        """Exclusive use of the wire for the ``async with`` block. Raises DeviceOffline when the
        transport is not open or the device vanished."""

    @property
    def users(self) -> int:
        """How many open handles share this wire (drivers on one RS485 port count each)."""
        return 1

    async def transact(
        self,
        request: bytes,
        read_reply: ReplyReader[T] | None = None,
        *,
        timeout: float = 1.0,
    ) -> T | None:
        """One exchange, exclusive on the wire: drop stale input, write ``request``, feed what
        arrives to ``read_reply`` until it returns a reply. Without ``read_reply`` only writes.
        Raises DeviceTimeout when no complete reply came within ``timeout`` s."""
        loop = asyncio.get_running_loop()
        async with self.transaction() as wire:
            await wire.discard_input()
            await wire.write(request)
            if read_reply is None:
                return None
            deadline = loop.time() + timeout
            while (left := deadline - loop.time()) > 0:
                chunk = await wire.read(left)
                if chunk:
                    reply = read_reply(chunk)
                    if reply is not None:
                        return reply
        raise DeviceTimeout(f"no reply on {self.name} within {timeout:g} s", transport=self.name)


class SerialLine(Transport):
    """A transport with a line speed: a serial port, or a fake standing in for one. Drivers of
    devices with fallback speeds (BX displays: 57600, then 9600) try them with it."""

    @property
    @abc.abstractmethod
    def baudrate(self) -> int: ...

    @abc.abstractmethod
    async def set_baudrate(self, baudrate: int) -> None:
        """Change the speed (of the whole port, for every handle on it)."""


@asynccontextmanager
async def exclusive(name: str, lock: asyncio.Lock, is_open: Callable[[], bool]) -> AsyncIterator[None]:
    """Hold the wire for one transaction: DeviceOffline when the transport is not open, or was
    closed while this waited for the one before."""
    if not is_open():
        raise DeviceOffline(f"{name} is not open", transport=name)
    async with lock:
        if not is_open():
            raise DeviceOffline(f"{name} is closed", transport=name)
        yield
