"""A panel of push buttons, each with a lamp, on the Pi's GPIO header (gpiozero).

The buttons-only kiosk: one button per category, its lamp lit while that category can be issued,
blinking while its ticket prints. Buttons and lamps are named by the hall (``buttons = {a = 17,
b = 27}``, ``lamps = {a = 5, b = 6}``); a press is the event ``pressed {"button": "a"}``. Contact
bounce is filtered here as in the GPIO keypad (some pin drivers have no debounce of their own).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, ClassVar, Mapping

from hallctl.errors import ConfigError, DeviceOffline, HallctlError, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.transports.gpio import GpioPins

log = logging.getLogger(__name__)

_PIN = {"type": ["integer", "string"], "format": "gpio-pin",
        "description": "a gpiozero pin name: 17 or \"GPIO17\" (BCM), \"BOARD11\" (header pin)"}
_NAMES = {"type": "object", "additionalProperties": _PIN}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: a lamp blinks at this half period (s)
BLINK_HALF_S = 0.4


class GpioButtonPanel(Driver):
    """Named buttons and lamps on GPIO; ``pin_factory`` is gpiozero's (tests pass a MockFactory)."""

    kind: ClassVar[str] = "button_panel"
    probe_interval_s: ClassVar[float] = 2.0
    settings_schema = {"type": "object", "properties": {}, "additionalProperties": False}
    options_schema = {
        "type": "object",
        "properties": {
            "buttons": {**_NAMES, "description": "button name -> its pin"},
            "lamps": {**_NAMES, "description": "lamp name -> its pin (a button's lamp has the button's name)"},
            "bounce_time_s": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05,
                              "description": "edges ignored after a press (contact bounce)"},
            "pull_up": {"type": "boolean", "default": True,
                        "description": "buttons to GND with the internal pull-up (false: to 3V3, pulled down)"},
        },
        "required": ["buttons"],
        "additionalProperties": False,
    }

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, pin_factory: Any = None) -> None:
        super().__init__(settings, options, features=features)
        self.buttons = dict(self.options["buttons"])
        self.lamps = dict(self.options.get("lamps") or {})
        if not self.buttons:
            raise ConfigError("a button panel needs at least one button (buttons = {a = 17})", key="options.buttons")
        for group, names in (("buttons", self.buttons), ("lamps", self.lamps)):
            for name in names:
                if not _NAME_RE.match(name):
                    raise ConfigError("a name of lower-case letters, digits, - and _ (at most 32)",
                                      key=f"options.{group}.{name}")
        seen: dict[str, str] = {}
        for key, pin in [*((f"buttons.{n}", p) for n, p in self.buttons.items()),
                         *((f"lamps.{n}", p) for n, p in self.lamps.items())]:
            name = str(pin).upper().removeprefix("GPIO") if not isinstance(pin, int) else str(pin)
            if name in seen:
                raise ConfigError(f"pin {pin!r} is also {seen[name]}", key=f"options.{key}")
            seen[name] = key
        self._pin_factory = pin_factory
        self._pins: GpioPins | None = None
        self._reader: asyncio.Task[None] | None = None
        self._blinker: asyncio.Task[None] | None = None
        self._heard = False
        #: what the lamps show: name -> "on" | "blink" (absent: off)
        self.lit: dict[str, str] = {}

    async def start(self) -> None:
        if self._pins is not None:
            return
        pins = GpioPins(inputs=self.buttons, outputs={f"lamp:{n}": p for n, p in self.lamps.items()},
                        pull_up=self.options["pull_up"], bounce_time=self.options["bounce_time_s"] or None,
                        pin_factory=self._pin_factory)
        await pins.open()
        self._pins = pins
        self._reader = asyncio.create_task(self._read(pins), name="button panel")

    async def stop(self) -> None:
        pins, self._pins = self._pins, None
        for task in (self._reader, self._blinker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._reader = self._blinker = None
        if pins is not None:
            await pins.close()

    async def probe(self) -> ProbeResult:
        detail = {"buttons": sorted(self.buttons), "lamps": sorted(self.lamps), "heard": self._heard}
        if self._pins is None:
            return ProbeResult(Health.FAULT, "not started", detail)
        # as for a GPIO keypad: claimed pins are all that can be known of a button before a press
        return ProbeResult(Health.OK, "pins claimed" + ("" if self._heard else "; no button pressed since start"),
                           detail)

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "lamps":
            return await self._set(list(args.get("on") or []), list(args.get("blink") or []))
        if action == "lamp_test":
            for name in self.lamps:
                await self._set([name], [])
                await asyncio.sleep(0.3)
            await self._set(list(self.lamps), [])
            await asyncio.sleep(0.3)
            return await self._set([], [])
        raise UnknownCommand(f"a button panel has no action {action!r}")

    async def _set(self, on: list[str], blink: list[str]) -> dict[str, Any]:
        pins = self._pins
        if pins is None:
            raise DeviceOffline("button panel is not started")
        if self._blinker is not None:
            self._blinker.cancel()
            await asyncio.gather(self._blinker, return_exceptions=True)
            self._blinker = None
        lit = {n: "on" for n in on if n in self.lamps} | {n: "blink" for n in blink if n in self.lamps}
        for name in self.lamps:
            await pins.set(f"lamp:{name}", lit.get(name) == "on")
        blinking = [n for n, s in lit.items() if s == "blink"]
        if blinking:
            self._blinker = asyncio.create_task(self._blink(pins, blinking))
        self.lit = lit
        return {"on": sorted(n for n, s in lit.items() if s == "on"), "blink": sorted(blinking),
                "unknown": sorted(set(on) | set(blink) - set(self.lamps))}

    async def _blink(self, pins: GpioPins, names: list[str]) -> None:
        state = True
        try:
            while True:
                for name in names:
                    await pins.set(f"lamp:{name}", state)
                state = not state
                await asyncio.sleep(BLINK_HALF_S)
        except HallctlError as exc:  # closed under us: a restart sets the lamps again
            log.debug("button panel: blinking stopped: %s", exc.message)

    async def _read(self, pins: GpioPins) -> None:
        async for name in pins.presses(float(self.options["bounce_time_s"])):
            self._heard = True
            self.emit("pressed", {"button": name})
