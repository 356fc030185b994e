"""The ESC/POS ticket printer driver: print-confirmed tickets over serial, TCP 9100 or USB.

A ticket counts as printed only when all of these held, in one transaction on the wire:

1. the real-time status before (``DLE EOT 1..4``) says the printer can print; else nothing is
   sent and the print is refused with the reason ("paper out", "cover open", ...);
2. every byte of the job was written (each write bounded by ``write_timeout_s``);
3. the printer answered ``GS r 1``, which it does only after processing everything before it
   and never while stopped for paper end (skipped on a model whose profile says it cannot);
4. the real-time status after is still fine.

Anything else raises :class:`DeviceError`, :class:`DeviceTimeout` or :class:`DeviceOffline` whose
``detail`` says the ``stage`` it failed at (``before``: nothing was sent; ``sending``,
``printing``, ``after``: part or all of it may be on paper) and the bytes ``sent``. A status
query that gets no reply, or a reply that is not a status byte, is an error: never "paper OK".
Every read has a timeout; rendering runs in a thread, so the event loop never waits on Pillow.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
from typing import Any, ClassVar, Mapping, NoReturn

from hallctl.errors import BadRequest, ConfigError, DeviceError, DeviceOffline, DeviceTimeout, HallctlError, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.escpos.codec import MAX_TICKET_DOTS, Job, PrinterModel, encode_ticket
from hallctl_drivers.escpos.document import Block, parse_blocks
from hallctl_drivers.escpos.schemas import FEATURES, OPTIONS_SCHEMA, OVERRIDES, SETTINGS_SCHEMA
from hallctl_drivers.escpos.status import (
    GS_R_MASK, GS_R_PAPER, QUERIES, REPLY_FIXED, REPLY_MASK, PrinterStatus, StatusReplyError, check_reply, gs_r_paper,
    query, recover,
)
from hallctl_drivers.transports import Channel, Transport

#: bytes per write call: a cancelled or timed-out job stops between two of them
_CHUNK = 4096


class EscPosPrinter(Driver):
    """An ESC/POS ticket printer (Epson TM-T88 class, Chinese kiosk printers, 58 mm units).

    Options name one link: ``port`` (serial, e.g. ``/dev/serial/by-id/usb-...``), ``host`` (+
    ``tcp_port``, default 9100) or ``usb`` (``"0416:5011"``). Tests pass ``transport``.
    """

    kind: ClassVar[str] = "ticket_printer"
    features = FEATURES
    #: paper out, cover open: the kiosk's screen and the technicians know within a second
    probe_interval_s = 0.5
    settings_schema = SETTINGS_SCHEMA
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None, transport: Transport | None = None) -> None:
        super().__init__(settings, options, features=features)
        o = self.options
        s = {**self.settings, **{k: o[k] for k in OVERRIDES if k in o}}
        links = [k for k in ("port", "host", "usb") if k in o]
        if transport is None and len(links) != 1:
            raise ConfigError("give exactly one of port (serial), host (TCP) or usb"
                              + (f", not {' and '.join(links)}" if links else ""), key="options")
        if not os.path.isfile(s["font_path"]):  # the raster path needs it; refused at start, not mid-ticket
            raise ConfigError(f"font file {s['font_path']} not found (Debian: apt install fonts-wqy-zenhei)",
                              key="options.font_path" if "font_path" in o else "settings.font_path")
        self.model = PrinterModel.from_settings(s, self.supported)
        self.model_name: str = s["model"]
        self.status_timeout: float = float(s["status_timeout_s"])
        self.print_timeout: float = float(s["print_timeout_s"])
        self.write_timeout: float = float(s["write_timeout_s"])
        self.confirm_with_gs_r: bool = s["confirm_with_gs_r"]
        self.default_path: str = o["path"]
        self._transport = transport if transport is not None else _transport_for(o, s)
        self._started = False
        self._reported: tuple[str, str] | None = None

    @property
    def link(self) -> str:
        return self._transport.name

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the link and ask DLE EOT 1: a valid status byte is what an ESC/POS printer says."""
        if self._started:
            return
        await self._transport.open()
        self._started = True
        try:
            async with self._transport.transaction() as wire:
                await self._ask(wire, 1)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._transport.close()

    async def probe(self) -> ProbeResult:
        """Health from the real-time status; a cutter error gets one DLE ENQ 2 first (a jam the
        technician cleared needs it before the printer prints again)."""
        detail: dict[str, Any] = {"transport": self.link}
        if not self._started:
            return ProbeResult(Health.FAULT, "not started", detail)
        try:
            async with self._transport.transaction() as wire:
                status = await self._poll(wire, report=False)
                if status.cutter_error and not (status.cover_open or status.unrecoverable):
                    await self._write(wire, recover(clear_buffer=True))
                    status = await self._poll(wire, report=False)
                    detail["recovered"] = status.ready
        except HallctlError as exc:
            result = ProbeResult(Health.FAULT, exc.message, {**detail, "code": exc.code})
            self._report(result, None)
            return result
        result = _health(status, detail)
        self._report(result, status)
        return result

    def time_allowed(self, action: str, args: Mapping[str, Any]) -> float | None:
        """A ticket on a serial line takes its wire time: the longest one this model prints (a
        raster of MAX_TICKET_DOTS rows) at the line's speed, plus the status queries and GS r."""
        baud = getattr(self._transport, "baudrate", None)
        if action not in ("print", "test_ticket") or not baud:
            return None
        longest = self.model.dots_per_line // 8 * MAX_TICKET_DOTS + 1024
        return longest * 10 / baud + self.print_timeout + 4 * self.status_timeout + 2.0

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"ticket printer does not implement {action!r} (it has {', '.join(self.actions)})")
        if not isinstance(args, Mapping):
            raise BadRequest("arguments must be an object")
        if action == "print":
            return await self.print_ticket(parse_blocks(args.get("blocks")), path=args.get("path", "auto"),
                                           cut=args.get("cut", True))
        if action == "status":
            return (await self.status()).to_dict()
        if action == "test_ticket":
            status = await self.status()
            blocks = parse_blocks(self.test_ticket_blocks(status, args.get("qr")))
            return await self.print_ticket(blocks, path=args.get("path", "auto"))
        async with self._require().transaction() as wire:  # recover
            await self._write(wire, recover(clear_buffer=args.get("clear_buffer", True)))
            status = await self._poll(wire)
        return {"status": status.to_dict(), "ready": status.ready}

    # -- the actions ------------------------------------------------------------------------

    async def status(self) -> PrinterStatus:
        async with self._require().transaction() as wire:
            return await self._poll(wire)

    async def print_ticket(self, blocks: list[Block], *, path: str = "auto", cut: bool = True) -> dict[str, Any]:
        """Print one ticket (see the module docstring for when it counts as printed)."""
        if path == "auto":
            path = self.default_path
        job = await asyncio.to_thread(encode_ticket, blocks, self.model, path, cut=cut)
        async with self._require().transaction() as wire:
            before = await self._staged(self._poll(wire), "before", job, sent=0)
            if not before.ready:
                self._fail(DeviceError, f"printer not ready: {', '.join(before.problems)}; nothing was sent",
                           "before", job, sent=0, status=before.to_dict())
            await self._send(wire, job)
            if self.confirm_with_gs_r:
                await self._drained(wire, job)
            after = await self._staged(self._poll(wire), "after", job)
        if not after.ready:
            self._fail(DeviceError, f"ticket not confirmed: {', '.join(after.problems)} after printing",
                       "after", job, status=after.to_dict())
        return {"confirmed": True, "bytes": len(job.data), "path": job.path, "cut": job.cut,
                "status": after.to_dict(), "warnings": after.warnings}

    def test_ticket_blocks(self, status: PrinterStatus, qr: str | None) -> list[dict[str, Any]]:
        """A technician's ticket: the model, what it can do, its status bits, a QR code."""
        flags = status.to_dict()
        bits = [f"{k}: {'yes' if flags[k] else 'no'}" for k in flags if k != "raw"]
        now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        return [
            {"text": "TEST TICKET 打印测试", "size": 2, "align": "center", "bold": True},
            {"rule": True},
            {"text": f"model: {self.model_name}"},
            {"text": f"link: {self.link}"},
            {"text": f"{self.model.dots_per_line} dots/line, features: {', '.join(sorted(self.supported)) or 'none'}"},
            {"text": f"status: {flags['raw']}"},
            {"text": "\n".join(bits)},
            {"text": "中文：请A012号到3号窗口办理"},
            {"text": now},
            {"qr": qr or f"hallctl test ticket {self.model_name} {now}"},
        ]

    # -- on the wire (inside one transaction) -----------------------------------------------

    async def _ask(self, wire: Channel, n: int) -> int:
        """Send DLE EOT ``n`` and return its one-byte reply, checked. Silence is DeviceTimeout,
        anything else StatusReplyError."""
        await wire.discard_input()  # a late reply to an earlier, timed-out query
        await self._write(wire, query(n))
        reply = await _first_chunk(wire, self.status_timeout)
        if not reply:
            raise DeviceTimeout(f"no status reply within {self.status_timeout:g} s (DLE EOT {n})", transport=self.link)
        if len(reply) != 1:
            raise StatusReplyError(f"garbled status reply to DLE EOT {n}: {len(reply)} bytes ({reply[:8].hex(' ')})",
                                   transport=self.link)
        return check_reply(n, reply[0])

    async def _poll(self, wire: Channel, *, report: bool = True) -> PrinterStatus:
        """DLE EOT 1..4, decoded; a change of health is reported (``status_changed``) either way."""
        try:
            status = PrinterStatus.decode(bytes([await self._ask(wire, n) for n in QUERIES]))
        except HallctlError as exc:
            if report:
                self._report(ProbeResult(Health.FAULT, exc.message), None)
            raise
        if report:
            self._report(_health(status, {}), status)
        return status

    async def _write(self, wire: Channel, data: bytes) -> None:
        try:
            async with asyncio.timeout(self.write_timeout):
                await wire.write(data)
        except TimeoutError:
            raise DeviceTimeout(f"the printer took no data for {self.write_timeout:g} s", transport=self.link) from None

    async def _send(self, wire: Channel, job: Job) -> None:
        for start in range(0, len(job.data), _CHUNK):
            await self._staged(self._write(wire, job.data[start:start + _CHUNK]), "sending", job, sent=start)

    async def _drained(self, wire: Channel, job: Job) -> None:
        """Wait for the GS r 1 reply (the printer has processed the ticket); on silence, say why."""
        try:
            paper = gs_r_paper(await self._gs_r_reply(wire))
        except DeviceTimeout:
            status = await self._staged(self._poll(wire), "printing", job)
            if not status.ready:
                self._fail(DeviceError, f"ticket not confirmed: {', '.join(status.problems)} while printing",
                           "printing", job, status=status.to_dict())
            self._fail(DeviceTimeout, f"ticket not confirmed: the printer did not report it printed within "
                                      f"{self.print_timeout:g} s", "printing", job, status=status.to_dict())
        except (DeviceError, DeviceOffline) as exc:
            self._fail(type(exc), f"ticket not confirmed: {exc.message}", "printing", job)
        if paper["paper_end"]:
            self._fail(DeviceError, "ticket not confirmed: paper out while printing", "printing", job)

    async def _gs_r_reply(self, wire: Channel) -> int:
        """Send GS r 1 and return its reply byte. Printers act on DLE EOT even inside image data
        (HPRT TP809 manual p.30), so a raster band may draw stray status bytes: those carry bit 4,
        a GS r reply never does, so they are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.print_timeout
        await self._write(wire, GS_R_PAPER)
        while (left := deadline - loop.time()) > 0:
            for b in await wire.read(left):
                if not b & GS_R_MASK:
                    return b
                if (b & REPLY_MASK) != REPLY_FIXED:
                    raise StatusReplyError(f"garbled reply to GS r 1: 0x{b:02x}", transport=self.link)
        raise DeviceTimeout(f"no reply to GS r 1 within {self.print_timeout:g} s", transport=self.link)

    async def _staged(self, step: Any, stage: str, job: Job, sent: int | None = None) -> Any:
        """Await ``step``; a device error gets the stage and the bytes sent in its detail."""
        try:
            return await step
        except (DeviceError, DeviceTimeout, DeviceOffline) as exc:
            if "stage" in exc.detail:
                raise
            message = (f"printer not ready: {exc.message}; nothing was sent" if stage == "before"
                       else f"ticket not confirmed: {exc.message}")
            self._fail(type(exc), message, stage, job, sent=len(job.data) if sent is None else sent)

    def _fail(self, cls: type[HallctlError], message: str, stage: str, job: Job, **detail: Any) -> NoReturn:
        detail.setdefault("sent", len(job.data))
        raise cls(message, stage=stage, transport=self.link, **detail)

    def _require(self) -> Transport:
        if not self._started:
            raise DeviceOffline(f"printer on {self.link} is not started", transport=self.link)
        return self._transport

    def _report(self, result: ProbeResult, status: PrinterStatus | None) -> None:
        """Emit ``status_changed`` when the health or its reason changed since last said."""
        key = (result.health.value, result.reason)
        if key != self._reported:
            self._reported = key
            self.emit("status_changed", {"health": result.health.value, "reason": result.reason,
                                         "status": status.to_dict() if status else None})


def _health(status: PrinterStatus, detail: dict[str, Any]) -> ProbeResult:
    detail = {**detail, "status": status.to_dict()}
    if status.problems:
        return ProbeResult(Health.FAULT, ", ".join(status.problems), detail)
    if status.warnings:
        return ProbeResult(Health.DEGRADED, ", ".join(status.warnings), detail)
    return ProbeResult(Health.OK, "ready", detail)


async def _first_chunk(wire: Channel, timeout: float) -> bytes:
    """What arrives first within ``timeout`` s, or b"" (a read may return early and empty)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        chunk = await wire.read(left)
        if chunk:
            return chunk
    return b""


def _transport_for(options: Mapping[str, Any], settings: Mapping[str, Any]) -> Transport:
    """The link the options name (exactly one, checked by the constructor)."""
    if "port" in options:
        from hallctl_drivers.transports.serial import SerialTransport

        return SerialTransport(options["port"], settings["baudrate"], write_timeout=settings["write_timeout_s"])
    if "host" in options:
        from hallctl_drivers.transports.tcp import TcpTransport

        return TcpTransport(options["host"], options["tcp_port"])
    from hallctl_drivers.transports.usb import UsbTransport

    vendor, product = (int(x, 16) for x in options["usb"].split(":"))
    return UsbTransport(vendor, product, serial_number=options.get("usb_serial"), write_timeout=settings["write_timeout_s"])
