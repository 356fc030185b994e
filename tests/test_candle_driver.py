"""CandleDisplay and the CandleBus emulator: the exact bytes on the wire (in-memory fake), and what
several boards on one real pty show (the driver runs on the shared SerialTransport exactly as on
/dev/ttyUSB0)."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest
import serial
from hypothesis import given, settings as hyp_settings
from hypothesis import strategies as st

import hallctl_drivers.candle.display as candle_display
from hallctl.errors import BadRequest, ConfigError, DeviceOffline, UnknownCommand
from hallctl.profiles import load_profiles
from hallctl_drivers import Health, driver_class
from hallctl_drivers.candle import CandleDisplay
from hallctl_drivers.candle.emulator import Board, CandleBus
from hallctl_drivers.candle.layout import Layout
from hallctl_drivers.transports.fake import FakeTransport


def settings(name: str = "candle-4d-arrow", **over: Any) -> dict[str, Any]:
    p = load_profiles().get(name)
    assert (p.kind, p.driver) == ("window_display", "candle")
    return {**p.settings, **over}


def board(address: int, name: str = "candle-4d-arrow", transport: Any = None, **options: Any) -> CandleDisplay:
    p = load_profiles().get(name)
    return CandleDisplay(p.settings, {"port": options.pop("port", "/dev/ttyUSB9"), "address": address, **options},
                         features=p.features, transport=transport)


# -- profiles and options ----------------------------------------------------------------------


def test_profiles_describe_the_manuals_variants():
    ps = load_profiles()
    variants = {pid: (ps.get(pid).settings["digits"], ps.get(pid).settings["arrow_module"])
                for pid in ("candle-4d-arrow", "candle-3d-arrow", "candle-4d", "candle-3d")}
    assert variants == {"candle-4d-arrow": (4, True), "candle-3d-arrow": (3, True),
                        "candle-4d": (4, False), "candle-3d": (3, False)}
    for pid in variants:
        p = ps.get(pid)
        assert p.chain[-1] == "candle-base" and p.settings["baudrate"] == 57600 and p.settings["frame_gap_s"] == 0.2
        assert p.features == frozenset({"brightness"})  # no status, no ping: the board never answers
    assert driver_class("candle") is CandleDisplay


def test_the_board_offers_only_what_it_can_do():
    d = board(0x24)
    assert set(d.actions) == {"show", "clear", "brightness"}


def test_constructor_does_no_io_and_refuses_bad_options():
    board(0x24, port="/nonexistent/ttyUSB0")  # nothing opened
    with pytest.raises(ConfigError) as err:
        board(0x24, window_label="G")
    assert err.value.key == "options.window_label" and "'G'" in err.value.message
    with pytest.raises(ConfigError) as err:
        board(0x24, name="candle-4d", window_label="5")
    assert err.value.key == "options.window_label" and "no window digits" in err.value.message
    with pytest.raises(ConfigError) as err:
        board(0x80)
    assert err.value.key == "options.address"


# -- bytes on the wire (fake transport) --------------------------------------------------------


async def test_show_clear_brightness_put_the_manuals_frames_on_the_wire():
    fake = FakeTransport("bus", baudrate=57600)
    d = board(0x24, transport=fake, frame_gap_s=0)
    await d.start()
    assert fake.written == []  # nothing to ask a board that cannot answer
    r = await d.execute("show", {"lines": ["请A012号"], "number": "A012", "window": "5", "blink": -1})
    assert r == {"bytes": 11, "text": "A012-5 ", "blink": -1, "confirmed": False}
    await d.execute("show", {"lines": ["x"], "number": "A12", "window": "5"})
    await d.execute("show", {"lines": ["x"], "number": "", "window": "5"})
    await d.execute("brightness", {"level": 15})
    await d.execute("brightness", {"level": 0})
    await d.execute("clear", {})
    assert fake.written == [bytes.fromhex(h) for h in (
        "01 24 21 41 30 31 32 2D 35 20 07", "01 24 20 41 31 32 20 2D 35 20 07", "01 24 20 20 20 20 20 2D 35 20 07",
        "02 24 20 07", "02 24 23 07", "01 24 20 20 20 20 20 20 20 20 07")]
    await d.stop()


async def test_show_options_and_lines():
    fake = FakeTransport("bus", baudrate=57600)
    d = board(0x21, transport=fake, frame_gap_s=0, arrow="<", window_label="12")
    await d.start()
    await d.execute("show", {"lines": ["x"], "number": "B7", "window": "ignored", "blink": 3})
    await d.execute("show", {"lines": ["C001>9"]})  # a technician's own row
    assert fake.written == [b"\x01\x21\x24B7  <12\x07", b"\x01\x21\x20C001>9 \x07"]
    with pytest.raises(BadRequest, match="'测'"):
        await d.execute("show", {"lines": ["测试"]})
    with pytest.raises(BadRequest, match="one row"):
        await d.execute("show", {"lines": ["A001", "3号窗口"]})
    with pytest.raises(BadRequest, match="does not fit"):
        await d.execute("show", {"lines": ["x"], "number": "A12345"})
    for action in ("ping", "status"):
        with pytest.raises(UnknownCommand, match="cannot answer"):
            await d.execute(action, {})
    assert len(fake.written) == 2  # nothing sent for what was refused
    await d.stop()


async def test_frames_of_every_board_on_a_bus_keep_the_gap(monkeypatch):
    """QSystem pauses 200 ms after each frame on its one sending thread: here two boards on one
    port, the second frame waits out what is left of the first's gap (clock and pause are
    watched, not measured)."""
    clock = [1000.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(round(s, 6))
        clock[0] += s

    monkeypatch.setattr(candle_display, "_now", lambda: clock[0])
    monkeypatch.setattr(candle_display, "_sleep", fake_sleep)
    fake = FakeTransport("gap-bus", baudrate=57600)
    one, two = board(0x21, transport=fake), board(0x22, transport=fake)
    await one.start()
    await two.start()
    await one.execute("show", {"lines": ["x"], "number": "A1"})
    clock[0] += 0.05
    await two.execute("show", {"lines": ["x"], "number": "A2"})
    clock[0] += 1.0
    await one.execute("brightness", {"level": 3})
    assert slept == [0.15]  # 0.2 s after the first frame; none after a long quiet
    assert [f[1] for f in fake.written] == [0x21, 0x22, 0x21]


# -- on a pty: three boards, one bus --------------------------------------------------------------


@pytest.fixture
def bus() -> Iterator[CandleBus]:
    with CandleBus([0x21, 0x22], boards=[Board(0x23, Layout(3, True))]) as b:
        yield b
        assert not b.errors, b.errors


async def test_three_boards_on_one_port_each_show_their_call(bus: CandleBus):
    drivers = [board(0x21, port=bus.port), board(0x22, port=bus.port, arrow=">"),
               board(0x23, "candle-3d-arrow", port=bus.port, arrow="<")]
    for d in drivers:
        await d.start()
    try:
        calls = [("A012", "1", 3), ("B003", "2", 0), ("A014", "3", -1)]
        await asyncio.gather(*(d.execute("show", {"lines": ["x"], "number": n, "window": w, "blink": k})
                               for d, (n, w, k) in zip(drivers, calls)))
        want = {0x21: ("A012-1 ", 3), 0x22: ("B003>2 ", 0), 0x23: ("A14<3 ", -1)}
        assert await asyncio.to_thread(
            bus.wait_for, lambda: {a: (bus.board(a).text, bus.board(a).blink) for a in want} == want, 5)
        await asyncio.gather(*(d.execute("brightness", {"level": lv}) for d, lv in zip(drivers, (15, 7, 0))))
        assert await asyncio.to_thread(
            bus.wait_for, lambda: [bus.board(a).brightness for a in want] == [0x20, 0x22, 0x23], 5)
        # every byte the drivers sent decoded: whole frames only, none broken, each acted on once
        assert [type(f).__name__ for f in bus.bus_log] == ["SetData"] * 3 + ["SetBrightness"] * 3
        assert all(len(bus.board(a).frames) == 2 and not bus.board(a).frame_errors for a in want)
        assert all(not bus.board(a).unrendered and not bus.board(a).overflow for a in want)
    finally:
        for d in drivers:
            await d.stop()


async def test_probe_checks_the_link_only_and_refreshes_a_board_that_lost_power(bus: CandleBus, monkeypatch):
    d = board(0x21, port=bus.port, refresh_s=30)
    await d.start()
    try:
        result = await d.probe()
        assert result.health is Health.OK and "write-only" in result.reason and result.detail["confirmed"] is False
        await d.execute("show", {"lines": ["x"], "number": "A012", "window": "1", "blink": 3})
        assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).text == "A012-1 ", 5)
        bus.power_cycle(0x21)  # the board went dark; it cannot tell anyone
        assert bus.board(0x21).text == " " * 7
        later = candle_display._now() + 31
        monkeypatch.setattr(candle_display, "_now", lambda: later)
        result = await d.probe()
        assert result.health is Health.OK and result.detail["refreshed"] is True
        assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).history[-1] == ("A012-1 ", 0), 5)

        bus.unplug()  # the USB adapter is pulled: the link is gone, and probe says so
        with pytest.raises(DeviceOffline):
            await d.probe()
        with pytest.raises(DeviceOffline):
            await d.execute("clear", {})
        bus.replug()
        assert (await d.probe()).health is Health.OK  # the port is opened again
        await d.execute("clear", {})
        assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).text == " " * 7, 5)
    finally:
        await d.stop()
    assert (await d.probe()).health is Health.FAULT  # stopped: not "ok"


async def test_a_board_jumpered_for_another_speed_hears_only_noise():
    with CandleBus([0x21], baudrate=19200) as slow:
        fast = board(0x21, port=slow.port)  # the profile's 57600
        await fast.start()
        await fast.execute("show", {"lines": ["x"], "number": "A1", "window": "1"})
        await fast.stop()
        assert await asyncio.to_thread(slow.wait_for, lambda: slow.board(0x21).undecodable > 0, 5)
        assert slow.board(0x21).text == " " * 7 and slow.board(0x21).frames == []
        right = board(0x21, port=slow.port, baudrate=19200)
        await right.start()
        await right.execute("show", {"lines": ["x"], "number": "A1", "window": "1"})
        await right.stop()
        assert await asyncio.to_thread(slow.wait_for, lambda: slow.board(0x21).text == "A1  -1 ", 5)


# -- the emulator's protocol, straight over pyserial ---------------------------------------------


def send(bus: CandleBus, *frames: str) -> bytes:
    """Write frames as a host would; returns whatever came back (a board never answers)."""
    with serial.Serial(bus.port, 57600, timeout=0.1) as port:
        port.write(b"".join(bytes.fromhex(f) for f in frames))
        port.flush()
        return port.read(64)


def test_partial_update_left_to_right_as_in_the_manual(bus: CandleBus):
    """[CANDLE] p.6: 'A045 >98', then data 'A13' gives 'A135 >98', then 7 bytes replace it all."""
    assert send(bus, "01 21 20 41 30 34 35 3E 39 38 07") == b""  # never a reply
    assert bus.wait_for(lambda: bus.board(0x21).text == "A045>98")
    send(bus, "01 21 20 41 31 33 07")
    assert bus.wait_for(lambda: bus.board(0x21).text == "A135>98")
    send(bus, "01 21 22 41 31 33 35 3C 37 32 07")
    assert bus.wait_for(lambda: bus.board(0x21).text == "A135<72" and bus.board(0x21).blink == 1)
    assert bus.board(0x22).frames == []  # frames for another address are dropped


def test_renumbering_survives_a_power_cycle(bus: CandleBus):
    send(bus, "03 21 30 07", "02 30 23 07")
    assert bus.wait_for(lambda: bus.board(0x30).brightness == 0x23)
    bus.power_cycle(0x30)
    assert bus.board(0x30).brightness == 0x23  # both in non-volatile memory
    send(bus, "03 FF 31 07")  # every board on the bus
    assert bus.wait_for(lambda: [b.address for b in bus.boards] == [0x31, 0x31, 0x31])


def test_only_the_manuals_glyphs_are_rendered(bus: CandleBus):
    send(bus, "01 22 20 47 31 32 33 35 31 32 33 07")  # 'G', a digit on the arrow, one byte too many
    assert bus.wait_for(lambda: bus.board(0x22).text == "\ufffd123\ufffd12")
    assert bus.board(0x22).unrendered == [(0, 0x47), (4, 0x35)] and bus.board(0x22).overflow == [b"3"]


def test_silent_bus_hears_nothing(bus: CandleBus):
    bus.faults.silent = True
    send(bus, "01 21 20 41 31 07")
    bus.faults.silent = False
    send(bus, "01 22 20 42 32 07")
    assert bus.wait_for(lambda: bus.board(0x22).text.startswith("B2"))
    assert bus.board(0x21).text == " " * 7


@hyp_settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_a_board_survives_any_bytes(chunks):
    b = Board(0x21)
    for chunk in chunks:
        b.hear(chunk)
    assert len(b.text) == 7 and b.address in range(0x20, 0x80)


def test_the_driver_does_not_import_the_emulator():
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom hallctl_drivers import driver_class\ndriver_class('candle')\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "hallctl_drivers.candle.display" in loaded
    assert [m for m in loaded if "emulator" in m or m == "hallctl_drivers.transports.pty"] == []
