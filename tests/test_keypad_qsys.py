"""QSystem-type keypads: the driver on a real serial port (a pty) to the emulated RS485 bus.

Two keypads share one bus and one port: each press reaches the driver of its address only, each
frame the keypad of its address only, byte for byte as QSystem sends them. Noise on the line, a
pulled adapter, a silent bus, our own frames echoed back and the probe's honesty (before the first
press it says that only the line was checked) are each a test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hallctl.errors import BadRequest, ConfigError, DeviceOffline
from hallctl.profiles import load_profiles
from hallctl_drivers.base import Health
from hallctl_drivers.keypad.emulator import QsysKeypadBus
from hallctl_drivers.keypad.qsys import QsysKeypad
from hallctl_drivers.keypad.qsys_codec import display_frame, key_frame, led_frame, renumber_frame
from hallctl_drivers.transports.fake import FakeTransport

PROFILES = load_profiles()


def keypad(profile: str, port: str, address: int, **kw: Any) -> tuple[QsysKeypad, list[str]]:
    p = PROFILES.get(profile)
    settings = {**p.settings, "test_step_s": 0.05}  # led_test's steps, short for the test
    drv = QsysKeypad(settings, {"port": port, "address": address}, features=p.features, **kw)
    keys: list[str] = []
    drv.on_event = lambda type_, data: keys.append(data["key"]) if type_ == "pressed" else None
    return drv, keys


async def until(pred, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def wait_emu(emu: QsysKeypadBus, pred) -> None:
    assert await asyncio.to_thread(emu.wait_for, pred, 5), "the emulated keypad never got there"


async def test_two_keypads_on_one_bus_each_get_their_own_presses_and_frames() -> None:
    with QsysKeypadBus([0x22, 0x23]) as emu:
        a, a_keys = keypad("qsystem-keypad-display", emu.port, 0x22)
        b, b_keys = keypad("qsystem-keypad-led", emu.port, 0x23)
        await a.start()
        await b.start()
        try:
            assert a.actions == ("show", "led_test") and b.actions == ("led", "led_test")
            assert emu.press(0x22, "1") == bytes.fromhex("01 22 31 07")
            emu.press(0x23, "4")
            emu.press(0x22, "2")
            await until(lambda: len(a_keys) == 2 and len(b_keys) == 1)
            assert a_keys == ["1", "2"] and b_keys == ["4"]

            assert await a.execute("show", {"text": "A12", "blink": True}) == {"shown": "A12", "blink": True, "bytes": 7}
            assert await b.execute("led", {"state": "green_blink_slow", "beep": True}) == {
                "state": "green_blink_slow", "beep": True}
            pa, pb = emu.keypads[0x22], emu.keypads[0x23]
            await wait_emu(emu, lambda: pa.text == "A12" and pb.led == "green_blink_slow")
            assert pa.frames == [bytes.fromhex("01 22 21 41 31 32 07")] and pa.blink == 1
            assert pb.frames == [bytes.fromhex("01 23 3D 07")] and pb.beeps == 1
            await a.execute("show", {"text": ""})
            await wait_emu(emu, lambda: len(pa.frames) == 2)
            assert pa.frames[-1] == bytes.fromhex("01 22 20 20 20 20 20 07") and pa.text == ""
            # nothing was ever acknowledged, and no frame reached the other keypad
            assert emu.garbage == [] and len(pb.frames) == 1
        finally:
            await a.stop()
            await b.stop()


async def test_the_probe_says_what_it_checked_before_and_after_the_first_press() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, keys = keypad("qsystem-keypad-display", emu.port, 0x22)
        await drv.start()
        try:
            first = await drv.probe()
            # a keypad is silent until pressed: the line is all that can be checked, and it says so
            assert first.health is Health.OK and "only the line is checked" in first.reason
            assert first.detail["heard"] is False
            emu.press(0x22, "3")
            await until(lambda: keys == ["3"])
            heard = await drv.probe()
            assert heard.health is Health.OK and heard.detail["heard"] is True
        finally:
            await drv.stop()
        assert (await drv.probe()).health is Health.FAULT


async def test_noise_on_the_line_costs_no_press_and_makes_none() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, keys = keypad("qsystem-keypad-display", emu.port, 0x22)
        await drv.start()
        try:
            emu.faults.garbage = b"\xff\x01\x22\x31\x00\x07\x01"  # a collision's leftovers, then the press
            emu.press(0x22, "1")
            emu.faults.garbage = b""
            emu.noise(b"\x01\x22\x32")  # half a press: the line goes quiet, it is dropped
            await asyncio.sleep(0.2)
            emu.noise(b"\x07\x07\x55")
            emu.press(0x22, "4")
            await until(lambda: len(keys) == 2)
            await asyncio.sleep(0.1)
            assert keys == ["1", "4"]
        finally:
            await drv.stop()


async def test_a_pulled_adapter_is_a_fault_and_the_line_comes_back_by_itself() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, keys = keypad("qsystem-keypad-display", emu.port, 0x22)
        await drv.start()
        try:
            emu.unplug()
            await until(lambda: drv._bus is not None and drv._bus.error is not None)
            down = await drv.probe()
            assert down.health is Health.FAULT and emu.port in down.reason
            with pytest.raises(DeviceOffline):
                await drv.execute("show", {"text": "A1"})
            emu.replug()
            await until(lambda: drv._bus.error is None)
            emu.press(0x22, "1")
            await until(lambda: keys == ["1"])
            await drv.execute("show", {"text": "A1"})
            await wait_emu(emu, lambda: emu.keypads[0x22].text == "A1")
        finally:
            await drv.stop()


async def test_a_silent_bus_delivers_nothing_either_way() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, keys = keypad("qsystem-keypad-led", emu.port, 0x22)
        await drv.start()
        try:
            emu.faults.silent = True
            assert emu.press(0x22, "1") == b""
            await drv.execute("led", {"state": "red"})  # written: the host cannot tell, nothing answers
            await asyncio.sleep(0.2)
            assert keys == [] and emu.keypads[0x22].frames == []
        finally:
            await drv.stop()


async def test_our_own_frames_echoed_back_are_not_presses() -> None:
    """A half-duplex adapter that hears itself: the LED command 01 22 31 07 (red) reads exactly
    like key '1' of keypad 22, which would call the next citizen."""
    fake = FakeTransport("/dev/fake-rs485", responder=lambda frame: frame)  # every write comes back
    drv, keys = keypad("qsystem-keypad-led", "/dev/fake-rs485", 0x22, transport=fake)
    await drv.start()
    try:
        await drv.execute("led", {"state": "red"})
        assert fake.written == [led_frame(0x22, "red")] == [key_frame(0x22, "1")]
        await asyncio.sleep(0.2)
        assert keys == []
        fake.feed(key_frame(0x22, "1"))  # a real press
        await until(lambda: keys == ["1"])
    finally:
        await drv.stop()


async def test_led_test_lights_every_state_then_blanks() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, _ = keypad("qsystem-keypad-led-display", emu.port, 0x22)
        await drv.start()
        try:
            done = await drv.execute("led_test", {})
            assert done == {"texts": ["888", ""], "leds": ["red", "green", "red_blink", "green_blink", "off"]}
            pad = emu.keypads[0x22]
            await wait_emu(emu, lambda: len(pad.frames) == 7)
            assert pad.history == [("show", "888", 0), ("led", "red", 1), ("led", "green", 0), ("led", "red_blink", 0),
                                   ("led", "green_blink", 0), ("led", "off", 0), ("show", "", 0)]
            assert pad.beeps == 1 and pad.text == "" and pad.led == "off"
        finally:
            await drv.stop()


async def test_text_the_display_cannot_show_is_a_bad_request_and_sends_nothing() -> None:
    with QsysKeypadBus([0x22]) as emu:
        drv, _ = keypad("qsystem-keypad-display", emu.port, 0x22)
        await drv.start()
        try:
            with pytest.raises(BadRequest, match="'号'"):
                await drv.execute("show", {"text": "A号"})
            assert await drv.execute("show", {"text": "A012"}) == {"shown": "A01", "blink": False, "bytes": 7}
            await wait_emu(emu, lambda: emu.keypads[0x22].frames == [display_frame(0x22, "A01")])
        finally:
            await drv.stop()


async def test_configuration_mistakes() -> None:
    p = PROFILES.get("qsystem-keypad-display")
    for bad in (0x1F, 0x80):
        with pytest.raises(ConfigError) as err:
            QsysKeypad(p.settings, {"port": "/dev/ttyUSB0", "address": bad})
        assert err.value.key == "options.address"
    fake = FakeTransport("/dev/fake-2")
    a, _ = keypad("qsystem-keypad-display", "/dev/fake-2", 0x22, transport=fake)
    b, _ = keypad("qsystem-keypad-display", "/dev/fake-2", 0x22, transport=fake)
    await a.start()
    try:
        with pytest.raises(ConfigError, match="already another keypad"):
            await b.start()
    finally:
        await a.stop()
    with pytest.raises(DeviceOffline):  # no such port
        await keypad("qsystem-keypad-display", "/nonexistent/ttyUSB9", 0x22)[0].start()


def test_the_emulator_renumbers_a_keypad_and_answers_nothing() -> None:
    with QsysKeypadBus([0x22, 0x23]) as emu:
        assert emu.handle(renumber_frame(0x22, 0x30)) is None
        assert sorted(emu.keypads) == [0x23, 0x30] and emu.keypads[0x30].address == 0x30
        assert emu.handle(renumber_frame(0x30, 0x23)) is None  # taken: nobody moves
        assert sorted(emu.keypads) == [0x23, 0x30]
        assert emu.handle(bytes.fromhex("04 30 07")) is None  # the poll: no reply by default
        emu.poll_reply = True
        assert emu.handle(bytes.fromhex("04 30 07")) == bytes.fromhex("04 30 07")
        with pytest.raises(KeyError, match="0x22"):
            emu.press(0x22, "1")
