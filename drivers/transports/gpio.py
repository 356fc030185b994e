"""Buttons and outputs on the Pi's GPIO header (evaluator keypads, lamps, buzzers), via gpiozero.

Not a byte stream: it shares only the lifecycle of a transport (``open``/``close``, idempotent).
gpiozero calls ``when_pressed`` from its own threads; each edge is handed to the event loop with
``call_soon_threadsafe`` and read with :meth:`GpioPins.next_event`. The pin factory is injected
(gpiozero's ``MockFactory`` in tests, where ``factory.pin(17).drive_low()`` presses the button),
never imported here; ``None`` lets gpiozero choose (``GPIOZERO_PIN_FACTORY``, lgpio on a Pi 5).

Wiring: a button between the GPIO pin and GND (the Pi's internal pull-up holds it high, a press
pulls it low); an LED through a resistor from the pin to GND (active high).

    pins = GpioPins(inputs={"satisfied": 17, "unsatisfied": 27}, outputs={"lamp": 22})
    await pins.open()
    event = await pins.next_event()      # PinEvent(name="satisfied", pressed=True)
    await pins.set("lamp", True)
    await pins.close()
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

from hallctl.errors import BadRequest, ConfigError, DeviceOffline

log = logging.getLogger(__name__)

#: events kept for a reader that is late; past that, new ones are dropped (and logged)
_QUEUE_MAX = 256


@dataclass(frozen=True)
class PinEvent:
    """An input changed: ``pressed`` True when it became active (button pressed), else False."""

    name: str
    pressed: bool


class GpioPins:
    """Named inputs (buttons) and outputs (lamps, buzzers) on one pin factory."""

    def __init__(
        self,
        inputs: Mapping[str, int | str] | None = None,
        outputs: Mapping[str, int | str] | None = None,
        *,
        pull_up: bool = True,
        bounce_time: float | None = 0.05,
        active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.pull_up, self.bounce_time, self.active_high = pull_up, bounce_time, active_high
        self.pin_factory = pin_factory
        self.name = "gpio:" + ",".join(f"{n}={p}" for n, p in {**self.inputs, **self.outputs}.items())
        self._devices: dict[str, Any] = {}
        self._events: asyncio.Queue[PinEvent] = asyncio.Queue(_QUEUE_MAX)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        if self._devices:
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_blocking)

    async def close(self) -> None:
        devices, self._devices = self._devices, {}
        if devices:
            await asyncio.to_thread(lambda: [d.close() for d in devices.values()])

    async def next_event(self) -> PinEvent:
        """The next press or release, in the order they happened."""
        return await self._events.get()

    async def presses(self, bounce_s: float) -> AsyncIterator[str]:
        """The name of each button pressed, debounced here as well as by gpiozero: a press that
        follows any edge of its button by less than ``bounce_s`` is the contact bouncing (on a
        press, or on the release that ends one). gpiozero's own debounce is the pin driver's
        (lgpio's in the kernel), and some pin drivers (MockFactory among them) have none."""
        loop = asyncio.get_running_loop()
        last_edge: dict[str, float] = {}
        while True:
            event = await self.next_event()
            now = loop.time()
            bounced = now - last_edge.get(event.name, float("-inf")) < bounce_s
            last_edge[event.name] = now
            if event.pressed and not bounced:
                yield event.name

    def is_pressed(self, name: str) -> bool:
        return bool(self._device(name, self.inputs).is_active)

    async def set(self, name: str, on: bool) -> None:
        """Switch an output on or off."""
        dev = self._device(name, self.outputs)
        await asyncio.to_thread(dev.on if on else dev.off)

    # -- internals ----------------------------------------------------------------------------

    def _device(self, name: str, group: Mapping[str, Any]) -> Any:
        if name not in group:
            raise BadRequest(f"no GPIO pin named {name!r} here (have {sorted(group)})")
        if name not in self._devices:
            raise DeviceOffline(f"{self.name} is not open", transport=self.name)
        return self._devices[name]

    def _open_blocking(self) -> None:
        from gpiozero import Button, DigitalOutputDevice, GPIOPinInUse, GPIOZeroError, PinInvalidPin

        made: dict[str, Any] = {}
        try:
            for name, pin in self.inputs.items():
                b = Button(
                    pin, pull_up=self.pull_up, bounce_time=self.bounce_time,
                    pin_factory=self.pin_factory,
                )
                b.when_activated = lambda name=name: self._post(PinEvent(name, True))
                b.when_deactivated = lambda name=name: self._post(PinEvent(name, False))
                made[name] = b
            for name, pin in self.outputs.items():
                made[name] = DigitalOutputDevice(
                    pin, active_high=self.active_high, initial_value=False,
                    pin_factory=self.pin_factory,
                )
        except (PinInvalidPin, GPIOPinInUse) as exc:
            for d in made.values():
                d.close()
            raise ConfigError(f"{self.name}: {exc}") from exc
        except (GPIOZeroError, OSError) as exc:  # no GPIO on this machine, chip not accessible
            for d in made.values():
                d.close()
            raise DeviceOffline(f"{self.name}: {exc}", transport=self.name) from exc
        self._devices = made

    def _post(self, event: PinEvent) -> None:
        """From gpiozero's thread (or the loop's own, with MockFactory): hand over to the loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._enqueue, event)

    def _enqueue(self, event: PinEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("%s: %d events unread, dropping %s", self.name, _QUEUE_MAX, event)
