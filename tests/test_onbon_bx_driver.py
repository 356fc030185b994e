"""OnbonBxDisplay over a real pty to BxEmulator: what reaches the wire and what the bar shows.

The driver runs on the shared SerialTransport exactly as on /dev/ttyUSB0; byte-level cases on the
in-memory fake are in test_onbon_bx_bytes.py."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator

import pytest
import serial

from hallctl.errors import (
    BadRequest,
    ConfigError,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    UnknownCommand,
)
from hallctl.profiles import load_profiles
from hallctl_drivers.onbon_bx.emulator import BxEmulator
from hallctl_drivers import Health, driver_class
from hallctl_drivers.onbon_bx import (
    FrameError,
    FrameReader,
    NackError,
    OnbonBxDisplay,
    build_frame,
    dynamic_area_payload,
    parse_dynamic_area_payload,
    parse_frame,
    text_alignment,
)

LINES = ["A012", "请到3号窗口"]


def settings(name: str = "onbon-bx-6k", **over: Any) -> dict[str, Any]:
    """Resolved profile settings, through the real profile loader."""
    p = load_profiles().get(name)
    assert (p.kind, p.driver) == ("window_display", "onbon_bx")
    return {**p.settings, "reply_timeout_s": 0.5, **over}


def test_shipped_bx_profiles_load_and_differ_where_the_models_do() -> None:
    ps = load_profiles()
    assert not {k: v for k, v in ps.errors.items() if k.startswith("onbon-bx")}
    k5, k6 = ps.get("onbon-bx-5k").settings, ps.get("onbon-bx-6k").settings
    assert (k5["rx_buffer_bytes"], k5["max_dynamic_areas"], k5["area_capacity_bytes"]) == (512, 8, 512)
    assert (k6["rx_buffer_bytes"], k6["max_dynamic_areas"], k6["area_capacity_bytes"]) == (1024, 5, 1024)
    assert k5["baudrate"] == k6["baudrate"] == 57600 and k5["fallback_baudrates"] == [9600]
    assert ps.get("onbon-bx-6k").chain == ("onbon-bx-6k", "onbon-bx-base")


@pytest.fixture
def emu() -> Iterator[BxEmulator]:
    with BxEmulator([1, 2]) as e:
        yield e
        assert not e.errors, e.errors


@pytest.fixture
async def display(emu: BxEmulator) -> AsyncIterator[OnbonBxDisplay]:
    d = OnbonBxDisplay(settings(), {"port": emu.port, "address": 1})
    await d.start()
    yield d
    await d.stop()


def expected_show_frame(lines: list[str], dst: int = 1, **kw: Any) -> bytes:
    payload = dynamic_area_payload(
        lines, width=128, height=32, font="O000", color=1,
        align=text_alignment("center", "center"), run_mode=1, **kw,
    )
    return build_frame(0xA3, 0x06, payload, dst=dst)


# -- the happy path ------------------------------------------------------------------------


async def test_show_puts_exactly_the_lines_on_the_bar(emu: BxEmulator, display) -> None:
    result = await display.execute("show", {"lines": LINES})

    screen = emu.screens[1]
    assert screen.lines == LINES
    assert screen.history == ["A012\n请到3号窗口"]
    sent = screen.frames[-1]
    assert sent == expected_show_frame(LINES)
    assert "请到3号窗口".encode("gb2312") in sent
    assert result == {"acked": True, "bytes": len(sent)}
    assert emu.screens[2].lines == [] and emu.screens[2].frames == []


async def test_start_pings_the_display(emu: BxEmulator, display) -> None:
    assert emu.screens[1].frames == [build_frame(0xA2, 0x00, dst=1)]
    assert (await display.probe()).health is Health.OK


async def test_show_lines_and_a_second_update_replace_the_text(emu: BxEmulator, display) -> None:
    await display.show_lines(LINES)
    await display.show_lines(["A013", "请到5号窗口"])
    assert emu.screens[1].lines == ["A013", "请到5号窗口"]
    assert emu.screens[1].history == ["A012\n请到3号窗口", "A013\n请到5号窗口"]


async def test_two_displays_share_one_rs485_port(emu: BxEmulator) -> None:
    one = OnbonBxDisplay(settings(), {"port": emu.port, "address": 1})
    two = OnbonBxDisplay(settings(), {"port": emu.port, "address": 2})
    async with one, two:
        await one.show_lines(["A012", "请到1号窗口"])
        await two.show_lines(["B007", "请到2号窗口"])
    assert emu.screens[1].lines == ["A012", "请到1号窗口"]
    assert emu.screens[2].lines == ["B007", "请到2号窗口"]
    assert emu.screens[2].frames[-1] == expected_show_frame(["B007", "请到2号窗口"], dst=2)


async def test_clear_brightness_status(emu: BxEmulator, display) -> None:
    await display.show_lines(LINES)
    assert await display.execute("brightness", {"level": 3}) == {"acked": True, "level": 3}
    assert emu.screens[1].brightness == 3
    status = await display.execute("status", {})
    assert status["brightness"] == 3 and status["power"] == "on"
    assert status["dynamic_areas"] == [0] and status["clock"]
    assert await display.execute("clear", {}) == {"acked": True}
    assert emu.screens[1].lines == []
    assert await display.execute("ping", {}) == {"acked": True}
    await display.show_lines([])
    assert emu.screens[1].lines == [] and emu.screens[1].history[-1] == ""


async def test_registry_resolves_the_driver() -> None:
    assert driver_class("onbon_bx") is OnbonBxDisplay
    assert OnbonBxDisplay.kind == "window_display"


# -- bad input: coded error, nothing sent, keeps working -------------------------------------


async def test_bad_requests_send_nothing(emu: BxEmulator, display) -> None:
    before = len(emu.screens[1].frames)
    with pytest.raises(BadRequest, match="'喆'"):
        await display.show_lines(["A012", "请王喆到3号窗口"])
    with pytest.raises(BadRequest):
        await display.execute("show", {"lines": "A012"})
    with pytest.raises(BadRequest):
        await display.execute("brightness", {"level": 16})
    with pytest.raises(UnknownCommand):
        await display.execute("reboot", {})
    assert len(emu.screens[1].frames) == before
    await display.show_lines(LINES)
    assert emu.screens[1].lines == LINES


async def test_text_too_long_for_a_5k_area_is_refused(emu: BxEmulator) -> None:
    d = OnbonBxDisplay(settings("onbon-bx-5k"), {"port": emu.port})
    async with d:
        with pytest.raises(BadRequest, match="512") as refused:
            await d.show_lines(["请到3号窗口" * 50])
        assert refused.value.detail == {"field": "data.lines"}


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="port"):
        OnbonBxDisplay(settings(), {})
    with pytest.raises(ConfigError, match="address"):
        OnbonBxDisplay(settings(), {"port": "/dev/null", "address": 0x1FFFF})
    with pytest.raises(ConfigError, match="font"):
        OnbonBxDisplay(settings(font="bogus"), {"port": "/dev/null"})


def test_options_override_the_profile_size() -> None:
    d = OnbonBxDisplay(settings(), {"port": "/dev/null", "width": 192, "height": 16})
    (area,) = parse_dynamic_area_payload(d.show_payload(["A012"]))[1]
    assert (area.width, area.height) == (192, 16)


# -- faults ----------------------------------------------------------------------------------


async def test_garbled_requests_surface_as_nack_error(emu: BxEmulator, display) -> None:
    emu.faults.corrupt_requests = True
    with pytest.raises(DeviceError, match="ERR_CHECKSUM") as exc:
        await display.show_lines(LINES)
    assert isinstance(exc.value, NackError) and exc.value.code == "device_error"
    assert emu.screens[1].lines == []
    emu.faults.corrupt_requests = False
    await display.show_lines(LINES)
    assert emu.screens[1].lines == LINES


async def test_corrupt_replies_surface_as_frame_error(emu: BxEmulator, display) -> None:
    emu.faults.corrupt_replies = True
    with pytest.raises(FrameError, match="CRC16 mismatch"):
        await display.execute("ping", {})
    assert (await display.probe()).health is Health.FAULT
    emu.faults.corrupt_replies = False
    assert (await display.probe()).health is Health.OK


async def test_silent_display_times_out_and_recovers(emu: BxEmulator, display) -> None:
    emu.faults.silent = True  # the RS485 cable pulled, or the display unpowered
    with pytest.raises(DeviceTimeout) as exc:
        await display.show_lines(LINES)
    assert exc.value.code == "timeout"
    probe = await display.probe()
    assert probe.health is Health.FAULT and "no reply" in probe.reason

    emu.faults.silent = False
    assert (await display.probe()).health is Health.OK
    await display.show_lines(LINES)
    assert emu.screens[1].lines == LINES


async def test_pulled_usb_adapter_is_offline_then_back(emu: BxEmulator, display) -> None:
    await display.show_lines(["A011", "请到3号窗口"])
    emu.unplug()  # the port path vanishes and the open handle fails with EIO
    with pytest.raises(DeviceOffline) as exc:
        await display.show_lines(LINES)
    assert exc.value.code == "device_offline"
    probe = await display.probe()  # while it is out: cannot even reopen
    assert probe.health is Health.FAULT and "cannot open" in probe.reason

    emu.replug()  # same path again, a new tty behind it: the transport reopens it
    assert (await display.probe()).health is Health.OK
    await display.show_lines(LINES)
    assert emu.screens[1].lines == LINES
    assert emu.screens[1].history == ["A011\n请到3号窗口", "A012\n请到3号窗口"]


async def test_two_displays_on_one_port_never_interleave_frames(emu: BxEmulator) -> None:
    one = OnbonBxDisplay(settings(), {"port": emu.port, "address": 1})
    two = OnbonBxDisplay(settings(), {"port": emu.port, "address": 2})
    texts = {d: [[f"{'AB'[n]}{i:03d}", f"请到{n + 1}号窗口"] for i in range(40)] for n, d in enumerate((one, two))}

    async def calls(d: OnbonBxDisplay) -> list[dict[str, Any]]:
        return [await d.show_lines(lines) for lines in texts[d]]

    async with one, two:
        results = await asyncio.gather(calls(one), calls(two), calls(one), calls(two))
    assert all(r["acked"] for rs in results for r in rs)
    log = list(emu.bus_log)
    assert not [x for x in log if isinstance(x, FrameError)]  # every frame arrived whole
    shows = [x for x in log if x.command == (0xA3, 0x06)]
    assert sorted(f.dst for f in shows) == [1] * 80 + [2] * 80
    for address, d in ((1, one), (2, two)):
        screen = emu.screens[address]
        assert screen.lines == texts[d][-1]  # each bar shows its own last text
        assert set(screen.history) == {"\n".join(t) for t in texts[d]}


async def test_start_on_a_silent_bus_raises_timeout(emu: BxEmulator) -> None:
    emu.faults.silent = True
    d = OnbonBxDisplay(settings(), {"port": emu.port})
    with pytest.raises(DeviceTimeout, match="57600, 9600"):
        await d.start()
    assert (await d.probe()).health is Health.FAULT
    await d.stop()  # idempotent after a failed start


async def test_start_fails_on_nack(emu: BxEmulator) -> None:
    emu.faults.corrupt_requests = True
    d = OnbonBxDisplay(settings(), {"port": emu.port})
    with pytest.raises(NackError, match="ERR_CHECKSUM"):
        await d.start()


async def test_probe_restore_never_overwrites_a_newer_show(emu: BxEmulator, display) -> None:
    import asyncio

    await display.show_lines(["A011", "请到3号窗口"])
    emu.power_cycle(1)
    status_query = build_frame(0xA1, 0x02, dst=1)

    async def app_calls_next_ticket_while_probe_asks_status() -> None:
        await asyncio.to_thread(emu.wait_for, lambda: status_query in emu.screens[1].frames)
        await display.show_lines(LINES)

    # the probe sees a blank bar and wants to restore A011; the app meanwhile shows A012
    await asyncio.gather(display.probe(), app_calls_next_ticket_while_probe_asks_status())
    assert emu.screens[1].lines == LINES
    assert emu.screens[1].history[-1] == "A012\n请到3号窗口"


async def test_power_cycle_blanks_the_bar_and_probe_restores_it(emu: BxEmulator, display) -> None:
    await display.show_lines(LINES)
    emu.power_cycle(1)
    assert emu.screens[1].lines == []

    probe = await display.probe()
    assert probe.health is Health.DEGRADED and probe.detail["restored"] is True
    assert emu.screens[1].lines == LINES
    assert (await display.probe()).health is Health.OK


async def test_stop_is_idempotent_and_execute_after_stop_is_offline(display) -> None:
    await display.stop()
    await display.stop()
    with pytest.raises(DeviceOffline):
        await display.execute("ping", {})
    assert (await display.probe()).health is Health.FAULT


async def test_port_vanishing_is_reported_not_raised_raw(emu: BxEmulator, display) -> None:
    emu.close()  # the USB adapter is pulled
    with pytest.raises(DeviceOffline):
        await display.show_lines(LINES)
    assert (await display.probe()).health is Health.FAULT


# -- the emulator's protocol, straight over pyserial ------------------------------------------


def exchange(port: str, frame: bytes, timeout: float = 2.0) -> list:
    """Write one frame, collect replies until the first one or ``timeout``."""
    with serial.Serial(port, 57600, timeout=timeout) as ser:
        ser.write(frame)
        reader, out = FrameReader(), []
        while not out:
            chunk = ser.read(1)
            if not chunk:
                break
            out += reader.feed(chunk + ser.read(ser.in_waiting))
        return out


def test_emulator_nacks_unknown_commands(emu: BxEmulator) -> None:
    (reply,) = exchange(emu.port, build_frame(0xA9, 0x42, dst=2))
    assert reply.is_nack and reply.error_name == "ERR_NOCMD"
    assert (reply.dst, reply.src) == (0x8000, 2)


def test_emulator_nacks_bad_crc(emu: BxEmulator) -> None:
    frame = bytearray(build_frame(0xA2, 0x00, dst=1))
    frame[-2] ^= 0x10  # CRC MSB; stays clear of A5/5A
    (reply,) = exchange(emu.port, bytes(frame))
    assert reply.is_nack and reply.error == 5
    assert reply == parse_frame(build_frame(0xA0, 0x01, dst=0x8000, src=1, response=5))


def test_emulator_answers_fffe_broadcast_from_fffe() -> None:
    with BxEmulator([7]) as single:
        (reply,) = exchange(single.port, build_frame(0xA2, 0x00, dst=0xFFFE))
        assert reply.is_ack and reply.src == 0xFFFE


def test_emulator_is_silent_for_ffff_and_no_reply_requests(emu: BxEmulator) -> None:
    payload = dynamic_area_payload(["请稍候"], width=128, height=32)
    assert exchange(emu.port, build_frame(0xA3, 0x06, payload, dst=0xFFFF, response=2), 0.3) == []
    assert emu.wait_for(lambda: emu.screens[1].lines == emu.screens[2].lines == ["请稍候"])
    assert exchange(emu.port, build_frame(0xA2, 0x00, dst=1, response=2), 0.3) == []
    assert exchange(emu.port, build_frame(0xA2, 0x00, dst=9), 0.3) == []  # not on this bus


def test_emulator_wait_for_and_garbage(emu: BxEmulator) -> None:
    payload = dynamic_area_payload(LINES, width=128, height=32)
    with serial.Serial(emu.port, 57600, timeout=1) as ser:
        ser.write(b"\x00\xff\x5a noise " + build_frame(0xA3, 0x06, payload, dst=2, response=2))
        assert emu.wait_for(lambda: emu.screens[2].lines == LINES, timeout=5)
    assert not emu.wait_for(lambda: emu.screens[1].lines == LINES, timeout=0.2)
