"""OnbonBxDisplay on the in-memory FakeTransport: the exact bytes it puts on the wire, and what it
does with the bytes that come back (corrupt, NACKed, late, for someone else, none at all)."""

from __future__ import annotations

from typing import Any

import pytest

from hallctl.errors import DeviceOffline, DeviceTimeout
from hallctl.profiles import load_profiles
from hallctl_drivers import Health
from hallctl_drivers.onbon_bx import FrameError, NackError, OnbonBxDisplay, build_frame
from hallctl_drivers.transports.fake import FakeTransport

A5x8 = "a5 a5 a5 a5 a5 a5 a5 a5"
# requests to DstAddr 1 from the PC (8000), DeviceType FE, protocol 02: shared/reference/protocols.md
# §3.3 (PING, CLEAR); the doc's §8.2.1 layout for SHOW, §8.17 for BRIGHTNESS
PING = bytes.fromhex(f"{A5x8} 0100 0080 000000 00 00 00 fe 02 0500 a2 00 01 00 00 68f8 5a")
CLEAR = bytes.fromhex(f"{A5x8} 0100 0080 000000 00 00 00 fe 02 0500 a3 10 01 00 00 51f8 5a")
BRIGHTNESS_3 = bytes.fromhex(f"{A5x8} 0100 0080 000000 00 00 00 fe 02 0700 a3 02 01 00 00 01 03 6791 5a")
SHOW_A012 = bytes.fromhex(
    f"{A5x8} 0100 0080 000000 00 00 00 fe 02 3100"
    " a3 06 01 00 00"  # real-time dynamic area, ProcessMode 0
    " 00 01 2800"  # delete no areas, update one, its record is 40 bytes
    " 00 0080 0000 8080 2000"  # AreaType, x 0 px, y 0, width 128 px, height 32
    " 00 00 01 0a00 00 00"  # area 0, line spacing 0, RunMode 1 (keep the last page), 10 s, no sound
    " 0a 02 01 01 00 02 0a"  # centred both ways, multi-line, manual breaks, static, speed 2, stay 10
    " 0d000000 5c464f303030 5c4331 41303132"  # 13 bytes: \FO000 \C1 A012
    " 9cb0 5a"
)


def reply(command: tuple[int, int] = (0xA0, 0x00), error: int = 0, *, src: int = 1, data: bytes = b"") -> bytes:
    """What controller ``src`` sends back to the PC: ACK by default (§7.1)."""
    return build_frame(*command, data, dst=0x8000, src=src, response=error)


ACK = reply()


def corrupt(frame: bytes) -> bytes:
    bad = bytearray(frame)
    bad[-3] ^= 0x10  # CRC high byte; never makes an A5/5A
    return bytes(bad)


def display(fake: FakeTransport, **settings: Any) -> OnbonBxDisplay:
    profile = {**load_profiles().get("onbon-bx-6k").settings, "reply_timeout_s": 0.2, **settings}
    return OnbonBxDisplay(profile, {"port": fake.name, "address": 1}, transport=fake)


async def started(fake: FakeTransport, **settings: Any) -> OnbonBxDisplay:
    d = display(fake, **settings)
    await d.start()
    fake.written.clear()
    return d


# -- what goes on the wire -------------------------------------------------------------------


async def test_start_sends_one_ping_at_the_profile_speed() -> None:
    fake = FakeTransport("/dev/ttyFAKE", responder=lambda _: ACK, baudrate=57600)
    d = display(fake)
    await d.start()
    assert fake.written == [PING] and fake.baudrate == 57600
    assert (await d.probe()).health is Health.OK


async def test_show_clear_ping_brightness_write_exactly_these_frames() -> None:
    fake = FakeTransport(responder=lambda _: ACK)
    d = await started(fake)
    assert await d.execute("show", {"lines": ["A012"]}) == {"acked": True, "bytes": len(SHOW_A012)}
    assert await d.execute("clear", {}) == {"acked": True}
    assert await d.execute("ping", {}) == {"acked": True}
    assert await d.execute("brightness", {"level": 3}) == {"acked": True, "level": 3}
    assert fake.written == [SHOW_A012, CLEAR, PING, BRIGHTNESS_3]


async def test_status_is_read_from_the_a1_02_reply() -> None:
    from hallctl_drivers.onbon_bx import encode_status, parse_frame

    status = encode_status(brightness=9, dynamic_areas=[0])
    fake = FakeTransport(
        responder=lambda req: reply((0xA1, 0x02), data=status)
        if parse_frame(req).command == (0xA1, 0x02) else ACK
    )
    d = await started(fake)
    got = await d.execute("status", {})
    assert got["brightness"] == 9 and got["dynamic_areas"] == [0]
    assert fake.written == [build_frame(0xA1, 0x02, dst=1)]


async def test_start_falls_back_to_9600_when_57600_is_silent() -> None:
    fake = FakeTransport(baudrate=57600)
    fake.responder = lambda _: ACK if fake.baudrate == 9600 else None
    d = display(fake)
    await d.start()
    assert fake.written == [PING, PING] and fake.baudrate == 9600


# -- what comes back -------------------------------------------------------------------------


async def test_a_corrupt_reply_is_retried_then_accepted() -> None:
    fake = FakeTransport(replies=[ACK, corrupt(ACK), ACK])
    d = await started(fake)
    assert await d.execute("ping", {}) == {"acked": True}
    assert fake.written == [PING, PING]  # asked again after the bad CRC


async def test_corrupt_replies_beyond_the_retries_raise_frame_error() -> None:
    fake = FakeTransport(replies=[ACK, corrupt(ACK), corrupt(ACK)])
    d = await started(fake)
    with pytest.raises(FrameError, match="CRC16 mismatch") as exc:
        await d.execute("ping", {})
    assert exc.value.code == "device_error"
    assert fake.written == [PING, PING]  # retries = 1 in the profile


async def test_nack_checksum_resends_other_nacks_do_not() -> None:
    fake = FakeTransport(replies=[ACK, reply((0xA0, 0x01), 5), ACK, reply((0xA0, 0x01), 4)])
    d = await started(fake)
    await d.execute("clear", {})
    assert fake.written == [CLEAR, CLEAR]  # ERR_CHECKSUM: the request was garbled, send it again
    with pytest.raises(NackError, match="ERR_MEMORYVOLUME"):
        await d.execute("clear", {})
    assert fake.written == [CLEAR, CLEAR, CLEAR]


async def test_silence_is_a_timeout() -> None:
    fake = FakeTransport(replies=[ACK])  # answers the start's PING, then nothing
    d = await started(fake, reply_timeout_s=0.05)
    with pytest.raises(DeviceTimeout) as exc:
        await d.execute("ping", {})
    assert exc.value.code == "timeout"
    assert fake.written == [PING]  # a timeout is not retried: the supervisor decides
    probe = await d.probe()
    assert probe.health is Health.FAULT and "no reply" in probe.reason


async def test_replies_for_other_hosts_and_late_replies_are_ignored() -> None:
    fake = FakeTransport(responder=lambda _: reply((0xA0, 0x01), 2, src=2) + ACK)  # display 2 first
    d = await started(fake)
    fake.feed(reply((0xA0, 0x01), 3))  # a late NACK to some earlier request
    assert await d.execute("ping", {}) == {"acked": True}


# -- the device vanishing ----------------------------------------------------------------------


async def test_unplugged_is_offline_and_the_next_request_reopens() -> None:
    fake = FakeTransport(responder=lambda _: ACK)
    d = await started(fake)
    assert fake.opens == 1
    fake.unplug()
    with pytest.raises(DeviceOffline) as exc:
        await d.execute("show", {"lines": ["A012"]})
    assert exc.value.code == "device_offline"
    assert (await d.probe()).health is Health.FAULT
    assert fake.written == []  # nothing reached a wire that was not there
    fake.replug()
    assert (await d.probe()).health is Health.OK
    assert fake.opens == 2 and fake.written == [PING]


async def test_start_while_unplugged_is_offline_and_stop_is_idempotent() -> None:
    fake = FakeTransport(responder=lambda _: ACK)
    fake.unplug()
    d = display(fake)
    with pytest.raises(DeviceOffline):
        await d.start()
    await d.stop()
    await d.stop()
    fake.replug()
    await d.start()
    assert fake.written == [PING]
