"""Native USB devices on bulk endpoints (ticket printers, SAM_V ID card readers), via pyusb.

pyusb is imported only when a device is opened (it is slow to import on a Pi and needs libusb).
Every call on the device runs in the transport's own thread, in order. A device that was pulled
answers ENODEV/EIO: that is DeviceOffline, the device is released, and the next transaction
looks for it again. USB-serial adapters (/dev/ttyUSB0) are :mod:`.serial`, not this.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, TypeVar

from hallctl.errors import DeviceOffline, DeviceTimeout, HallctlError
from hallctl_drivers.transports import Channel, Transport, exclusive

T = TypeVar("T")

#: bytes asked for per bulk read: a multiple of every bulk packet size (64 full, 512 high speed)
_READ_SIZE = 4096
#: a discard reads with this timeout (ms) until nothing is left, at most this many times
_DISCARD_MS, _DISCARD_MAX = 1, 16
#: longest one blocking read holds the thread (s): a cancelled transaction delays the next by this
_READ_SLICE_S = 0.1


class UsbTransport(Transport):
    """A USB device by vendor/product id, e.g. ``UsbTransport(0x0416, 0x5011)`` (out 0x01,
    in 0x82, as python-escpos assumes for printers). ``serial_number`` picks one of several
    identical devices. ``find`` replaces the pyusb lookup (it returns a device or None)."""

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        out_ep: int = 0x01,
        in_ep: int = 0x82,
        interface: int = 0,
        serial_number: str | None = None,
        write_timeout: float = 5.0,
        find: Callable[[], Any] | None = None,
    ) -> None:
        self.vendor_id, self.product_id = vendor_id, product_id
        self.out_ep, self.in_ep, self.interface = out_ep, in_ep, interface
        self.serial_number = serial_number
        self.write_timeout = write_timeout
        self.name = f"usb:{vendor_id:04x}:{product_id:04x}" + (
            f":{serial_number}" if serial_number else ""
        )
        self._find = find or self._pyusb_find
        self._open = False
        self._device: Any = None
        self._lock = asyncio.Lock()
        self._thread: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        if self._open:
            return
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        try:
            await self._call(self._open_blocking)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
        self._open = True

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            async with self._lock:  # let a transaction in progress finish first
                pass
        finally:
            closing = self._call(self._release_blocking)
            thread, self._thread = self._thread, None
            assert thread is not None
            thread.shutdown(wait=False)  # the release queued above still runs
            await closing

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Channel]:
        async with exclusive(self.name, self._lock, lambda: self._open):
            yield _UsbChannel(self)

    def _call(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        assert self._thread is not None
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- in the transport's thread ------------------------------------------------------------

    def _pyusb_find(self) -> Any:
        import usb.core  # lazily: see the module docstring

        match = None
        if self.serial_number is not None:
            match = lambda d: d.serial_number == self.serial_number  # noqa: E731
        return usb.core.find(idVendor=self.vendor_id, idProduct=self.product_id, custom_match=match)

    def _open_blocking(self) -> None:
        import usb.core

        if self._device is not None:
            return
        try:
            dev = self._find()
        except usb.core.NoBackendError as exc:
            raise DeviceOffline(f"{self.name}: no libusb on this machine ({exc})", transport=self.name) from exc
        if dev is None:
            raise DeviceOffline(f"{self.name} is not connected", transport=self.name)
        try:
            try:  # a printer class device is bound to the kernel's usblp: take it over
                if dev.is_kernel_driver_active(self.interface):
                    dev.detach_kernel_driver(self.interface)
            except NotImplementedError:  # backends other than libusb1 cannot tell
                pass
            try:
                dev.get_active_configuration()
            except usb.core.USBError:  # not configured yet
                dev.set_configuration()
        except usb.core.USBError as exc:
            self._dispose(dev)
            raise DeviceOffline(f"cannot open {self.name}: {exc}", transport=self.name) from exc
        self._device = dev

    def _release_blocking(self) -> None:
        dev, self._device = self._device, None
        if dev is not None:
            self._dispose(dev)

    @staticmethod
    def _dispose(dev: Any) -> None:
        import usb.core
        import usb.util

        try:
            usb.util.dispose_resources(dev)
        except usb.core.USBError:  # a vanished device may fail even this; nothing left to free
            pass

    def io_blocking(self, fn: Callable[[Any], T]) -> T:
        """``fn(device)``, finding the device first if needed; USB errors other than a timeout
        release it (the next call looks again) and are DeviceOffline."""
        import usb.core

        self._open_blocking()
        try:
            return fn(self._device)
        except HallctlError:
            raise
        except usb.core.USBTimeoutError as exc:
            raise DeviceTimeout(f"{self.name} did not take the data in time", transport=self.name) from exc
        except usb.core.USBError as exc:
            self._release_blocking()
            raise DeviceOffline(f"USB I/O on {self.name} failed: {exc}", transport=self.name) from exc

    def write_blocking(self, dev: Any, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = dev.write(self.out_ep, view, timeout=max(1, int(self.write_timeout * 1000)))
            view = view[n:]

    def read_blocking(self, dev: Any, timeout: float) -> bytes:
        import usb.core

        try:  # pyusb reads "0 ms" as "forever": at least 1
            return bytes(dev.read(self.in_ep, _READ_SIZE, timeout=max(1, int(timeout * 1000))))
        except usb.core.USBTimeoutError:
            return b""

    def discard_blocking(self, dev: Any) -> None:
        import usb.core

        for _ in range(_DISCARD_MAX):
            try:
                if not dev.read(self.in_ep, _READ_SIZE, timeout=_DISCARD_MS):
                    return
            except usb.core.USBTimeoutError:
                return


class _UsbChannel(Channel):
    def __init__(self, owner: UsbTransport) -> None:
        self._owner = owner

    async def write(self, data: bytes) -> None:
        o = self._owner
        await o._call(o.io_blocking, lambda dev: o.write_blocking(dev, bytes(data)))

    async def read(self, timeout: float) -> bytes:
        o = self._owner
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = min(_READ_SLICE_S, deadline - loop.time())
            chunk = await o._call(o.io_blocking, lambda dev: o.read_blocking(dev, left))
            if chunk or loop.time() >= deadline:
                return chunk

    async def discard_input(self) -> None:
        o = self._owner
        await o._call(o.io_blocking, o.discard_blocking)
