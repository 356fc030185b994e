"""An RS485 bus of Onbon BX-5K/6K controllers, on a pty, for tests and the demo.

Lives beside the codec it shares; the driver never imports it (tests check that).
Speaks the vendor protocol (doc v1.4; see hallctl_drivers.onbon_bx): hunts A5, unescapes up to
5A, checks the CRC, then per addressed controller:

* bad CRC / corrupt frame          -> NACK ``A0 01 05`` (ERR_CHECKSUM), if its DstAddr is ours
* unknown command                  -> NACK ``A0 01 02`` (ERR_NOCMD)
* DstAddr FFFF or Response = 02    -> executes silently
* otherwise                        -> ACK ``A0 00 00`` (or the A1 02 status record)

Replies go to the request's SrcAddr, from the controller's address (FFFE for an FFFE broadcast).
Each screen keeps what a person would read (:attr:`Screen.lines`), the raw frames it received
(:attr:`Screen.frames`) and every text it showed (:attr:`Screen.history`).
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from hallctl.errors import BadRequest
from hallctl_drivers.onbon_bx.area import decode_text, encode_status, parse_dynamic_area_payload
from hallctl_drivers.onbon_bx.frame import (
    ADDR_BROADCAST_REPLY,
    ADDR_BROADCAST_SILENT,
    CMD_ACK,
    CMD_BRIGHTNESS,
    CMD_CLEAR,
    CMD_DYNAMIC_AREA,
    CMD_FORMAT,
    CMD_NACK,
    CMD_PING,
    CMD_POWER,
    CMD_STATUS,
    CMD_TIME_SYNC,
    DEVICE_TYPE_ANY,
    ERR_CHECKSUM,
    ERR_MEMORYVOLUME,
    ERR_NOCMD,
    RESPONSE_NONE,
    Frame,
    FrameError,
    FrameReader,
    build_frame,
    encode_phy0,
    unescape,
)
from hallctl_drivers.transports.pty import PtyDevice


@dataclass
class BxFaults:
    """Switches a test flips to make the bus misbehave."""

    #: every reply gets one CRC bit flipped (noise on the way back)
    corrupt_replies: bool = False
    #: every request gets one bit flipped before the controller reads it (noise on the way in)
    corrupt_requests: bool = False
    #: controllers hear nothing and answer nothing (cable pulled / display unpowered)
    silent: bool = False


@dataclass
class Screen:
    """One virtual controller and its LED bar."""

    address: int
    device_type: int = DEVICE_TYPE_ANY
    #: area id -> lines shown in that dynamic area
    areas: dict[int, list[str]] = field(default_factory=dict)
    #: raw PHY0 bytes of every frame addressed to this controller (broadcasts included)
    frames: list[bytes] = field(default_factory=list)
    #: every text shown, in order ("\n"-joined lines of the updated area)
    history: list[str] = field(default_factory=list)
    brightness: int = 15
    power_on: bool = True
    clock_offset: _dt.timedelta = _dt.timedelta(0)

    @property
    def lines(self) -> list[str]:
        """What a person reads: every dynamic area's lines, in area order."""
        return [line for aid in sorted(self.areas) for line in self.areas[aid]]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class BxEmulator(PtyDevice):
    """N virtual BX controllers keyed by DstAddr on one pty (a multi-drop RS485 bus).

    Model limits default to the BX-6K (5 dynamic areas of 1024 B, 1024-byte receive buffer);
    pass ``max_areas=8, area_capacity=512, rx_buffer=512`` for a 5K (§2.1, §8.2.1, §8.1.2).
    """

    def __init__(
        self,
        addresses: Iterable[int] = (1,),
        *,
        device_type: int = DEVICE_TYPE_ANY,
        max_areas: int = 5,
        area_capacity: int = 1024,
        rx_buffer: int = 1024,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.screens: dict[int, Screen] = {
            a: Screen(address=a, device_type=device_type) for a in addresses
        }
        self.faults = BxFaults()
        self.max_areas = max_areas
        self.area_capacity = area_capacity
        self.rx_buffer = rx_buffer
        #: the latest frames / frame errors seen on the bus, addressed to us or not (bounded,
        #: so a long demo does not grow without limit)
        self.bus_log: deque[Frame | FrameError] = deque(maxlen=1000)
        self._reader = FrameReader()

    # -- faults -------------------------------------------------------------------------------

    def power_cycle(self, address: int) -> None:
        """Reboot one controller: dynamic areas live in RAM (§8.2.1), so its bar goes blank."""
        with self.cond:
            screen = self.screens[address]
            screen.areas.clear()
            screen.power_on = True
            self.cond.notify_all()

    # -- protocol -----------------------------------------------------------------------------

    def handle(self, chunk: bytes) -> bytes | None:
        if self.faults.silent:
            self._reader.reset()  # a dead controller also forgets half-received frames
            return None
        out = bytearray()
        for item in self._reader.feed(chunk):
            if isinstance(item, Frame) and self.faults.corrupt_requests:
                err = FrameError(
                    "a bit was flipped on the line (emulator fault)", reason="checksum", dst=item.dst
                )
                err.raw = item.raw
                item = err
            self.bus_log.append(item)
            out += self._dispatch(item)
        return bytes(out) or None

    def _targets(self, dst: int | None) -> list[Screen]:
        if dst is None:
            return []
        if dst in (ADDR_BROADCAST_SILENT, ADDR_BROADCAST_REPLY):
            return list(self.screens.values())
        screen = self.screens.get(dst)
        return [screen] if screen else []

    def _dispatch(self, item: Frame | FrameError) -> bytes:
        targets = self._targets(item.dst)
        for screen in targets:
            screen.frames.append(item.raw)
        if isinstance(item, FrameError):
            if item.dst == ADDR_BROADCAST_SILENT:
                return b""
            # The corrupted frame's SrcAddr is a best guess; a real card would do no better.
            src = _src_of(item.raw)
            return b"".join(
                self._reply(s, item.dst or s.address, src, CMD_NACK, ERR_CHECKSUM)
                for s in targets
            )
        out = bytearray()
        for screen in targets:
            err, data, reply_cmd = self._execute(screen, item)
            if item.dst == ADDR_BROADCAST_SILENT or item.response == RESPONSE_NONE:
                continue
            if err:
                out += self._reply(screen, item.dst, item.src, CMD_NACK, err)
            elif reply_cmd is not None:
                out += self._reply(screen, item.dst, item.src, reply_cmd, 0, data)
            else:
                out += self._reply(screen, item.dst, item.src, CMD_ACK, 0)
        return bytes(out)

    def _reply(
        self,
        screen: Screen,
        request_dst: int,
        request_src: int,
        command: tuple[int, int],
        err: int,
        data: bytes = b"",
    ) -> bytes:
        src = ADDR_BROADCAST_REPLY if request_dst == ADDR_BROADCAST_REPLY else screen.address
        frame = build_frame(
            *command, data, dst=request_src, src=src, device_type=screen.device_type,
            response=err,
        )
        if self.faults.corrupt_replies:
            phy1 = bytearray(unescape(frame[8:-1]))
            phy1[-2] ^= 0x01  # CRC LSB
            frame = encode_phy0(bytes(phy1))
        return frame

    def _execute(self, screen: Screen, f: Frame) -> tuple[int, bytes, tuple[int, int] | None]:
        """Apply one request to a controller: (CmdError, reply data, reply command or None=ACK)."""
        if len(f.data) + 5 > self.rx_buffer:
            return ERR_MEMORYVOLUME, b"", None
        cmd = f.command
        if cmd == CMD_PING or cmd == CMD_TIME_SYNC or cmd == CMD_FORMAT:
            return 0, b"", None
        if cmd == CMD_STATUS:
            data = encode_status(
                power_on=screen.power_on,
                brightness=screen.brightness,
                clock=_dt.datetime.now() + screen.clock_offset,
                dynamic_areas=sorted(screen.areas),
            )
            return 0, data, CMD_STATUS
        if cmd == CMD_CLEAR:
            screen.areas.clear()
            return 0, b"", None
        if cmd == CMD_POWER and f.data[:1] in (b"\x01", b"\x02"):
            screen.power_on = f.data[0] == 1
            return 0, b"", None
        if cmd == CMD_BRIGHTNESS and len(f.data) >= 2 and f.data[0] == 1 and f.data[1] <= 15:
            screen.brightness = f.data[1]
            return 0, b"", None
        if cmd == CMD_BRIGHTNESS and len(f.data) >= 50 and f.data[0] == 2:
            return 0, b"", None  # half-hourly schedule: accepted, not modelled
        if cmd == CMD_DYNAMIC_AREA:
            return self._dynamic_area(screen, f.data), b"", None
        # The doc defines no "bad parameter" error; malformed known commands get ERR_NOCMD too.
        return ERR_NOCMD, b"", None

    def _dynamic_area(self, screen: Screen, data: bytes) -> int:
        try:
            deletes, areas = parse_dynamic_area_payload(data)
        except BadRequest:
            return ERR_NOCMD  # emulator's choice: the doc has no "malformed data" CmdError
        if any(a.area_id >= self.max_areas for a in areas):
            return ERR_MEMORYVOLUME
        if any(len(a.text) > self.area_capacity for a in areas):
            return ERR_MEMORYVOLUME
        if deletes is None:
            screen.areas.clear()
        for aid in deletes or ():
            screen.areas.pop(aid, None)
        for area in areas:
            lines = decode_text(area.text)
            if not any(lines):
                lines = []  # a bar showing only blank rows reads as blank
            screen.areas[area.area_id] = lines
            screen.history.append("\n".join(lines))
        return 0


def _src_of(raw: bytes) -> int:
    """Best-effort SrcAddr of a corrupted frame; the PC address when unreadable."""
    body = raw.lstrip(b"\xa5")
    for n in (6, 5, 4):
        try:
            head = unescape(body[:n])
        except FrameError:
            continue
        if len(head) >= 4:
            return int.from_bytes(head[2:4], "little")
    return 0x8000
