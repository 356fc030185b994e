"""SerialTransport through a real pty to a small line device: sharing a port between handles, one
transaction at a time, a pulled USB adapter seen as offline and reopened when it is back."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest
from conftest import line_reader

from hallctl.errors import DeviceOffline, DeviceTimeout
from hallctl_drivers.transports.pty import PtyDevice
from hallctl_drivers.transports.serial import SerialTransport


class LineDevice(PtyDevice):
    """Answers each line ``X\\n`` with ``ok X\\n`` (lines starting "mute" get no answer) and keeps
    every byte it heard."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = bytearray()
        self._line = bytearray()

    def handle(self, chunk: bytes) -> bytes | None:
        self.heard += chunk
        out = bytearray()
        for b in chunk:
            if b != 0x0A:
                self._line.append(b)
                continue
            line, self._line = bytes(self._line), bytearray()
            if not line.startswith(b"mute"):
                out += b"ok " + line + b"\n"
        return bytes(out)

    def lines(self) -> list[str]:
        with self.cond:
            return self.heard.decode().splitlines()



@pytest.fixture
def dev() -> Iterator[LineDevice]:
    with LineDevice() as d:
        yield d
        assert not d.errors, d.errors


async def test_transact_writes_the_request_and_returns_the_reply(dev: LineDevice) -> None:
    t = SerialTransport(dev.port, 57600)
    await t.open()
    assert await t.transact(b"hello\n", line_reader(), timeout=2) == b"ok hello"
    assert await t.transact(b"mute\n") is None  # write only
    assert await asyncio.to_thread(dev.wait_for, lambda: dev.heard == b"hello\nmute\n")
    await t.close()
    await t.close()


async def test_silence_is_a_timeout(dev: LineDevice) -> None:
    t = SerialTransport(dev.port)
    await t.open()
    with pytest.raises(DeviceTimeout, match="no reply") as exc:
        await t.transact(b"mute please\n", line_reader(), timeout=0.2)
    assert exc.value.code == "timeout"
    await t.close()


async def test_handles_on_one_port_take_turns_on_the_wire(dev: LineDevice) -> None:
    a, b = SerialTransport(dev.port, 57600), SerialTransport(dev.port, 9600)
    await a.open()
    await b.open()
    assert a.users == b.users == 2 and b.baudrate == 57600  # the first to open set the speed

    async def talk(t: SerialTransport, tag: str) -> None:
        for i in range(25):
            async with t.transaction() as wire:
                await wire.discard_input()
                for part in (f"{tag}{i}-", "middle-", "end\n"):  # one message in three writes
                    await wire.write(part.encode())
                got = bytearray()
                while not got.endswith(b"\n"):
                    got += await wire.read(2)
                assert got == f"ok {tag}{i}-middle-end\n".encode()

    await asyncio.gather(talk(a, "A"), talk(b, "B"), talk(a, "C"), talk(b, "D"))
    want = [f"{tag}{i}-middle-end" for tag in "ABCD" for i in range(25)]
    assert sorted(dev.lines()) == sorted(want)  # no message was cut into by another

    await a.close()  # the other handle keeps the port
    assert b.users == 1
    assert await b.transact(b"still here\n", line_reader(), timeout=2) == b"ok still here"
    await b.close()
    c = SerialTransport(dev.port, 9600)  # the port was really released: a new speed applies
    await c.open()
    assert c.baudrate == 9600
    await c.close()


async def test_a_cancelled_transaction_leaves_the_port_usable(dev: LineDevice) -> None:
    a, b = SerialTransport(dev.port), SerialTransport(dev.port)
    await a.open()
    await b.open()
    waiting = asyncio.create_task(a.transact(b"mute forever\n", line_reader(), timeout=60))
    assert await asyncio.to_thread(dev.wait_for, lambda: dev.heard.endswith(b"mute forever\n"))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await b.transact(b"next\n", line_reader(), timeout=2) == b"ok next"
    await a.close()
    await b.close()


async def test_pulled_adapter_is_offline_until_it_is_back(dev: LineDevice) -> None:
    t = SerialTransport(dev.port)
    await t.open()
    assert await t.transact(b"one\n", line_reader(), timeout=2) == b"ok one"

    dev.unplug()
    with pytest.raises(DeviceOffline, match="failed") as exc:
        await t.transact(b"two\n", line_reader(), timeout=2)
    assert exc.value.code == "device_offline"
    with pytest.raises(DeviceOffline, match="cannot open"):  # still out: the path is gone
        await t.transact(b"two\n", line_reader(), timeout=2)

    dev.replug()
    assert await t.transact(b"three\n", line_reader(), timeout=2) == b"ok three"
    assert dev.lines() == ["one", "three"]
    await t.close()


async def test_a_missing_port_is_offline_and_close_stays_idempotent(tmp_path) -> None:
    t = SerialTransport(str(tmp_path / "ttyUSB9"))
    with pytest.raises(DeviceOffline, match="cannot open"):
        await t.open()
    with pytest.raises(DeviceOffline, match="not open"):
        async with t.transaction():
            pass
    await t.close()
    await t.close()


def test_pty_device_unplug_removes_the_path_and_replug_restores_it() -> None:
    import os

    with LineDevice() as d:
        assert os.path.realpath(d.port).startswith("/dev/pts/")
        d.unplug()
        assert d.unplugged and not os.path.exists(d.port)
        d.replug()
        assert not d.unplugged and os.path.realpath(d.port).startswith("/dev/pts/")
    assert not os.path.exists(d.port)
