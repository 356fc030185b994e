"""A ticket document to the ESC/POS bytes one model prints it with. Bytes only, no I/O.

Two paths (shared/reference/protocols.md §2.4):

* **native**: the printer's own fonts. ``ESC @`` (reset), ``FS &`` (Chinese mode, on models with
  a Chinese font) and GB18030 text; ``GS !`` sizes, ``ESC a`` alignment, ``ESC E`` bold; QR codes
  with ``GS ( k`` on models that have it, else drawn here and sent as a ``GS v 0`` image.
* **raster**: the whole ticket drawn with Pillow and a CJK TrueType font
  (:mod:`hallctl_drivers.escpos.render`) and sent as 1-bit ``GS v 0`` bands of the model's
  dots-per-line width: independent of the font ROM, at the cost of bandwidth.

``auto`` takes the native path when the model can print every character natively and the raster
path otherwise (an international Epson has no Chinese font; a rare character outside GB18030's
2-byte area is missing from most Chinese font ROMs), so Chinese is never printed garbled.

Command constants come from python-escpos (``escpos.constants``, and ``escpos.image`` turns an
image into raster rows): that part of it is plain data and cheap to import. Its printer classes
are not used: they load the capabilities database at import and guess status (see
:mod:`.status`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from escpos.constants import ESC, FS, GS, HW_INIT, PAPER_FULL_CUT, PAPER_PART_CUT, TXT_SIZE

from hallctl.errors import BadRequest
from hallctl_drivers.escpos.document import Block, Feed, Qr, Rule, Text
from hallctl_drivers.escpos.render import CHAR_DOTS, DEFAULT_FONT, DEFAULT_FONT_INDEX, QR_LEVELS, QR_QUIET, Run, TicketCanvas, qr_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

PATHS = ("native", "raster")
CHINESE_MODE_ON = FS + b"&"  # FS &: bytes >= 0x81 start 2-byte GB codes (§2.4)
ALIGN = {"left": ESC + b"a\x00", "center": ESC + b"a\x01", "right": ESC + b"a\x02"}
BOLD = {False: ESC + b"E\x00", True: ESC + b"E\x01"}
#: GS V m n, function B: feed to the cutter, then cut (the printer knows the distance)
FEED_AND_FULL_CUT, FEED_AND_PARTIAL_CUT = GS + b"VA\x00", GS + b"VB\x00"
GS_V0 = GS + b"v0"
#: columns of ESC/POS Font A (12 dots wide) per dot
FONT_A_DOTS = 12


@dataclass(frozen=True)
class PrinterModel:
    """What the codec needs to know of a model (from its profile's settings and features)."""

    dots_per_line: int = 576
    chinese_native: bool = False
    qr_native: bool = False
    cutter: bool = False
    #: feed_partial / feed_full: GS V 66/65 0; partial / full: ESC d cut_feed_lines, GS V 1/0
    cut: str = "feed_partial"
    cut_feed_lines: int = 0
    #: lines fed after a ticket on a model without a cutter, so it clears the tear bar
    tear_feed_lines: int = 4
    #: whether the Chinese font ROM has GB18030's 4-byte area (most have only the 2-byte one)
    gb18030_four_byte: bool = False
    line_spacing_dots: int = 30
    qr_module: int = 6
    qr_level: str = "M"
    raster_band_rows: int = 256
    font_path: str = DEFAULT_FONT
    font_index: int = DEFAULT_FONT_INDEX

    @classmethod
    def from_settings(cls, settings: Mapping[str, object], supports: frozenset[str], **over: object) -> "PrinterModel":
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in settings.items() if k in names}
        values.update(chinese_native="chinese_native" in supports, qr_native="qr_native" in supports,
                      cutter="cutter" in supports)
        values.update(over)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def columns(self) -> int:
        return self.dots_per_line // FONT_A_DOTS


@dataclass(frozen=True)
class Job:
    """One ticket's bytes, the path it took and whether it ends with a cut."""

    data: bytes
    path: str
    cut: bool


# -- choosing the path ---------------------------------------------------------------------------


def native_problem(blocks: Sequence[Block], model: PrinterModel) -> str | None:
    """Why ``model`` cannot print ``blocks`` with its own fonts; None when it can."""
    for i, b in enumerate(blocks):
        if not isinstance(b, Text):
            continue
        for ch in b.text.replace("\n", ""):
            if not model.chinese_native:
                if not 0x20 <= ord(ch) < 0x7F:
                    return f"blocks[{i}]: {ch!r} (U+{ord(ch):04X}) is not in the printer's font (it has no Chinese font)"
                continue
            try:
                code = ch.encode("gb18030")
            except UnicodeEncodeError:
                return f"blocks[{i}]: {ch!r} (U+{ord(ch):04X}) has no GB18030 code"
            if len(code) > 2 and not model.gb18030_four_byte:
                return f"blocks[{i}]: {ch!r} (U+{ord(ch):04X}) needs a 4-byte GB18030 code, which the printer's font lacks"
    return None


def encode_ticket(blocks: Sequence[Block], model: PrinterModel, path: str = "auto", *, cut: bool = True) -> Job:
    """The bytes of one ticket. ``path`` "native" on blocks the model cannot print natively is
    a :class:`BadRequest` naming the character; "auto" falls back to raster."""
    if path not in ("auto", *PATHS):
        raise BadRequest(f"path must be auto, native or raster, got {path!r}")
    if path != "raster":
        problem = native_problem(blocks, model)
        if problem is not None and path == "native":
            raise BadRequest(f"cannot print natively: {problem}")
        path = "raster" if problem else "native"
    body = encode_native(blocks, model) if path == "native" else encode_raster(blocks, model)
    cuts = cut and model.cutter
    return Job(body + ending(model, cut=cuts), path, cuts)


# -- the native path -----------------------------------------------------------------------------


def size_command(size: int) -> bytes:
    """``GS ! n``: width and height multiplier ``size`` (1..8) in both nibbles."""
    return TXT_SIZE + bytes([(size - 1) << 4 | (size - 1)])


def feed_lines(n: int) -> bytes:
    """``ESC d n``: print the line buffer and feed ``n`` lines."""
    return ESC + b"d" + bytes([n])


def qr_commands(data: bytes, module: int, level: str = "M") -> bytes:
    """``GS ( k`` (cn 49): model 2, module size, error correction, store, print (§2.6)."""
    if not 1 <= len(data) <= 7089:
        raise BadRequest(f"QR data must be 1..7089 bytes, got {len(data)}")

    def fn(f: int, params: bytes) -> bytes:
        n = len(params) + 2
        return GS + b"(k" + bytes([n & 0xFF, n >> 8, 0x31, f]) + params

    return (fn(0x41, b"\x32\x00") + fn(0x43, bytes([module])) + fn(0x45, bytes([0x30 + QR_LEVELS.index(level)]))
            + fn(0x50, b"\x30" + data) + fn(0x51, b"\x30"))


def encode_native(blocks: Sequence[Block], model: PrinterModel) -> bytes:
    out = bytearray(HW_INIT)
    if model.chinese_native:
        out += CHINESE_MODE_ON
    style = {"align": "left", "size": 1, "bold": False}  # what ESC @ leaves

    def set_style(align: str, size: int, bold: bool) -> None:
        if align != style["align"]:
            out.extend(ALIGN[align])
        if size != style["size"]:
            out.extend(size_command(size))
        if bold != style["bold"]:
            out.extend(BOLD[bold])
        style.update(align=align, size=size, bold=bold)

    encoding = "gb18030" if model.chinese_native else "ascii"
    for b in blocks:
        if isinstance(b, Text):
            set_style(b.align, b.size, b.bold)
            for line in b.lines:
                out += line.encode(encoding) + b"\n"
        elif isinstance(b, Qr):
            module = b.module or model.qr_module
            data = b.data.encode("utf-8")
            if model.qr_native:
                set_style(b.align, 1, False)
                # the printer draws the bare symbol: feed its quiet zone above and below
                quiet = feed_lines(math.ceil(QR_QUIET * module / model.line_spacing_dots))
                out += quiet + qr_commands(data, module, model.qr_level) + quiet
            else:
                set_style("left", 1, False)
                out += raster_commands(_line_image(model, qr_image(data, module, model.qr_level), b.align),
                                       model.raster_band_rows)
        elif isinstance(b, Feed):
            out += feed_lines(b.lines)
        elif isinstance(b, Rule):
            set_style("left", 1, False)
            out += b"-" * model.columns + b"\n"
    return bytes(out)


def ending(model: PrinterModel, *, cut: bool) -> bytes:
    """After the ticket: the cut, or a feed past the tear bar and ``ESC @`` (the job's end, and
    a printer left in its default modes)."""
    if not cut:
        return feed_lines(model.tear_feed_lines) + HW_INIT
    if model.cut == "feed_partial":
        return FEED_AND_PARTIAL_CUT
    if model.cut == "feed_full":
        return FEED_AND_FULL_CUT
    return feed_lines(model.cut_feed_lines) + (PAPER_PART_CUT if model.cut == "partial" else PAPER_FULL_CUT)


# -- the raster path -----------------------------------------------------------------------------


#: the longest ticket the raster path draws (about a metre of paper): a bound on memory
MAX_TICKET_DOTS = 8000


def render_ticket(blocks: Sequence[Block], model: PrinterModel) -> "PILImage.Image":
    """The ticket as the raster path prints it: a mode "1" image ``dots_per_line`` wide."""
    canvas = _canvas(model)
    for i, b in enumerate(blocks):
        if canvas.height > MAX_TICKET_DOTS:
            raise BadRequest(f"blocks[{i}]: the ticket is longer than {MAX_TICKET_DOTS} dots; print less")
        if isinstance(b, Text):
            for line in b.lines:
                if line:
                    canvas.text([Run(line, b.size, b.bold)], b.align)
                else:
                    canvas.feed(max(model.line_spacing_dots, CHAR_DOTS * b.size))
        elif isinstance(b, Qr):
            canvas.image(qr_image(b.data.encode("utf-8"), b.module or model.qr_module, model.qr_level), b.align)
        elif isinstance(b, Feed):
            canvas.feed(b.lines * model.line_spacing_dots)
        elif isinstance(b, Rule):
            canvas.rule()
    return canvas.result()


def encode_raster(blocks: Sequence[Block], model: PrinterModel) -> bytes:
    return HW_INIT + raster_commands(render_ticket(blocks, model), model.raster_band_rows)


def raster_commands(img: "PILImage.Image", band_rows: int) -> bytes:
    """``GS v 0`` (normal density) commands for ``img``, ``band_rows`` rows per command: a
    printer with a small receive buffer takes a band at a time."""
    from escpos.image import EscposImage  # black -> 1 bits, rows padded to whole bytes

    out = bytearray()
    width_bytes = (img.width + 7) // 8
    for top in range(0, img.height, band_rows):
        band = img.crop((0, top, img.width, min(top + band_rows, img.height)))
        out += GS_V0 + b"\x00" + width_bytes.to_bytes(2, "little") + band.height.to_bytes(2, "little")
        out += EscposImage(band).to_raster_format()
    return bytes(out)


def _line_image(model: PrinterModel, img: "PILImage.Image", align: str) -> "PILImage.Image":
    """``img`` placed on a full-width line by us: alignment does not depend on whether the
    printer applies ESC a to images."""
    canvas = _canvas(model)
    canvas.image(img, align)
    return canvas.result()


def _canvas(model: PrinterModel) -> TicketCanvas:
    return TicketCanvas(model.dots_per_line, model.font_path, font_index=model.font_index,
                        line_spacing=model.line_spacing_dots)
