"""GpioPins on gpiozero's MockFactory: a button press reaches the event loop, an output switches
the pin, and mistakes in the wiring config are config errors."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hallctl.errors import BadRequest, ConfigError, DeviceOffline
from hallctl_drivers.transports.gpio import GpioPins, PinEvent


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


async def test_a_press_and_release_arrive_on_the_loop_in_order(factory: MockFactory) -> None:
    pins = GpioPins(inputs={"satisfied": 17, "unsatisfied": 27}, pin_factory=factory)
    await pins.open()
    factory.pin(17).drive_low()  # pressed: the pull-up holds it high until then
    factory.pin(17).drive_high()
    factory.pin(27).drive_low()
    got = [await asyncio.wait_for(pins.next_event(), 5) for _ in range(3)]
    assert got == [PinEvent("satisfied", True), PinEvent("satisfied", False), PinEvent("unsatisfied", True)]
    assert pins.is_pressed("unsatisfied") and not pins.is_pressed("satisfied")
    factory.pin(27).drive_high()  # (gpiozero's hold thread waits for a release when closing)
    await pins.close()
    await pins.close()


async def test_a_press_in_another_thread_is_handed_to_the_loop(factory: MockFactory) -> None:
    """gpiozero calls back from its own threads on real pins; the event still lands on the loop."""
    pins = GpioPins(inputs={"call": 5}, pin_factory=factory)
    await pins.open()
    await asyncio.to_thread(factory.pin(5).drive_low)
    assert await asyncio.wait_for(pins.next_event(), 5) == PinEvent("call", True)
    factory.pin(5).drive_high()
    await pins.close()


async def test_an_output_is_set_on_the_pin(factory: MockFactory) -> None:
    pins = GpioPins(outputs={"lamp": 22}, pin_factory=factory)
    await pins.open()
    assert factory.pin(22).state is False  # starts off
    await pins.set("lamp", True)
    assert factory.pin(22).state is True
    await pins.set("lamp", False)
    assert factory.pin(22).state is False
    with pytest.raises(BadRequest, match="'buzzer'"):
        await pins.set("buzzer", True)
    await pins.close()
    with pytest.raises(DeviceOffline):
        await pins.set("lamp", True)


async def test_wiring_mistakes_are_config_errors(factory: MockFactory) -> None:
    with pytest.raises(ConfigError):
        await GpioPins(inputs={"a": 17, "b": 17}, pin_factory=factory).open()  # one pin, twice
    with pytest.raises(ConfigError):
        await GpioPins(inputs={"a": "GPIO99"}, pin_factory=factory).open()
    pins = GpioPins(inputs={"a": 17}, pin_factory=factory)  # the failed attempts freed 17
    await pins.open()
    await pins.close()
