"""The GPIO keypad on gpiozero's MockFactory: a button pulled low is one press named by its
function, contact bounce is one press, the LEDs and the buzzer switch their pins (blinking at the
QSystem keypad's periods), and wiring mistakes are config errors naming the option."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hallctl.errors import ConfigError
from hallctl.profiles import load_profiles
from hallctl_drivers.base import Health
from hallctl_drivers.keypad.gpio import GpioKeypad

PROFILE = load_profiles().get("gpio-keypad")
SETTINGS = {**PROFILE.settings, "test_step_s": 0.05}
WIRING = {"button_call_next": 17, "button_start": "GPIO27", "button_complete": 22,
          "led_green": 5, "led_red": 6, "buzzer": 13}


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def make(factory: MockFactory, **options) -> tuple[GpioKeypad, list[str]]:
    drv = GpioKeypad(SETTINGS, {**WIRING, **options}, features=PROFILE.features, pin_factory=factory)
    keys: list[str] = []
    drv.on_event = lambda type_, data: keys.append(data["key"])
    return drv, keys


async def until(pred, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def pin_states(factory: MockFactory, pin: int, seconds: float) -> set[bool]:
    """What the pin was over ``seconds`` (sampled): {True, False} for a blinking LED."""
    seen, end = set(), time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(bool(factory.pin(pin).state))
        time.sleep(0.01)
    return seen


async def test_a_button_pulled_low_is_one_press_named_by_its_function(factory) -> None:
    drv, keys = make(factory)
    await drv.start()
    try:
        before = await drv.probe()  # nobody has pressed anything yet: only the pins are known
        assert before.health is Health.OK and before.detail["heard"] is False
        factory.pin(17).drive_low()
        await until(lambda: keys == ["call_next"])
        factory.pin(17).drive_high()  # the release is no press
        await asyncio.sleep(0.1)
        factory.pin(27).drive_low()
        factory.pin(27).drive_high()
        await until(lambda: keys == ["call_next", "start"])
        assert (await drv.probe()).health is Health.OK
    finally:
        await drv.stop()


async def test_contact_bounce_is_one_press(factory) -> None:
    drv, keys = make(factory, bounce_time_s=0.1)
    await drv.start()
    try:
        for _ in range(3):  # a switch bouncing for a few ms
            factory.pin(22).drive_low()
            factory.pin(22).drive_high()
        factory.pin(22).drive_low()
        await asyncio.sleep(0.3)
        assert keys == ["complete"]
        factory.pin(22).drive_high()
    finally:
        await drv.stop()


async def test_the_leds_and_the_buzzer_switch_their_pins(factory) -> None:
    drv, _ = make(factory)
    await drv.start()
    try:
        assert await drv.execute("led", {"state": "green", "beep": True}) == {"state": "green", "beep": True, "lit": True}
        assert factory.pin(5).state and not factory.pin(6).state
        await until(lambda: factory.pin(13).state)  # the beep ...
        await until(lambda: not factory.pin(13).state, timeout=2)  # ... lasts 500 ms
        await drv.execute("led", {"state": "red_blink"})
        assert await asyncio.to_thread(pin_states, factory, 6, 0.35) == {True, False}
        assert not factory.pin(5).state
        await drv.execute("led", {"state": "off"})
        await asyncio.sleep(0.05)
        assert await asyncio.to_thread(pin_states, factory, 5, 0.25) == {False}
        assert await asyncio.to_thread(pin_states, factory, 6, 0.25) == {False}
        done = await drv.execute("led_test", {})
        assert done["leds"] == ["red", "green", "red_blink", "green_blink", "off"]
        assert not factory.pin(5).state and not factory.pin(6).state
        assert drv.actions == ("led", "led_test")
    finally:
        await drv.stop()


def test_wiring_mistakes_are_config_errors_naming_the_option(factory) -> None:
    with pytest.raises(ConfigError) as err:
        GpioKeypad(PROFILE.settings, {"led_green": 5}, pin_factory=factory)
    assert err.value.key == "options" and "button_" in err.value.message
    with pytest.raises(ConfigError) as err:
        GpioKeypad(PROFILE.settings, {"button_call_next": 17, "led_red": "gpio17"}, pin_factory=factory)
    assert err.value.key == "options.led_red" and "button_call_next" in err.value.message
    with pytest.raises(ConfigError) as err:
        GpioKeypad(PROFILE.settings, {"button_call_next": 17, "button_call": 18}, pin_factory=factory)
    assert err.value.key == "options.button_call" and "unknown key 'button_call'; did you mean" in err.value.message
