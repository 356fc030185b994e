"""UsbTransport on a fake pyusb device object.

No real USB device can exist in CI (no printer on the bus, no libusb permission in a container),
so these tests hand the transport a stand-in for ``usb.core.Device`` through its ``find`` hook and
raise pyusb's own exceptions from it. What they pin down is the transport's side: endpoints used,
the kernel driver taken over, timeouts, and a pulled device seen as offline and found again.
"""

from __future__ import annotations

from array import array
from collections import deque
from types import SimpleNamespace

import pytest
import usb.core

from hallctl.errors import DeviceOffline, DeviceTimeout
from hallctl_drivers.transports.usb import UsbTransport

ENODEV, ETIMEDOUT = 19, 110


class FakeUsbDevice:
    """Answers every bulk write on OUT 0x01 with ``replies`` on IN 0x82, in order."""

    def __init__(self, *replies: bytes) -> None:
        self.replies = deque(replies)
        self.inbox: deque[bytes] = deque()
        self.written: list[tuple[int, bytes]] = []
        self.kernel_driver = True  # usblp has it, as on a Pi with a printer plugged in
        self.configured = False
        self.pulled = False
        self.disposed = 0
        self._ctx = SimpleNamespace(dispose=self._dispose)  # what usb.util.dispose_resources calls

    def _dispose(self, _device: object) -> None:
        self.disposed += 1

    def _check(self) -> None:
        if self.pulled:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno=ENODEV)

    def is_kernel_driver_active(self, interface: int) -> bool:
        return self.kernel_driver

    def detach_kernel_driver(self, interface: int) -> None:
        self.kernel_driver = False

    def get_active_configuration(self) -> object:
        if not self.configured:
            raise usb.core.USBError("Configuration not set")
        return object()

    def set_configuration(self) -> None:
        self.configured = True

    def write(self, endpoint: int, data: bytes, timeout: int | None = None) -> int:
        self._check()
        self.written.append((endpoint, bytes(data)))
        if self.replies:
            self.inbox.append(self.replies.popleft())
        return len(data)

    def read(self, endpoint: int, size: int, timeout: int | None = None) -> array:
        self._check()
        assert endpoint == 0x82 and timeout and timeout > 0  # 0 would mean "wait forever"
        if not self.inbox:
            raise usb.core.USBTimeoutError("Operation timed out", errno=ETIMEDOUT)
        return array("B", self.inbox.popleft())


def status_reader(chunk: bytes) -> bytes | None:
    return chunk or None


async def test_bulk_write_and_read_on_the_configured_endpoints() -> None:
    dev = FakeUsbDevice(b"\x12")
    t = UsbTransport(0x0416, 0x5011, find=lambda: dev)
    assert t.name == "usb:0416:5011"
    await t.open()
    assert not dev.kernel_driver and dev.configured  # taken over from usblp, configured
    assert await t.transact(b"\x10\x04\x01", status_reader, timeout=1) == b"\x12"  # DLE EOT 1
    assert dev.written == [(0x01, b"\x10\x04\x01")]
    await t.close()
    await t.close()
    assert dev.disposed == 1


async def test_silence_is_a_timeout() -> None:
    dev = FakeUsbDevice()
    t = UsbTransport(0x0416, 0x5011, find=lambda: dev)
    await t.open()
    with pytest.raises(DeviceTimeout):
        await t.transact(b"\x10\x04\x01", status_reader, timeout=0.05)
    await t.close()


async def test_a_pulled_device_is_offline_until_it_is_found_again() -> None:
    dev: FakeUsbDevice | None = FakeUsbDevice(b"\x12", b"\x12")
    t = UsbTransport(0x0416, 0x5011, find=lambda: dev)
    await t.open()
    assert await t.transact(b"\x10\x04\x01", status_reader, timeout=1) == b"\x12"

    dev.pulled = True
    with pytest.raises(DeviceOffline, match="USB I/O") as exc:
        await t.transact(b"\x10\x04\x01", status_reader, timeout=1)
    assert exc.value.code == "device_offline"
    gone, dev = dev, None  # no longer on the bus
    with pytest.raises(DeviceOffline, match="not connected"):
        await t.transact(b"\x10\x04\x01", status_reader, timeout=1)

    dev = FakeUsbDevice(b"\x12")  # plugged back in: a new device object
    assert await t.transact(b"\x10\x04\x01", status_reader, timeout=1) == b"\x12"
    assert gone.disposed == 1 and dev.written == [(0x01, b"\x10\x04\x01")]
    await t.close()


async def test_a_missing_device_cannot_be_opened() -> None:
    t = UsbTransport(0x0416, 0x5011, serial_number="A1", find=lambda: None)
    assert t.name == "usb:0416:5011:A1"
    with pytest.raises(DeviceOffline, match="not connected"):
        await t.open()
    with pytest.raises(DeviceOffline, match="not open"):
        await t.transact(b"x")
    await t.close()
