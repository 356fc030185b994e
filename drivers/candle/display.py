"""The Candle/QSystem-type RS485 window board driver: show, clear, brightness, over a shared port.

The board cannot answer ([CANDLE] §3 p.5: no reply packet, no checksum), so this driver never
waits for one and never claims the board confirmed anything: ``start()`` opens the port,
``probe()`` checks the serial link only (and says so), every answer carries ``confirmed: false``.
Several boards share one RS485 port: frames go out one at a time with a pause between any two on
that bus (QSystem's 200 ms, [PLUG] Sender485.java:115-118).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Mapping

from hallctl.errors import BadRequest, ConfigError, DeviceOffline, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.candle.codec import (
    BLINK_CONTINUOUS,
    BLINK_STEADY,
    blink_code,
    brightness_code,
    brightness_frame,
    set_data_frame,
)
from hallctl_drivers.candle.layout import Layout
from hallctl_drivers.candle.schemas import FEATURES, OPTIONS_SCHEMA, SETTINGS_SCHEMA
from hallctl_drivers.transports import SerialLine
from hallctl_drivers.transports.serial import SerialTransport

#: port name -> when its last frame left (monotonic s); read and written only while holding
#: that port's transaction, so the boards of one bus keep the gap between all their frames
_LAST_FRAME_END: dict[str, float] = {}

#: the clock and the pause of the bus pacing (module attributes so a test can watch them)
_now = time.monotonic
_sleep = asyncio.sleep

WRITE_ONLY = "write-only board: the serial link works; the board itself cannot confirm what it shows"


class CandleDisplay(Driver):
    """One Candle 7-segment board (one address) on an RS485 port shared with other boards.

    Settings (firmware_profiles/candle-*.toml): digits, arrow_module, baudrate, frame_gap_s.
    Options (node config): port (required), address (0x20..0x7F), arrow, window_label,
    baudrate / frame_gap_s overrides, refresh_s.

    ``show`` with ``number`` writes the call as the board's row, e.g. ``"A012-5 "`` (ticket,
    arrow, window); without it, the first of ``lines`` is shown as it is (a technician's test).
    ``blink``: 0 steady, n times then steady, -1 until the next show.
    """

    kind: ClassVar[str] = "window_display"
    features = FEATURES
    settings_schema = SETTINGS_SCHEMA
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, transport: SerialLine | None = None) -> None:
        super().__init__(settings, options, features=features)
        s, o = self.settings, self.options
        self.port: str = o["port"]
        self.address: int = o["address"]
        self.layout = Layout(s["digits"], s["arrow_module"])
        self.arrow: str = o["arrow"]
        self.window_label: str | None = o.get("window_label")
        if self.window_label is not None:
            if not self.layout.arrow_module:
                raise ConfigError("this board has no window digits (its profile has arrow_module = false)",
                                  key="options.window_label")
            try:
                self.layout.encode(self.layout.call_text("", self.window_label, self.arrow))
            except BadRequest as exc:
                raise ConfigError(exc.message, key="options.window_label") from None
        self.baudrate: int = o.get("baudrate", s["baudrate"])
        self.frame_gap: float = float(o.get("frame_gap_s", s["frame_gap_s"]))
        self.refresh_s: float = float(o["refresh_s"])
        self._transport: SerialLine = (
            transport if transport is not None else SerialTransport(self.port, self.baudrate)
        )
        self._started = False
        #: the data and blink byte of the last row sent: what the board should show
        self._last: tuple[bytes, int] | None = None
        self._last_sent = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the port (the board cannot be asked who it is)."""
        if self._started:
            return
        t = self._transport
        await t.open()
        self._started = True
        try:
            if t.baudrate != self.baudrate:
                if t.users > 1:
                    raise ConfigError(f"{self.port} is already open at {t.baudrate} baud for another board; every "
                                      f"board on one bus has the same jumper, so one speed", key="options.baudrate")
                await t.set_baudrate(self.baudrate)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._transport.close()

    async def probe(self) -> ProbeResult:
        """The port is there and takes I/O (a pulled adapter is DeviceOffline). Every
        ``refresh_s`` the last row is sent again, so a board that lost power shows it again."""
        detail = {"port": self.port, "address": self.address, "confirmed": False}
        if not self._started:
            return ProbeResult(Health.FAULT, "not started", detail)
        async with self._transport.transaction() as wire:
            await wire.discard_input()  # a vanished port fails here
        if self._last is not None and self.refresh_s and _now() - self._last_sent >= self.refresh_s:
            data, blink = self._last
            # a counted blink is over by now; "until the next show" goes on
            await self._send(set_data_frame(self.address, data, blink if blink == BLINK_CONTINUOUS else BLINK_STEADY))
            self._last_sent = _now()
            detail["refreshed"] = True
        return ProbeResult(Health.OK, WRITE_ONLY, detail)

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"this window board does not implement {action!r} (it cannot answer)")
        if not isinstance(args, Mapping):
            raise BadRequest("arguments must be an object")
        if action == "show":
            text = self.row_text(args)
            blink = args.get("blink", 0)
            n = await self._show(self.layout.encode(text), blink_code(blink))
            return {"bytes": n, "text": text.ljust(self.layout.width), "blink": blink, "confirmed": False}
        if action == "clear":
            n = await self._show(self.layout.encode(""), BLINK_STEADY)
            return {"bytes": n, "confirmed": False}
        # brightness: the kind's 0..15 on the board's four steps
        level = args.get("level")
        frame = brightness_frame(self.address, brightness_code(level))  # BadRequest for a bad level
        await self._send(frame)
        return {"level": level, "code": frame[2], "confirmed": False}

    # -- internals --------------------------------------------------------------------------

    def row_text(self, args: Mapping[str, Any]) -> str:
        """The row a ``show`` puts on the board (public so tests can compare)."""
        number = args.get("number")
        if number is not None:
            if not isinstance(number, str):
                raise BadRequest('"number" must be a string', field="data.number")
            window = self.window_label if self.window_label is not None else args.get("window", "")
            if not isinstance(window, str):
                raise BadRequest('"window" must be a string', field="data.window")
            return self.layout.call_text(number, window, self.arrow)
        lines = args.get("lines")
        if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
            raise BadRequest('"lines" must be a list of strings (or give "number")', field="data.lines")
        if any(line.strip() for line in lines[1:]):
            raise BadRequest(f"this board shows one row of {self.layout.width} characters: send one line",
                             field="data.lines")
        return lines[0]

    async def _show(self, data: bytes, blink: int) -> int:
        frame = set_data_frame(self.address, data, blink)
        await self._send(frame)
        self._last = (data, blink)
        self._last_sent = _now()
        return len(frame)

    async def _send(self, frame: bytes) -> None:
        """Write one frame, the bus's gap after the one before (any board's); no reply to wait for."""
        if not self._started:
            raise DeviceOffline(f"board 0x{self.address:02X} on {self.port} is not started")
        async with self._transport.transaction() as wire:
            key = self._transport.name
            wait = _LAST_FRAME_END.get(key, float("-inf")) + self.frame_gap - _now()
            if wait > 0:
                await _sleep(wait)
            try:
                await wire.write(frame)
            finally:
                _LAST_FRAME_END[key] = _now()


__all__ = ["CandleDisplay", "WRITE_ONLY"]
