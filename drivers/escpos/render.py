"""Drawing a ticket as a 1-bit image, dot for dot: the raster path's source and the emulator's PNG.

Both sides share it on purpose: the raster path draws a document here and sends the pixels, the
emulator draws here what it decoded from native commands, so a native ticket and a raster ticket
of the same document look alike and either can be read by a person or a QR decoder.

Pillow is imported only by the functions that draw (slow to import on a Pi; a printer on the
native path never needs it). Text is drawn on a mode "1" image, which Pillow renders without
anti-aliasing: the same input gives the same dots, which is what the golden files rely on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageFont

#: a CJK TrueType font every Debian system can have (fonts-wqy-zenhei); a profile or a device
#: option may name another. Face 1 of the collection is Zen Hei Mono: Latin half width (12 dots
#: at 24), Chinese full width (24), the cells of a printer's Font A and Chinese font.
DEFAULT_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
DEFAULT_FONT_INDEX = 1
#: character height in dots at size 1: ESC/POS Font A is 12x24, Chinese characters 24x24
CHAR_DOTS = 24
#: quiet zone around a QR symbol, in modules (ISO/IEC 18004)
QR_QUIET = 4
#: QR error correction levels by the letter ESC/POS uses (GS ( k fn 69: 48 + index)
QR_LEVELS = "LMQH"


@functools.lru_cache(maxsize=64)
def font(path: str, px: int, index: int = 0) -> "ImageFont.FreeTypeFont":
    from PIL import ImageFont

    return ImageFont.truetype(path, px, index=index)


def qr_modules(data: bytes, level: str = "M") -> list[list[bool]]:
    """The QR symbol for ``data`` (byte mode), without its quiet zone: True = dark."""
    import qrcode
    from qrcode import constants

    levels = {"L": constants.ERROR_CORRECT_L, "M": constants.ERROR_CORRECT_M,
              "Q": constants.ERROR_CORRECT_Q, "H": constants.ERROR_CORRECT_H}
    code = qrcode.QRCode(error_correction=levels[level], border=0, box_size=1)
    code.add_data(data, optimize=0)
    code.make(fit=True)
    return code.get_matrix()


def qr_image(data: bytes, module: int, level: str = "M", quiet: int = QR_QUIET) -> "PILImage.Image":
    """The symbol as a mode "1" image, ``module`` dots per module, with ``quiet`` modules of
    white around it."""
    from PIL import Image

    matrix = qr_modules(data, level)
    n = len(matrix) + 2 * quiet
    img = Image.new("1", (n, n), 1)
    px = img.load()
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                px[x + quiet, y + quiet] = 0
    return img.resize((n * module, n * module), Image.NEAREST)


@dataclass(frozen=True)
class Run:
    """Text in one style, as a printer's line buffer holds it."""

    text: str
    size: int = 1
    bold: bool = False


class TicketCanvas:
    """A strip of paper ``width`` dots wide that grows as lines are printed on it."""

    def __init__(self, width: int, font_path: str = DEFAULT_FONT, *, font_index: int = DEFAULT_FONT_INDEX,
                 line_spacing: int = 30) -> None:
        self.width = width
        self.font_path, self.font_index = font_path, font_index
        self.line_spacing = line_spacing
        self._strips: list["PILImage.Image"] = []

    @property
    def height(self) -> int:
        return sum(s.height for s in self._strips)

    @property
    def empty(self) -> bool:
        return not self._strips

    def text(self, runs: Iterable[Run], align: str = "left") -> None:
        """Print runs of text as one or more lines (wrapped at the paper's width, as a printer
        wraps a full line buffer)."""
        for line in self._wrap([r for r in runs if r.text]):
            self._draw_line(line, align)

    def feed(self, dots: int) -> None:
        from PIL import Image

        if dots > 0:
            self._strips.append(Image.new("1", (self.width, dots), 1))

    def image(self, img: "PILImage.Image", align: str = "left") -> None:
        """Print a mode "1" image (cropped to the paper), placed by ``align``."""
        from PIL import Image

        img = img.crop((0, 0, min(img.width, self.width), img.height))
        strip = Image.new("1", (self.width, img.height), 1)
        strip.paste(img, (_x(align, self.width, img.width), 0))
        self._strips.append(strip)

    def rule(self, thickness: int = 2) -> None:
        """A horizontal line across the paper, centred in one line's height."""
        from PIL import Image, ImageDraw

        strip = Image.new("1", (self.width, self.line_spacing), 1)
        top = (self.line_spacing - thickness) // 2
        ImageDraw.Draw(strip).rectangle((0, top, self.width - 1, top + thickness - 1), fill=0)
        self._strips.append(strip)

    def result(self, margin: int = 0) -> "PILImage.Image":
        """The whole ticket; ``margin`` dots of white above and below (for viewers and decoders)."""
        from PIL import Image

        out = Image.new("1", (self.width, self.height + 2 * margin), 1)
        y = margin
        for s in self._strips:
            out.paste(s, (0, y))
            y += s.height
        return out

    # -- internals --------------------------------------------------------------------------

    def _advance(self, ch: str, size: int) -> int:
        return max(1, round(font(self.font_path, CHAR_DOTS * size, self.font_index).getlength(ch)))

    def _wrap(self, runs: list[Run]) -> list[list[tuple[Run, int]]]:
        """Lines of (run, width in dots), each fitting the paper."""
        lines: list[list[tuple[Run, int]]] = [[]]
        used = 0
        for run in runs:
            piece, piece_w = "", 0
            for ch in run.text:
                w = self._advance(ch, run.size)
                if used + piece_w + w > self.width and (used or piece):
                    if piece:
                        lines[-1].append((Run(piece, run.size, run.bold), piece_w))
                    lines.append([])
                    used, piece, piece_w = 0, "", 0
                piece += ch
                piece_w += w
            if piece:
                lines[-1].append((Run(piece, run.size, run.bold), piece_w))
                used += piece_w
        return [line for line in lines if line]

    def _draw_line(self, line: list[tuple[Run, int]], align: str) -> None:
        from PIL import Image, ImageDraw

        tallest = max(CHAR_DOTS * r.size for r, _ in line)
        height = max(self.line_spacing, tallest)
        strip = Image.new("1", (self.width, height), 1)
        draw = ImageDraw.Draw(strip)
        x = _x(align, self.width, sum(w for _, w in line))
        for run, w in line:
            px = CHAR_DOTS * run.size
            f = font(self.font_path, px, self.font_index)
            y = height - px  # characters of different sizes share the baseline, as on paper
            for dx in ((0, 1) if run.bold else (0,)):  # emphasized = struck twice, one dot apart
                draw.text((x + dx, y), run.text, font=f, fill=0)
            x += w
        self._strips.append(strip)


def _x(align: str, width: int, used: int) -> int:
    if align == "center":
        return max(0, (width - used) // 2)
    if align == "right":
        return max(0, width - used)
    return 0
