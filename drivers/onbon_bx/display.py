"""The Onbon BX-5K/6K window display driver: PING, show, probe, over a shared serial port."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, ClassVar, Mapping, Sequence

from hallctl.errors import (
    BadRequest,
    ConfigError,
    DeviceOffline,
    DeviceTimeout,
    HallctlError,
    UnknownCommand,
)
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.onbon_bx.schemas import FEATURES, OPTIONS_SCHEMA, SETTINGS_SCHEMA
from hallctl_drivers.onbon_bx.frame import (
    ADDR_BROADCAST_REPLY, CMD_ACK, CMD_BRIGHTNESS, CMD_CLEAR, CMD_DYNAMIC_AREA, CMD_NACK,
    CMD_PING, CMD_PREFIX_LEN, CMD_STATUS, CRC_ONLY, Frame, FrameError, FrameReader,
    ERR_CHECKSUM, NackError, build_frame,
)
from hallctl_drivers.onbon_bx.area import dynamic_area_payload, parse_status, text_alignment
from hallctl_drivers.transports import SerialLine
from hallctl_drivers.transports.serial import SerialTransport

log = logging.getLogger(__name__)


class OnbonBxDisplay(Driver):
    """A BX-5K/6K window bar. One instance per display (DstAddr); displays on one port share it.

    Settings (firmware profile, see firmware_profiles/onbon-bx-*.toml): baudrate,
    fallback_baudrates, device_type, width, height, font, ascii_font, color, text_align,
    reply_timeout_s, retries, area_capacity_bytes, rx_buffer_bytes, max_dynamic_areas,
    blink_period_s.
    Options (node config): port (required), address (DstAddr, default 1), width/height
    overrides, area_id (dynamic area, default 0).

    Blinking: the protocol has no blink mode (§9.1), so ``show`` with ``blink`` sends the lines at
    once, then dark and lit again in the background, one phase per ``blink_period_s`` (§2.1: the
    dynamic area refreshes at most once a second); any later show or clear ends it.

    The display talks over ``transport``: by default a :class:`SerialTransport` on ``port``,
    shared with every other display on that port; tests pass a
    :class:`~hallctl_drivers.transports.fake.FakeTransport` to see the exact bytes.
    """

    kind: ClassVar[str] = "window_display"
    features = FEATURES
    settings_schema = SETTINGS_SCHEMA
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, transport: SerialLine | None = None) -> None:
        super().__init__(settings, options, features=features)
        # types and ranges are checked against the schemas (hallctl_drivers.onbon_bx.schemas) by
        # the base class, defaults filled in; what is left are the checks across keys
        s, o = self.settings, self.options
        self.port: str = o["port"]
        self.address: int = o["address"]
        self.width: int = o.get("width", s["width"])
        self.height: int = o.get("height", s["height"])
        self.baudrate: int = s["baudrate"]
        self.fallback_baudrates: list[int] = [b for b in s["fallback_baudrates"] if b != self.baudrate]
        self.device_type: int = s["device_type"]
        self.src_address: int = s["src_address"]
        self.reply_timeout: float = float(o.get("reply_timeout_s", s["reply_timeout_s"]))
        self.retries: int = s["retries"]
        self.area_capacity: int = s["area_capacity_bytes"]
        self.rx_buffer: int = s["rx_buffer_bytes"]
        if o["area_id"] >= s["max_dynamic_areas"]:
            raise ConfigError(f"must be 0..{s['max_dynamic_areas'] - 1} (this model has {s['max_dynamic_areas']} "
                              f"dynamic areas), got {o['area_id']}", key="options.area_id")
        self.area_id: int = o["area_id"]
        self.font: str | None = s["font"] or None
        self.ascii_font: str | None = s["ascii_font"] or None
        self.color: int | None = s["color"]
        align = s["text_align"]
        self.align: int = text_alignment(align, "center")
        self._transport: SerialLine = (
            transport if transport is not None else SerialTransport(self.port, self.baudrate)
        )
        self._started = False
        self._last_lines: list[str] | None = None
        # show/clear/restore of *this* display, so probe() never re-sends lines an app has just
        # replaced (the transport's lock alone would let a stale restore queue behind a fresh show)
        self._text_lock = asyncio.Lock()
        self.blink_period: float = float(s["blink_period_s"])
        self._blinker: asyncio.Task[None] | None = None
        #: a blink stopped by an error in a dark phase: probe() lights the lines again
        self._left_dark = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the port and PING; on silence try the fallback baud rates (§8.8)."""
        if self._started:
            return
        t = self._transport
        await t.open()
        self._started = True
        try:
            rates = [t.baudrate]
            if t.users == 1:  # only re-tune a port nobody else is using
                rates += [b for b in [self.baudrate, *self.fallback_baudrates] if b not in rates]
            last: HallctlError | None = None
            for rate in rates:
                if rate != t.baudrate:
                    await t.set_baudrate(rate)
                try:
                    await self._request(*CMD_PING)
                    return
                except DeviceTimeout as exc:
                    last = exc
            assert last is not None
            tried = ", ".join(str(r) for r in rates)
            raise DeviceTimeout(
                f"display {self.address} on {self.port} did not answer PING (baud {tried})",
                port=self.port,
                address=self.address,
            ) from last
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._stop_blinking()
        if self._started:
            self._started = False
            await self._transport.close()  # waits for a transaction in progress

    async def probe(self) -> ProbeResult:
        """PING; if the display answers but has lost what we showed (it rebooted: dynamic
        areas live in RAM, §8.2.1), show it again and report degraded."""
        detail = {"port": self.port, "address": self.address}
        if not self._started:
            return ProbeResult(Health.FAULT, "not started", detail)
        try:
            await self._request(*CMD_PING)
        except HallctlError as exc:
            return ProbeResult(Health.FAULT, exc.message, {**detail, "code": exc.code})
        async with self._text_lock:
            blinking = self._blinker is not None and not self._blinker.done()
            if self._last_lines is not None and self._left_dark and not blinking:
                try:
                    await self._send_lines(self._last_lines)
                except HallctlError as exc:
                    return ProbeResult(Health.FAULT, f"re-lighting after a broken blink failed: {exc.message}", detail)
            if self._last_lines is not None:
                try:
                    status = parse_status((await self._request(*CMD_STATUS)).data)
                except HallctlError:
                    status = {}  # status is optional for health; PING already answered
                if status.get("dynamic_areas") == []:
                    try:
                        await self._send_lines(self._last_lines)
                    except HallctlError as exc:
                        return ProbeResult(
                            Health.FAULT,
                            f"display lost its text; re-sending failed: {exc.message}",
                            detail,
                        )
                    return ProbeResult(
                        Health.DEGRADED, "display had lost its text (reboot?); shown again",
                        {**detail, "restored": True},
                    )
        return ProbeResult(Health.OK, "ping answered", detail)

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"window display does not implement {action!r}")
        if not isinstance(args, Mapping):
            raise BadRequest("arguments must be an object")
        if action == "show":
            lines = args.get("lines")
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise BadRequest('"lines" must be a list of strings')
            blink = args.get("blink", 0)
            if isinstance(blink, bool) or not isinstance(blink, int) or not -1 <= blink <= 94:
                raise BadRequest('"blink" must be -1 (until the next show), 0 (steady) or 1..94 times', field="data.blink")
            n = await self._show(lines, blink)
            return {"acked": True, "bytes": n, **({"blink": blink} if blink else {})}
        if action == "clear":
            await self._stop_blinking()
            async with self._text_lock:
                await self._request(*CMD_CLEAR)
                self._last_lines = None
            return {"acked": True}
        if action == "ping":
            await self._request(*CMD_PING)
            return {"acked": True}
        if action == "status":
            return parse_status((await self._request(*CMD_STATUS)).data)
        # brightness (§8.17): type 01 = set now, value 0..15
        level = args.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 15:
            raise BadRequest('"level" must be an integer 0..15')
        await self._request(*CMD_BRIGHTNESS, bytes([0x01, level]))
        return {"acked": True, "level": level}

    async def show_lines(self, lines: list[str]) -> dict[str, Any]:
        """Show ``lines`` (one per row), e.g. ``["A012", "请到3号窗口"]``."""
        return await self.execute("show", {"lines": list(lines)})

    # -- internals --------------------------------------------------------------------------

    def show_payload(self, lines: Sequence[str]) -> bytes:
        """The A3 06 data this driver sends for ``lines`` (public so tests can compare bytes)."""
        payload = dynamic_area_payload(
            lines,
            width=self.width,
            height=self.height,
            area_id=self.area_id,
            font=self.font,
            ascii_font=self.ascii_font,
            color=self.color,
            align=self.align,
            run_mode=1,
            max_text_bytes=self.area_capacity,
        )
        if CMD_PREFIX_LEN + len(payload) > self.rx_buffer:
            raise BadRequest(
                f"request of {CMD_PREFIX_LEN + len(payload)} bytes exceeds the display's "
                f"{self.rx_buffer}-byte receive buffer"
            )
        return payload

    def build(self, cmd_group: int, cmd: int, data: bytes = b"") -> bytes:
        """The exact frame this driver puts on the wire for a command."""
        return build_frame(
            cmd_group, cmd, data, dst=self.address, src=self.src_address,
            device_type=self.device_type,
        )

    async def _show(self, lines: Sequence[str], blink: int = 0) -> int:
        await self._stop_blinking()
        async with self._text_lock:
            n = await self._send_lines(lines)
            if blink:
                self._blinker = asyncio.create_task(self._blink(list(lines), blink),
                                                    name=f"blink display {self.address}")
            return n

    async def _send_lines(self, lines: Sequence[str], *, dark: bool = False) -> int:
        """Show ``lines``; ``dark``: the same area with every row empty (a blink's dark phase)."""
        payload = self.show_payload([""] * len(lines) if dark else lines)
        n = len(self.build(*CMD_DYNAMIC_AREA, payload))
        if dark:
            self._left_dark = True  # from the moment it may have gone out
        await self._request(*CMD_DYNAMIC_AREA, payload)
        if not dark:
            self._left_dark = False
            self._last_lines = list(lines)
        return n

    async def _blink(self, lines: list[str], times: int) -> None:
        """Dark, then lit, ``times`` times (-1: until cancelled), ending lit. A failure ends the
        blink; if it left the bar dark, the next probe lights it (``_left_dark``)."""
        done = 0
        try:
            while times < 0 or done < times:
                for dark in (True, False):
                    await asyncio.sleep(self.blink_period)
                    async with self._text_lock:
                        await self._send_lines(lines, dark=dark)
                done += 1
        except HallctlError as exc:  # the worker's next probe or command finds out what is wrong
            log.debug("display %s: blink stopped: %s", self.address, exc.code)
        except Exception:
            log.exception("display %s: blink failed", self.address)

    async def _stop_blinking(self) -> None:
        task, self._blinker = self._blinker, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # its frame in flight finishes; no stale frame follows

    def _accept(self, reply: Frame, request: tuple[int, int]) -> bool:
        if reply.dst != self.src_address:
            return False  # our own echo on a half-duplex adapter, or another host's traffic
        if reply.src not in (self.address, ADDR_BROADCAST_REPLY):
            return False
        return reply.command in (CMD_ACK, CMD_NACK, request)

    def _reply_reader(self, request: tuple[int, int]) -> Callable[[bytes], Frame | None]:
        """Feeds arriving bytes to a fresh FrameReader; returns the first reply meant for us,
        raises FrameError for a corrupt one. Only CRC-checked replies are trusted (we send CRC;
        one flipped bit could otherwise turn the check off, see frame.CRC_ONLY)."""
        reader = FrameReader(check_modes=CRC_ONLY)

        def read_reply(chunk: bytes) -> Frame | None:
            for item in reader.feed(chunk):
                if isinstance(item, FrameError):
                    raise item
                if self._accept(item, request):
                    return item
            return None  # nothing yet, or traffic for another host: keep reading

        return read_reply

    async def _request(self, cmd_group: int, cmd: int, data: bytes = b"") -> Frame:
        """Send one command and return the reply; NACK -> NackError (DeviceError)."""
        if not self._started:
            raise DeviceOffline(f"display {self.address} on {self.port} is not started")
        frame = self.build(cmd_group, cmd, data)
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                reply = await self._transport.transact(
                    frame, self._reply_reader((cmd_group, cmd)), timeout=self.reply_timeout
                )
            except FrameError:
                if attempt + 1 < attempts:
                    continue  # line noise on the reply: ask again
                raise
            assert reply is not None
            if reply.is_nack or reply.error != 0:
                if reply.error == ERR_CHECKSUM and attempt + 1 < attempts:
                    continue  # our request was garbled on the line: resend
                raise NackError(reply.error, request=(cmd_group, cmd))
            return reply
        raise AssertionError("unreachable")  # pragma: no cover
