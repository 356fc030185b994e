"""A window keypad wired to the Pi's GPIO header: one button per function, a green and a red LED,
an optional buzzer.

Wiring (as gpiozero's ``Button`` and ``LED``): each button between its GPIO pin and GND (the
internal pull-up holds the pin high, a press pulls it low); each LED through a resistor from its
pin to GND; an active buzzer from its pin to GND (through a transistor if it draws more than a
few mA). Pins are gpiozero names: ``17`` or ``"GPIO17"`` (BCM), ``"BOARD11"`` (header pin)::

    [[device]]
    id = "keypad"
    profile = "gpio-keypad"
    app = "keypad"
    [device.options]
    window = "3"
    button_call_next = 17
    button_start = 27
    button_complete = 22
    led_green = 5
    led_red = 6

A press is the event ``pressed {key: "call_next"}`` (the button's function), sent when the pin
goes low; edges within ``bounce_time_s`` of the one before are the contact bouncing. Blinking is
done here, on the event loop, so the LED states match the QSystem keypad's (200 ms and 500 ms).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, ClassVar, Mapping

from hallctl.errors import ConfigError, DeviceOffline, HallctlError, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.kinds import KEYPAD_FUNCTIONS
from hallctl_drivers.transports.gpio import GpioPins

log = logging.getLogger(__name__)

#: what a button can do (the kind's contract); the keypad app maps each to a central action
FUNCTIONS = KEYPAD_FUNCTIONS
_PIN = {"type": ["integer", "string"], "format": "gpio-pin",
        "description": "a gpiozero pin name: 17 or \"GPIO17\" (BCM), \"BOARD11\" (header pin)"}
OUTPUTS = ("led_green", "led_red", "buzzer")

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{f"button_{f}": {**_PIN, "description": f"the {f} button's pin"} for f in FUNCTIONS},
        "led_green": {**_PIN, "description": "the green LED's pin"},
        "led_red": {**_PIN, "description": "the red LED's pin"},
        "buzzer": {**_PIN, "description": "an active buzzer's pin (beeps)"},
        "bounce_time_s": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05,
                          "description": "edges ignored after a press (contact bounce)"},
        "pull_up": {"type": "boolean", "default": True,
                    "description": "buttons to GND with the internal pull-up (false: to 3V3, pulled down)"},
    },
    "additionalProperties": False,
}

#: LED state -> (colour, half period in s or None for steady); QSystem's periods (protocols.md §3.8)
LED_PATTERNS: dict[str, tuple[str | None, float | None]] = {
    "off": (None, None), "red": ("led_red", None), "green": ("led_green", None),
    "red_blink": ("led_red", 0.2), "green_blink": ("led_green", 0.2),
    "red_blink_slow": ("led_red", 0.5), "green_blink_slow": ("led_green", 0.5),
}
BEEP_S = 0.5


def _pin_name(pin: int | str) -> str:
    """One name per BCM pin (17, "17", "GPIO17", "BCM17" are the same pin), for finding a pin
    given twice; header names (BOARD11) stay as they are and gpiozero refuses a clash at start."""
    text = str(pin).strip().upper()
    m = re.fullmatch(r"(?:GPIO|BCM)?(\d+)", text)
    return f"GPIO{int(m.group(1))}" if m else text


class GpioKeypad(Driver):
    """Buttons and LEDs on GPIO; ``pin_factory`` is gpiozero's (tests pass a ``MockFactory``)."""

    kind: ClassVar[str] = "window_keypad"
    features = frozenset({"led"})
    probe_interval_s: ClassVar[float] = 2.0
    settings_schema = {
        "type": "object",
        "properties": {"test_step_s": {"type": "number", "minimum": 0.05, "maximum": 2, "default": 0.3,
                                       "description": "how long each step of led_test lasts"}},
        "additionalProperties": False,
    }
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, pin_factory: Any = None) -> None:
        super().__init__(settings, options, features=features)
        o = self.options
        self.buttons = {f: o[f"button_{f}"] for f in FUNCTIONS if f"button_{f}" in o}
        self.outputs = {name: o[name] for name in OUTPUTS if name in o}
        if not self.buttons:
            raise ConfigError("a GPIO keypad needs at least one button_<function> pin "
                              f"({', '.join('button_' + f for f in FUNCTIONS)})", key="options")
        seen: dict[str, str] = {}
        for key, pin in [*((f"button_{f}", p) for f, p in self.buttons.items()), *self.outputs.items()]:
            name = _pin_name(pin)
            if name in seen:
                raise ConfigError(f"pin {pin!r} is also {seen[name]}", key=f"options.{key}")
            seen[name] = key
        self._pin_factory = pin_factory
        self._pins: GpioPins | None = None
        self._reader: asyncio.Task[None] | None = None
        self._blinker: asyncio.Task[None] | None = None
        self._beeper: asyncio.Task[None] | None = None
        self._heard = False
        self.led_state = "off"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._pins is not None:
            return
        pins = GpioPins(inputs=self.buttons, outputs=self.outputs, pull_up=self.options["pull_up"],
                        bounce_time=self.options["bounce_time_s"] or None, pin_factory=self._pin_factory)
        await pins.open()
        self._pins = pins
        self._reader = asyncio.create_task(self._read(pins), name="gpio keypad")

    async def stop(self) -> None:
        pins, self._pins = self._pins, None
        for task in (self._reader, self._blinker, self._beeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._reader = self._blinker = self._beeper = None
        if pins is not None:
            await pins.close()

    async def probe(self) -> ProbeResult:
        detail = {"pins": {**{f"button_{f}": str(p) for f, p in self.buttons.items()},
                           **{k: str(p) for k, p in self.outputs.items()}}}
        if self._pins is None:
            return ProbeResult(Health.FAULT, "not started", detail)
        if self._heard:
            return ProbeResult(Health.OK, "keypad heard (a button was pressed)", detail)
        # pins claimed: all that can be known of a button before it is pressed (see qsys.py)
        return ProbeResult(Health.OK, "pins claimed; no button pressed since start (a button is known to be "
                                      "wired only once it is pressed)", {**detail, "heard": False})

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"this keypad does not implement {action!r}")
        if action == "led":
            return await self._led(str(args["state"]), bool(args.get("beep", False)))
        return await self._led_test()

    async def _led(self, state: str, beep: bool) -> dict[str, Any]:
        pins = self._require()
        colour, half = LED_PATTERNS[state]
        if self._blinker is not None:
            self._blinker.cancel()
            await asyncio.gather(self._blinker, return_exceptions=True)
            self._blinker = None
        for name in ("led_green", "led_red"):
            if name in self.outputs:
                await pins.set(name, name == colour and half is None)
        if colour in self.outputs and half is not None:
            self._blinker = asyncio.create_task(self._blink(pins, colour, half))
        self.led_state = state
        beeped = beep and "buzzer" in self.outputs
        if beeped and (self._beeper is None or self._beeper.done()):
            self._beeper = asyncio.create_task(self._beep(pins))
        return {"state": state, "beep": beeped, "lit": colour in self.outputs}

    async def _led_test(self) -> dict[str, Any]:
        step = float(self.settings["test_step_s"])
        done = []
        for i, state in enumerate(("red", "green", "red_blink", "green_blink")):
            await self._led(state, beep=i == 0)
            done.append(state)
            await asyncio.sleep(step)
        await self._led("off", False)
        return {"leds": [*done, "off"], "texts": []}

    # -- internals ----------------------------------------------------------------------------

    def _require(self) -> GpioPins:
        if self._pins is None:
            raise DeviceOffline("GPIO keypad is not started")
        return self._pins

    async def _read(self, pins: GpioPins) -> None:
        async for name in pins.presses(float(self.options["bounce_time_s"])):
            self._heard = True
            self.emit("pressed", {"key": name})

    async def _blink(self, pins: GpioPins, name: str, half: float) -> None:
        on = True
        try:
            while True:
                await pins.set(name, on)
                on = not on
                await asyncio.sleep(half)
        except HallctlError as exc:  # closed under us: the next led() or a restart sets it again
            log.debug("GPIO keypad: blinking %s stopped: %s", name, exc.message)

    @staticmethod
    async def _beep(pins: GpioPins) -> None:
        try:
            await pins.set("buzzer", True)
            await asyncio.sleep(BEEP_S)
            await pins.set("buzzer", False)
        except HallctlError:  # closed meanwhile: closing switched it off
            pass
