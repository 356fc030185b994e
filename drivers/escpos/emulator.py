"""An honest ESC/POS ticket printer, on a pty (serial) and on TCP (port 9100 style), for tests and
the demo. No production module imports it.

:class:`PrinterMachine` is the printer without I/O: it decodes what it receives
(:mod:`.decoder`), answers ``DLE EOT n`` at once from its state even mid-job, queues everything
else and prints it while it can (online, paper in, cover shut, cutter fine), answers ``GS r``
only when it gets there (so never while stopped for paper end), and draws each ticket
(:mod:`.render`): text in the CJK font at the decoded sizes, ``GS v 0`` bands blitted, ``GS ( k``
QR codes as real symbols an independent decoder can read. A ticket ends at a cut, at an
``ESC @`` after something was printed, or when its job ends (the link closes).
Each :class:`Ticket` keeps its PNG image and the raw bytes the printer received for it (.bin).

Faults (:class:`Faults`, changed with ``set(...)``): paper near end, paper out, cover open,
offline, cutter jam (cleared by ``DLE ENQ``), print head hot, garbage replies, silence, paper
running out after N bytes (mid-job) and the link dropping after N bytes (unplug mid-job)::

    with PtyPrinter.for_profile(load_profiles().get("hprt-tp809")) as emu:   # emu.port
        ...
        emu.set(paper_out=True)
        emu.tickets[-1].save(out_dir)   # ticket-0001.png, ticket-0001.bin

    with TcpPrinter(dots_per_line=384, chinese=True) as emu:                # emu.host, emu.port
        ...
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hallctl_drivers.escpos.decoder import REALTIME, Decoder, Op
from hallctl_drivers.escpos.render import CHAR_DOTS, DEFAULT_FONT, DEFAULT_FONT_INDEX, QR_LEVELS, Run, TicketCanvas, qr_image
from hallctl_drivers.escpos.status import PrinterStatus, gs_r_reply
from hallctl_drivers.transports.pty import PtyDevice

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from hallctl.profiles import Profile

#: what a printer under the "garbage" fault sends instead of a status byte
GARBAGE = b"\xa5\x5a\xff"
#: bytes held while the printer cannot print (its receive buffer); beyond this they are lost
RX_BUFFER = 1 << 20
DLE, EOT, ENQ = 0x10, 0x04, 0x05
_ALIGN = ("left", "center", "right")


@dataclass
class Faults:
    paper_near_end: bool = False
    paper_out: bool = False
    cover_open: bool = False
    #: offline for another reason (the printer's own error state, an operator switch)
    offline: bool = False
    #: the cutter is blocked: every cut fails while set, and the error it latches is cleared by
    #: DLE ENQ once this is False again (a technician freed the blade)
    cutter_jam: bool = False
    #: an auto-recoverable error (print head too hot or lifted): printing waits
    head_hot: bool = False
    #: status and GS r replies are noise
    garbage: bool = False
    #: the printer answers nothing at all
    silent: bool = False
    #: the paper runs out once this many more bytes of ticket data have been printed
    paper_out_after_bytes: int | None = None
    #: the link drops once this many more bytes have arrived (a pulled cable mid-job)
    unplug_after_bytes: int | None = None


@dataclass
class Ticket:
    """One printed ticket: what a person reads, the QR codes it carries, the bytes it came from."""

    index: int
    raw: bytes
    lines: list[str]
    qr: list[str]
    rasters: int
    #: "cut", "init" (ESC @ after printing) or "job end" (the link closed)
    ended: str
    image: "PILImage.Image"
    #: commands this printer could not take (a QR on a model without GS ( k, an oversized image)
    errors: list[str] = field(default_factory=list)
    #: ``time.monotonic()`` when the chunk holding the ticket's last byte arrived (for benchmarks)
    last_byte_at: float | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def cut(self) -> bool:
        return self.ended == "cut"

    def save(self, directory: str | Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write ``<stem>.png`` and ``<stem>.bin`` (default stem ``ticket-0001``)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        stem = stem or f"ticket-{self.index:04d}"
        png, raw = d / f"{stem}.png", d / f"{stem}.bin"
        self.image.save(png)
        raw.write_bytes(self.raw)
        return png, raw


class PrinterMachine:
    """The printer's logic; the pty and TCP fronts only move bytes (and hold a lock around it).

    ``boots_in_chinese_mode``: Chinese-market firmwares start in Chinese character mode; False
    (the default) makes a driver that forgets ``FS &`` print garbage here, as on an Epson.
    ``out_dir``: every finished ticket is saved there as it ends.
    """

    def __init__(self, *, dots_per_line: int = 576, chinese: bool = True, qr_native: bool = True,
                 cutter: bool = True, boots_in_chinese_mode: bool = False, font_path: str = DEFAULT_FONT,
                 font_index: int = DEFAULT_FONT_INDEX, line_spacing: int = 30,
                 out_dir: str | Path | None = None) -> None:
        self.dots_per_line, self.chinese, self.qr_native, self.cutter = dots_per_line, chinese, qr_native, cutter
        self.boots_in_chinese_mode = boots_in_chinese_mode
        self.font_path, self.font_index, self.default_spacing = font_path, font_index, line_spacing
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.faults = Faults()
        self.tickets: list[Ticket] = []
        #: every byte received, in order (bounded by nothing: a test's or a demo's lifetime)
        self.received = bytearray()
        #: real-time queries answered, e.g. [1, 2, 3, 4, 1, ...]
        self.status_queries: list[int] = []
        self.cutter_error = False
        self._decoder = Decoder()
        self._pending: deque[Op] = deque()
        self._pending_bytes = 0
        self._link_cut = False
        self._tail = b""
        #: ``time.monotonic()`` of the last chunk received
        self.received_at: float | None = None
        self._reset()
        self._new_ticket()

    @classmethod
    def for_profile(cls, profile: "Profile", **kw: Any) -> "PrinterMachine":
        """A printer like the model ``profile`` describes (width, Chinese font, QR, cutter)."""
        s = profile.settings
        base = dict(dots_per_line=s["dots_per_line"], chinese=profile.supports("chinese_native"),
                    qr_native=profile.supports("qr_native"), cutter=profile.supports("cutter"),
                    line_spacing=s["line_spacing_dots"])
        return cls(**{**base, **kw})

    # -- what a test or the demo does ---------------------------------------------------------

    @property
    def status(self) -> PrinterStatus:
        f = self.faults
        online = not (f.offline or f.paper_out or f.cover_open or self.cutter_error or f.head_hot)
        return PrinterStatus(online=online, cover_open=f.cover_open, paper_near_end=f.paper_near_end,
                             paper_end=f.paper_out, cutter_error=self.cutter_error, recoverable=f.head_hot)

    def set(self, **changes: Any) -> bytes:
        """Change faults (``set(paper_out=True)``); returns replies that were waiting (a GS r
        answered once the paper is back)."""
        self.faults = dataclasses.replace(self.faults, **changes)
        return self._quiet(self._run())

    def finish(self) -> None:
        """The job ended (its link closed): what was printed since the last cut is a ticket."""
        self._pending.extend(self._decoder.flush())
        self._run()
        self._flush_line()
        if self._ink:
            self._close("job end")

    def take_link_cut(self) -> bool:
        """True once after the ``unplug_after_bytes`` fault fired (the front drops the link)."""
        cut, self._link_cut = self._link_cut, False
        return cut

    # -- the wire -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host; returns what the printer sends back now."""
        budget = self.faults.unplug_after_bytes
        if budget is not None:
            data = data[:budget]
            left = budget - len(data)
            self.faults.unplug_after_bytes = left if left > 0 else None
            self._link_cut = left <= 0
        self.received += data
        self.received_at = time.monotonic()
        out = bytearray()
        # Real-time commands act on receipt, wherever they are, even inside image data (HPRT
        # TP809 manual p.30): found in the raw stream, in order with what precedes them.
        stream, known, fed = self._tail + data, len(self._tail), 0
        i = stream.find(DLE)
        while 0 <= i < len(stream) - 2:
            if i + 2 >= known and stream[i + 1] in (EOT, ENQ):  # not answered with the last chunk
                self._queue(data[fed:i + 3 - known])
                fed = i + 3 - known
                out += self._realtime(stream[i + 1], stream[i + 2])
            i = stream.find(DLE, i + 1)
        self._queue(data[fed:])
        self._tail = stream[-2:]
        out += self._run()
        return self._quiet(bytes(out))

    def _queue(self, data: bytes) -> None:
        """Decoded commands into the receive buffer (real-time ones were acted on already)."""
        for op in self._decoder.feed(data):
            if op.name not in REALTIME and self._pending_bytes + len(op.raw) <= RX_BUFFER:
                self._pending.append(op)
                self._pending_bytes += len(op.raw)

    def _quiet(self, reply: bytes) -> bytes:
        return b"" if self.faults.silent else reply

    def _realtime(self, command: int, n: int) -> bytes:
        """DLE EOT n: the status byte; DLE ENQ n: recover from a cutter error."""
        if command == EOT and n in (1, 2, 3, 4):
            self.status_queries.append(n)
            return GARBAGE if self.faults.garbage else self.status.encode()[n - 1:n]
        if command == ENQ and n in (1, 2):
            self.cutter_error = self.faults.cutter_jam  # a blade still blocked fails again at once
            if n == 2:  # recover after clearing the buffers: what waited is dropped
                self._pending.clear()
                self._pending_bytes = 0
                self._line.clear()
        return b""

    def _run(self) -> bytes:
        """Print what waits while the printer can; GS r replies as they are reached."""
        out = bytearray()
        while self._pending and self.status.online:
            op = self._pending.popleft()
            self._pending_bytes -= len(op.raw)
            if op.name == "gs_r":
                out += GARBAGE if self.faults.garbage else bytes([gs_r_reply(self.status) if op.arg in (1, 49) else 0])
                continue
            if op.name == "cut" and self.cutter and self.faults.cutter_jam:
                self.cutter_error = True  # stops here; DLE ENQ 1 retries the cut, DLE ENQ 2 drops it
                self._pending.appendleft(op)
                self._pending_bytes += len(op.raw)
                break
            self._raw += op.raw
            self._apply(op)
            self._use_paper(op)
        return bytes(out)

    def _use_paper(self, op: Op) -> None:
        left = self.faults.paper_out_after_bytes
        if left is not None and op.name in ("text", "raster", "qr", "lf"):
            left -= len(op.raw)
            self.faults.paper_out_after_bytes = left if left > 0 else None
            if left <= 0:
                self.faults.paper_out = True

    # -- printing -------------------------------------------------------------------------------

    def _reset(self) -> None:
        """ESC @ (and power on): default modes; the line buffer is cleared."""
        self._align, self._size, self._bold = 0, (1, 1), False
        self._chinese_mode = self.chinese and self.boots_in_chinese_mode
        self._spacing = self.default_spacing
        self._line: list[Run] = []
        self._line_align = 0
        self._qr: dict[str, Any] = {"module": 3, "level": "L", "data": b""}

    def _new_ticket(self) -> None:
        self._canvas = TicketCanvas(self.dots_per_line, self.font_path, font_index=self.font_index,
                                    line_spacing=self.default_spacing)
        self._raw = bytearray()
        self._lines: list[str] = []
        self._codes: list[str] = []
        self._errors: list[str] = []
        self._rasters = 0
        self._ink = False

    def _apply(self, op: Op) -> None:
        name, arg = op.name, op.arg
        if name == "text":
            if not self._line:
                self._line_align = self._align
            self._line.append(Run(self._decode(arg), self._size[1], self._bold))
        elif name == "lf":
            self._flush_line(blank=self._spacing)
        elif name == "init":
            had_ink = self._ink
            self._reset()
            if had_ink:
                self._close("init")
        elif name == "align":
            self._align = arg
        elif name == "bold":
            self._bold = arg
        elif name == "size":
            self._size = arg
        elif name == "mode":  # ESC ! n: bit 3 emphasized, bit 4 double height, bit 5 double width
            self._bold, self._size = bool(arg & 0x08), (2 if arg & 0x20 else 1, 2 if arg & 0x10 else 1)
        elif name == "chinese":
            self._chinese_mode = self.chinese and arg
        elif name == "line_spacing":
            self._spacing = self.default_spacing if arg is None else arg
        elif name == "feed_lines":
            self._flush_line()
            self._feed(arg * self._spacing)
        elif name == "feed_dots":
            self._flush_line()
            self._feed(arg)
        elif name == "raster":
            self._flush_line()
            self._raster(*arg)
        elif name == "qr":
            self._qr_function(*arg)
        elif name == "cut":
            self._flush_line()
            if self.cutter:
                self._close("cut")
        elif name == "error":
            self._errors.append(str(arg))

    def _decode(self, data: bytes) -> str:
        # in Chinese mode bytes >= 0x81 start GB codes; otherwise the code page (PC437) applies
        return data.decode("gb18030" if self._chinese_mode else "cp437", errors="replace")

    def _flush_line(self, blank: int = 0) -> None:
        """Print the line buffer (LF on an empty buffer feeds ``blank`` dots)."""
        if self._line:
            self._canvas.text(self._line, _ALIGN[self._line_align])
            self._lines.append("".join(r.text for r in self._line))
            self._line = []
            self._ink = True
        elif blank:
            self._feed(blank)

    def _feed(self, dots: int) -> None:
        if dots > 0 and self._ink:  # paper fed before anything printed is not part of a ticket's image
            self._canvas.feed(dots)

    def _raster(self, m: int, width_bytes: int, height: int, data: bytes) -> None:
        from PIL import Image, ImageOps

        if width_bytes == 0 or height == 0:
            return
        bits = Image.frombytes("1", (width_bytes * 8, height), data)  # 1 = dot printed
        img = ImageOps.invert(bits.convert("L")).convert("1")
        scale_x, scale_y = (2 if m & 1 else 1), (2 if m & 2 else 1)
        if (scale_x, scale_y) != (1, 1):
            img = img.resize((img.width * scale_x, img.height * scale_y), Image.NEAREST)
        if img.width > self.dots_per_line:
            self._errors.append(f"GS v 0 image {img.width} dots wide, wider than the paper ({self.dots_per_line})")
        self._canvas.image(img, _ALIGN[self._align])
        self._rasters += 1
        self._ink = True

    def _qr_function(self, fn: int | None, params: bytes) -> None:
        """GS ( k, cn 49 (QR): 65 model, 67 module size, 69 error correction, 80 store, 81 print."""
        if not self.qr_native:
            self._errors.append("GS ( k (QR) ignored: this model has no QR command")
            return
        if fn == 0x43 and params and 1 <= params[0] <= 16:
            self._qr["module"] = params[0]
        elif fn == 0x45 and params and 48 <= params[0] <= 51:
            self._qr["level"] = QR_LEVELS[params[0] - 48]
        elif fn == 0x50 and params[:1] == b"0":
            self._qr["data"] = params[1:]
        elif fn == 0x51:
            self._flush_line()
            data = self._qr["data"]
            if not data:
                return
            try:
                img = qr_image(data, self._qr["module"], self._qr["level"], quiet=0)
            except Exception as exc:  # noqa: BLE001 - data no QR can hold: a real printer prints nothing
                self._errors.append(f"QR not printed: {exc}")
                return
            self._canvas.image(img, _ALIGN[self._align])
            self._codes.append(data.decode("utf-8", errors="replace"))
            self._ink = True

    def _close(self, ended: str) -> None:
        ticket = Ticket(index=len(self.tickets) + 1, raw=bytes(self._raw), lines=self._lines, qr=self._codes,
                        rasters=self._rasters, ended=ended, image=self._canvas.result(margin=CHAR_DOTS),
                        errors=self._errors, last_byte_at=self.received_at)
        self.tickets.append(ticket)
        if self.out_dir is not None:
            ticket.save(self.out_dir)
        self._new_ticket()


class _Front:
    """What the pty and TCP fronts share: a lock around the machine, faults, tickets."""

    printer: PrinterMachine
    cond: threading.Condition

    @property
    def tickets(self) -> list[Ticket]:
        return self.printer.tickets

    @property
    def faults(self) -> Faults:
        return self.printer.faults

    def set(self, **changes: Any) -> None:
        """Change faults, e.g. ``emu.set(paper_out=True)``; waiting replies go out at once."""
        with self.cond:
            reply = self.printer.set(**changes)
            self.cond.notify_all()
        self.send(reply)

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def _received(self, chunk: bytes) -> tuple[bytes, bool]:
        with self.cond:
            reply = self.printer.receive(chunk)
            cut = self.printer.take_link_cut()
            if cut:
                self.printer.finish()
            self.cond.notify_all()
        return reply, cut


class PtyPrinter(PtyDevice, _Front):
    """The printer on a pseudo-terminal: the driver opens :attr:`port` like /dev/ttyUSB0.

    A pty has no baud rate: ``baudrate`` (e.g. 115200) paces the reading like a serial line
    (10 bits a byte, 8N1): each chunk is taken only once its bytes could have crossed the wire,
    so the host's writes block as on a real port. Off (None) by default. While a chunk waits,
    the reader holds :attr:`cond` (``set()`` from a test waits for it).
    """

    def __init__(self, printer: PrinterMachine | None = None, *, name: str | None = None,
                 baudrate: int | None = None, **machine: Any) -> None:
        PtyDevice.__init__(self, name=name or "escpos-printer")
        self.printer = printer or PrinterMachine(**machine)
        self.baudrate = baudrate
        self._wire_free = 0.0

    @classmethod
    def for_profile(cls, profile: "Profile", *, baudrate: int | None = None, **machine: Any) -> "PtyPrinter":
        return cls(PrinterMachine.for_profile(profile, **machine), baudrate=baudrate)

    def handle(self, chunk: bytes) -> bytes | None:
        if self.baudrate:
            self._wire_free = max(time.monotonic(), self._wire_free) + len(chunk) * 10 / self.baudrate
            delay = self._wire_free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        reply, cut = self._received(chunk)
        if cut:
            self.unplug()
            return None
        return reply or None


class TcpPrinter(_Front):
    """The printer on a TCP port of 127.0.0.1 (``port=0``: any free one), one connection at a
    time like a network printer's port 9100; :meth:`unplug` drops the link and refuses new ones
    until :meth:`replug`."""

    poll_interval = 0.05

    def __init__(self, printer: PrinterMachine | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **machine: Any) -> None:
        self.printer = printer or PrinterMachine(**machine)
        self.cond = threading.Condition(threading.RLock())
        self.errors: list[BaseException] = []
        self.unplugged = False
        self._server = socket.create_server((host, port))
        self._server.settimeout(self.poll_interval)
        self.host, self.port = self._server.getsockname()[:2]
        self._conn: socket.socket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"escpos-tcp-{self.port}", daemon=True)

    @classmethod
    def for_profile(cls, profile: "Profile", **machine: Any) -> "TcpPrinter":
        return cls(PrinterMachine.for_profile(profile, **machine))

    def start(self) -> "TcpPrinter":
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._drop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._server.close()

    def __enter__(self) -> "TcpPrinter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unplug(self) -> None:
        self.unplugged = True
        self._drop()

    def replug(self) -> None:
        self.unplugged = False

    def send(self, data: bytes) -> None:
        conn = self._conn
        if data and conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if self.unplugged:
                conn.close()
                continue
            conn.settimeout(self.poll_interval)
            self._conn = conn
            try:
                self._serve_one(conn)
            except Exception as exc:  # noqa: BLE001 - keep serving; a test sees it in .errors
                self.errors.append(exc)
            with self.cond:
                self.printer.finish()  # the job ends with its connection
                self.cond.notify_all()
            if self._conn is conn:
                self._drop()

    def _serve_one(self, conn: socket.socket) -> None:
        while not self._stop.is_set() and self._conn is conn:
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not chunk:
                return
            reply, cut = self._received(chunk)
            if cut:
                self._drop()
                return
            self.send(reply)
