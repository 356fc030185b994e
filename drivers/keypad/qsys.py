"""The QSystem-type RS485 keypad driver: one instance per keypad, keypads on one port share it.

Frames and sources: :mod:`hallctl_drivers.keypad.qsys_codec`. A keypad never answers, so:

* ``show`` and ``led`` answer once the frame is written; nothing more can be known;
* the probe cannot ask the keypad. It reports ``fault`` when the line itself is gone (the USB
  adapter pulled), else ``ok`` with ``detail.heard`` (a key press at its address since the driver
  started); before the first press its reason says that only the line was checked.

Which of LED and display a model has is its profile's ``features`` (QSystem 1.3.4 drove only the
LED, 1.4.1 only the display, 1.3.7 both: firmware_profiles/qsystem-keypad-*.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Mapping

from hallctl.errors import BadRequest, DeviceOffline, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.keypad.qsys_bus import QsysBus
from hallctl_drivers.keypad.qsys_codec import (
    ADDRESS_MAX, ADDRESS_MIN, CodecError, display_frame, fit_text, led_frame,
)
from hallctl_drivers.transports import Transport

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "baudrate": {"type": "integer", "enum": [9600, 19200, 38400, 57600, 115200], "default": 57600,
                     "description": "QSystem's qub.properties: 57600 8N1"},
        "display_width": {"type": "integer", "minimum": 1, "maximum": 16, "default": 3,
                          "description": "characters on the display (QSystem cuts numbers to 3)"},
        "frame_gap_s": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.0,
                        "description": "least time between two frames to one keypad (1.3.7 waits 150 ms)"},
        "test_step_s": {"type": "number", "minimum": 0.05, "maximum": 2, "default": 0.3,
                        "description": "how long each step of led_test lasts"},
    },
    "additionalProperties": False,
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "port": {"type": "string", "minLength": 1, "format": "device-path",
                 "description": "the RS485 adapter the keypads are on, e.g. /dev/serial/by-id/..."},
        "address": {"type": "integer", "minimum": ADDRESS_MIN, "maximum": ADDRESS_MAX,
                    "description": "the keypad's address byte, 32..127 (0x20..0x7F), as set with QSystem's tool"},
    },
    "required": ["port", "address"],
    "additionalProperties": False,
}

#: what led_test shows and lights, in order
TEST_TEXT = "888"
TEST_LEDS = ("red", "green", "red_blink", "green_blink")


class QsysKeypad(Driver):
    """One keypad at ``address`` on ``port``. Tests may pass ``transport`` (a FakeTransport)."""

    kind: ClassVar[str] = "window_keypad"
    features = frozenset({"display", "led"})
    #: the probe costs no I/O: a pulled adapter shows within 2 s
    probe_interval_s: ClassVar[float] = 2.0
    settings_schema = SETTINGS_SCHEMA
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, transport: Transport | None = None) -> None:
        super().__init__(settings, options, features=features)
        self.port: str = self.options["port"]
        self.address: int = self.options["address"]
        self.width: int = self.settings["display_width"]
        self.gap: float = float(self.settings["frame_gap_s"])
        self._transport = transport
        self._bus: QsysBus | None = None

    def _make_transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        from hallctl_drivers.transports.serial import SerialTransport

        return SerialTransport(self.port, self.settings["baudrate"])

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._bus is not None:
            return
        bus = QsysBus.acquire(self.port, self._make_transport)
        await bus.attach(self.address, self._pressed)
        self._bus = bus

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            await bus.detach(self.address)

    async def probe(self) -> ProbeResult:
        detail = {"port": self.port, "address": self.address}
        bus = self._bus
        if bus is None:
            return ProbeResult(Health.FAULT, "not started", detail)
        if bus.error is not None:
            return ProbeResult(Health.FAULT, bus.error, detail)
        if self.address in bus.heard:
            return ProbeResult(Health.OK, "keypad heard (a key was pressed)", {**detail, "heard": True})
        # A keypad speaks only when a key is pressed: before the first press only the line is
        # known. That is no fault for a technician to chase at opening time (as for a write-only
        # window board), so the line being there is "ok", and the reason says what was checked.
        return ProbeResult(Health.OK, "line open; no key pressed since start (a keypad speaks only when a key "
                                      "is pressed, so only the line is checked)", {**detail, "heard": False})

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"this keypad does not implement {action!r}")
        if action == "show":
            return await self._show(str(args.get("text", "")), bool(args.get("blink", False)))
        if action == "led":
            return await self._led(str(args.get("state", "")), bool(args.get("beep", False)))
        return await self._led_test()

    async def _show(self, text: str, blink: bool) -> dict[str, Any]:
        try:
            frame = display_frame(self.address, text, blink, self.width)
        except CodecError as exc:
            raise BadRequest(str(exc), field="text") from None
        await self._send(frame)
        return {"shown": fit_text(text, self.width).rstrip(), "blink": blink, "bytes": len(frame)}

    async def _led(self, state: str, beep: bool) -> dict[str, Any]:
        try:
            frame = led_frame(self.address, state, beep)
        except CodecError as exc:
            raise BadRequest(str(exc), field="state") from None
        await self._send(frame)
        return {"state": state, "beep": beep}

    async def _led_test(self) -> dict[str, Any]:
        """Every segment on, then each LED state in turn (a beep with the first), then blank:
        what a technician watches at the window."""
        step = float(self.settings["test_step_s"])
        done: dict[str, Any] = {"texts": [], "leds": []}
        if self.supports("display"):
            await self._show(TEST_TEXT, False)
            done["texts"].append(TEST_TEXT)
        if self.supports("led"):
            for i, state in enumerate(TEST_LEDS):
                await self._led(state, beep=i == 0)
                done["leds"].append(state)
                await asyncio.sleep(step)
        else:
            await asyncio.sleep(step * 2)
        if self.supports("led"):
            await self._led("off", False)
            done["leds"].append("off")
        if self.supports("display"):
            await self._show("", False)
            done["texts"].append("")
        return done

    async def _send(self, frame: bytes) -> None:
        if self._bus is None:
            raise DeviceOffline(f"keypad 0x{self.address:02X} on {self.port} is not started")
        await self._bus.send(self.address, frame, self.gap)

    def _pressed(self, key: str) -> None:
        self.emit("pressed", {"key": key})
