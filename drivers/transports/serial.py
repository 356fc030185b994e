"""Serial ports shared by every device on them (RS485 multi-drop), via pyserial.

Each driver holds its own :class:`SerialTransport`; handles for the same path share one
:class:`_Port`: one pyserial handle, one worker thread, one lock. The single thread is what keeps
frames whole: every write and read of a port runs there in order, so even a transaction whose task
was cancelled mid-way finishes its current write before the next transaction's bytes go out.

A pulled USB adapter makes pyserial fail (EIO, termios.error): that is DeviceOffline, the handle is
closed, and the next transaction opens the path again, which works once udev has put it back.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, ClassVar, TypeVar

from hallctl.errors import DeviceOffline, DeviceTimeout, HallctlError
from hallctl_drivers.transports import Channel, SerialLine

T = TypeVar("T")

#: longest a blocking read holds the port's thread: a transaction that was cancelled while
#: waiting for a reply delays the next one by at most this (s)
_POLL_S = 0.05


def _io_errors() -> tuple[type[BaseException], ...]:
    """What pyserial lets out when a port misbehaves or vanishes (tcflush on a pulled adapter
    raises termios.error, which is not an OSError)."""
    import serial

    errors: tuple[type[BaseException], ...] = (serial.SerialException, OSError)
    try:
        import termios

        errors += (termios.error,)
    except ImportError:  # pragma: no cover - not POSIX
        pass
    return errors


class _Port:
    """One physical port, shared by reference count. Its ``*_blocking`` methods run only in its
    own thread (``call``)."""

    _ports: ClassVar[dict[str, "_Port"]] = {}
    _ports_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, baudrate: int, framing: dict[str, Any]) -> None:
        self.path = path
        self.baudrate = baudrate
        self.framing = framing
        self.users = 0
        self.serial: Any = None
        self.lock = asyncio.Lock()  # one transaction at a time
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"serial {path}")

    @classmethod
    def acquire(cls, path: str, baudrate: int, framing: dict[str, Any]) -> "_Port":
        with cls._ports_lock:
            port = cls._ports.get(path)
            if port is None:
                port = cls._ports[path] = cls(path, baudrate, framing)
            port.users += 1
            return port

    async def release(self) -> None:
        with self._ports_lock:
            self.users -= 1
            if self.users > 0:
                return
            self._ports.pop(self.path, None)
        closing = asyncio.get_running_loop().run_in_executor(self._thread, self.close_blocking)
        self._thread.shutdown(wait=False)  # the close queued above still runs
        await closing

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- in the port's thread -----------------------------------------------------------------

    def open_blocking(self) -> None:
        import serial  # imported here so importing the module stays cheap on a Pi

        if self.serial is not None:
            return
        try:
            self.serial = serial.Serial(
                self.path, self.baudrate, timeout=_POLL_S, **self.framing
            )
        except _io_errors() as exc:
            raise DeviceOffline(f"cannot open {self.path}: {exc}", transport=self.path) from exc

    def close_blocking(self) -> None:
        ser, self.serial = self.serial, None
        if ser is not None:
            try:
                ser.close()
            except _io_errors():
                pass

    def io_blocking(self, fn: Callable[[Any], T]) -> T:
        """``fn(serial)``, opening the port first if needed; a failure closes the handle (the
        next call reopens) and is DeviceOffline."""
        import serial

        self.open_blocking()
        try:
            return fn(self.serial)
        except HallctlError:
            raise  # ours are OSErrors too (DeviceError is an IOError)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"write to {self.path} timed out", transport=self.path) from exc
        except _io_errors() as exc:
            self.close_blocking()
            raise DeviceOffline(f"serial I/O on {self.path} failed: {exc}", transport=self.path) from exc

    def set_baudrate_blocking(self, baudrate: int) -> None:
        self.baudrate = baudrate
        if self.serial is not None:
            self.io_blocking(lambda ser: setattr(ser, "baudrate", baudrate))


def _write(data: bytes) -> Callable[[Any], None]:
    def run(ser: Any) -> None:
        ser.write(data)
        ser.flush()

    return run


def _read_some(ser: Any) -> bytes:
    first = ser.read(1)  # waits up to _POLL_S (the port's timeout)
    return first + ser.read(ser.in_waiting) if first else b""


def _discard(ser: Any) -> None:
    ser.reset_input_buffer()


class _SerialChannel(Channel):
    def __init__(self, port: _Port) -> None:
        self._port = port

    async def write(self, data: bytes) -> None:
        await self._port.call(self._port.io_blocking, _write(bytes(data)))

    async def read(self, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:  # in slices of _POLL_S, so a cancelled read frees the thread soon
            chunk = await self._port.call(self._port.io_blocking, _read_some)
            if chunk or loop.time() >= deadline:
                return chunk

    async def discard_input(self) -> None:
        await self._port.call(self._port.io_blocking, _discard)


class SerialTransport(SerialLine):
    """A handle on a serial port, e.g. ``SerialTransport("/dev/ttyUSB0", 57600)``.

    Handles with the same ``path`` share the port (the first one to open sets its framing and
    speed); each driver on an RS485 bus holds its own handle and ``close()`` releases only that.
    ``baudrate`` / ``set_baudrate()`` let a driver try a device's fallback speeds.
    """

    def __init__(
        self,
        path: str,
        baudrate: int = 9600,
        *,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        write_timeout: float = 5.0,
    ) -> None:
        self.path = self.name = path
        self._baudrate = baudrate
        self._framing = dict(
            bytesize=bytesize, parity=parity, stopbits=stopbits, write_timeout=write_timeout
        )
        self._port: _Port | None = None

    @property
    def users(self) -> int:
        return self._port.users if self._port is not None else 1

    @property
    def baudrate(self) -> int:
        return self._port.baudrate if self._port is not None else self._baudrate

    async def open(self) -> None:
        if self._port is not None:
            return
        port = _Port.acquire(self.path, self._baudrate, self._framing)
        try:
            await port.call(port.open_blocking)
        except BaseException:
            await port.release()
            raise
        self._port = port

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        try:
            async with port.lock:  # let a transaction in progress finish first
                pass
        finally:
            await port.release()  # closes the device only when no other handle is open

    async def set_baudrate(self, baudrate: int) -> None:
        """Change the port's speed (for every handle on it)."""
        port = self._require()
        async with port.lock:
            await port.call(port.set_baudrate_blocking, baudrate)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Channel]:
        port = self._require()
        async with port.lock:
            if self._port is not port:  # closed while we waited for the lock
                raise DeviceOffline(f"{self.path} is closed", transport=self.path)
            yield _SerialChannel(port)

    def _require(self) -> _Port:
        if self._port is None:
            raise DeviceOffline(f"{self.path} is not open", transport=self.path)
        return self._port
