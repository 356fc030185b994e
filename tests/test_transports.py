"""The transport contract on the in-memory FakeTransport, and the rule that production code never
imports an emulator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from hallctl.errors import DeviceOffline, DeviceTimeout
from hallctl_drivers.transports.fake import FakeTransport


def first_line(chunk: bytes) -> bytes | None:
    return chunk.split(b"\n")[0] if b"\n" in chunk else None


async def test_fake_records_every_write_and_answers_from_its_script() -> None:
    fake = FakeTransport(replies=[b"one\n", b"", b"three\n"])
    await fake.open()
    assert await fake.transact(b"a", first_line, timeout=1) == b"one"
    with pytest.raises(DeviceTimeout):
        await fake.transact(b"b", first_line, timeout=0.01)  # b"" in the script: silence
    assert await fake.transact(b"c", first_line, timeout=1) == b"three"
    assert fake.written == [b"a", b"b", b"c"] and fake.wire == b"abc"


async def test_fake_responder_sees_each_write_and_feed_arrives_mid_read() -> None:
    fake = FakeTransport(responder=lambda data: data.upper() if data != b"wait\n" else None)
    await fake.open()
    assert await fake.transact(b"hi\n", first_line, timeout=1) == b"HI"

    async def device_speaks_later() -> None:
        await asyncio.sleep(0)
        fake.feed(b"done\n")

    got, _ = await asyncio.gather(fake.transact(b"wait\n", first_line, timeout=5), device_speaks_later())
    assert got == b"done"


async def test_fake_transactions_take_turns() -> None:
    fake = FakeTransport()
    await fake.open()

    async def message(tag: str) -> None:
        async with fake.transaction() as wire:
            for part in (tag, "-", tag):
                await wire.write(part.encode())
                await asyncio.sleep(0)  # let the other task try to cut in

    await asyncio.gather(message("a"), message("b"))
    assert fake.wire in (b"a-ab-b", b"b-ba-a")


async def test_fake_unplugged_mid_read_is_offline_and_reopens_after_replug() -> None:
    fake = FakeTransport()
    await fake.open()

    async def pull() -> None:
        await asyncio.sleep(0)
        fake.unplug()

    with pytest.raises(DeviceOffline):
        await asyncio.gather(fake.transact(b"x", first_line, timeout=0.2), pull())
    fake.replug()
    fake.replies.append(b"ok\n")
    assert await fake.transact(b"y", first_line, timeout=1) == b"ok"
    assert fake.opens == 2


async def test_fake_must_be_open() -> None:
    fake = FakeTransport()
    with pytest.raises(DeviceOffline, match="not open"):
        await fake.transact(b"x")
    await fake.open()
    await fake.close()
    await fake.close()
    with pytest.raises(DeviceOffline):
        await fake.transact(b"x")
    assert fake.written == []


PRODUCTION = [
    "hallctl_drivers",
    "hallctl_drivers.onbon_bx",
    "hallctl_drivers.transports",
    "hallctl_drivers.transports.serial",
    "hallctl_drivers.transports.tcp",
    "hallctl_drivers.transports.usb",
    "hallctl_drivers.transports.gpio",
    "hallctl.node.daemon",
    "hallctl.runtime.supervisor",
]


def test_production_modules_import_no_emulator() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {PRODUCTION!r}: importlib.import_module(m)\n"
        "from hallctl_drivers import driver_class\n"
        "driver_class('onbon_bx')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "hallctl_drivers.onbon_bx.display" in loaded  # the check looked at the real thing
    emulators = [m for m in loaded if "emulator" in m or m == "hallctl_drivers.transports.pty"]
    assert emulators == []
