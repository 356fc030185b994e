"""Drawing the call board: content (the ``show`` action's arguments) + layout -> a PIL image.

Pure: no I/O but reading the font, no clock. The driver calls it for every frame, tests call it
alone. What a board shows, top to bottom (TV styles):

* the title (the hall's name),
* a banner when the board cannot be trusted (central or the network gone), red across the board,
* the newest call as a sentence ("请A012号到5号窗口办理"), lit while it is new,
* the latest calls, newest first (number, window, a masked name when the hall sends one), the
  newest row lit; beside them (landscape) or below them (portrait) the waiting counts and
  predicted waits per section,
* the opening hours and a notice line, which scrolls when it is longer than the board is wide.

An LED matrix (``led``) shows the banner if any and then as many latest calls as fit, one per
row, in large digits. Text that does not fit its place is drawn smaller, down to a floor, and
then cut with "…": never drawn over its neighbour.

Pillow is imported by the functions that draw (slow to import on a Pi).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hallctl_drivers.board.layout import RGB, Layout

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageFont

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Notice:
    """Where the notice line is and how it is drawn: the driver scrolls it on a framebuffer, the
    web page with CSS (boxes in board pixels, x, y, width, height)."""

    text: str
    box: tuple[int, int, int, int]
    px: int
    text_width: int
    colour: RGB
    ground: RGB

    @property
    def scrolls(self) -> bool:
        return self.text_width > self.box[2] - 2 * self.pad

    @property
    def pad(self) -> int:
        return max(2, self.px // 3)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "px": self.px, "text_width": self.text_width,
                "scrolls": self.scrolls, "colour": "#%02x%02x%02x" % self.colour,
                "ground": "#%02x%02x%02x" % self.ground}


@dataclass
class Rendered:
    image: "PILImage.Image"
    #: the numbers of the calls drawn, top to bottom (the rest did not fit)
    calls_shown: list[str]
    notice: Notice | None = None
    #: a lit call is drawn (the driver flashes it while it is new)
    lit: bool = False


@functools.lru_cache(maxsize=128)
def font(path: str, px: int, index: int = 0) -> "ImageFont.FreeTypeFont":
    from PIL import ImageFont

    # the basic layout: no shaping is needed for Chinese, and it is the same with or without libraqm
    return ImageFont.truetype(path, px, index=index, layout_engine=ImageFont.Layout.BASIC)


def clean(text: Any) -> str:
    """One line of drawable text: control, format, private-use and unassigned characters become
    spaces (a board draws lines of text, nothing else)."""
    text = _CONTROL.sub(" ", str(text or ""))
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch == " " else " " for ch in text)
    return text.strip()


class _Pen:
    """Text on one image with one layout: sized to fit, never spilling over its box."""

    def __init__(self, image: "PILImage.Image", layout: Layout) -> None:
        from PIL import ImageDraw

        self.layout, self.image = layout, image
        self.draw: ImageDraw.ImageDraw = ImageDraw.Draw(image)
        if not layout.antialias:
            self.draw.fontmode = "1"

    def font(self, px: float) -> "ImageFont.FreeTypeFont":
        return font(self.layout.font_path, max(6, int(round(px))), self.layout.font_index or 0)

    def fit(self, text: str, max_width: float, px: float, min_px: float | None = None) -> tuple["ImageFont.FreeTypeFont", str]:
        """The largest font from ``px`` down to ``min_px`` in which ``text`` fits ``max_width``;
        cut with an ellipsis if even the smallest is too wide."""
        size = int(round(px))
        floor = int(round(min_px if min_px is not None else px * 0.6))
        f = self.font(size)
        while size > floor and f.getlength(text) > max_width:
            size = max(floor, int(size * 0.92))
            f = self.font(size)
        if f.getlength(text) > max_width:
            while text and f.getlength(text + ELLIPSIS) > max_width:
                text = text[:-1]
            text = text + ELLIPSIS if text else ""
        return f, text

    def text(self, xy: tuple[float, float], text: str, px: float, max_width: float, fill: RGB,
             anchor: str = "lm", min_px: float | None = None) -> None:
        text = clean(text)
        if not text or max_width <= 0:
            return
        f, text = self.fit(text, max_width, px, min_px)
        self.draw.text(xy, text, font=f, fill=fill, anchor=anchor)

    def rect(self, box: Sequence[float], fill: RGB) -> None:
        x0, y0, x1, y1 = box
        if x1 > x0 and y1 > y0:
            self.draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)


def render_board(content: Mapping[str, Any], layout: Layout, *, lit: bool = True) -> Rendered:
    """The board for ``content``. ``lit`` False draws the dark phase of a flash: the highlighted
    call as an ordinary one."""
    from PIL import Image

    ground = layout.theme.led_ground if layout.style == "led" else layout.theme.ground
    image = Image.new("RGB", layout.size, ground)
    pen = _Pen(image, layout)
    if layout.style == "led":
        shown, has_lit = _led(pen, content, lit)
        return Rendered(image, shown, None, has_lit)
    shown, notice, has_lit = _tv(pen, content, lit)
    return Rendered(image, shown, notice, has_lit)


def render_notice(notice: Notice, layout: Layout, offset: int = 0) -> "PILImage.Image":
    """The notice strip alone (``notice.box``'s size), its text moved ``offset`` pixels left
    (it wraps round: offset 0 and one whole turn look alike)."""
    from PIL import Image

    _, _, w, h = notice.box
    strip = Image.new("RGB", (w, h), notice.ground)
    pen = _Pen(strip, layout)
    f = pen.font(notice.px)
    if not notice.scrolls:
        pen.draw.text((notice.pad, h / 2), notice.text, font=f, fill=notice.colour, anchor="lm")
        return strip
    turn = notice.text_width + gap(notice)
    x = notice.pad - offset % turn
    while x < w:
        pen.draw.text((x, h / 2), notice.text, font=f, fill=notice.colour, anchor="lm")
        x += turn
    return strip


def gap(notice: Notice) -> int:
    """Space between the end of a scrolling notice and its next turn."""
    return notice.px * 4


def render_blank(layout: Layout) -> "PILImage.Image":
    from PIL import Image

    return Image.new("RGB", layout.size, (0, 0, 0))


#: the colour bars of a test pattern, left to right (SMPTE order, full intensity)
BARS: tuple[RGB, ...] = ((255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
                         (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0))


def render_test_pattern(layout: Layout, caption: Sequence[str]) -> "PILImage.Image":
    """The technician's pattern: colour bars (every channel lit, none swapped), a grid (every edge
    of the picture on the panel, nothing scaled or cropped: a 1-pixel white frame), and
    ``caption`` (the model, the size) in the middle."""
    from PIL import Image

    w, h = layout.size
    image = Image.new("RGB", layout.size, (0, 0, 0))
    pen = _Pen(image, layout)
    bar_w = w / len(BARS)
    for i, colour in enumerate(BARS):
        pen.rect((round(i * bar_w), 0, round((i + 1) * bar_w), round(h * 2 / 3)), colour)
    step = max(8, min(w, h) // 8)
    for x in range(0, w, step):
        pen.draw.line([(x, 0), (x, h - 1)], fill=(128, 128, 128))
    for y in range(0, h, step):
        pen.draw.line([(0, y), (w - 1, y)], fill=(128, 128, 128))
    pen.draw.rectangle([0, 0, w - 1, h - 1], outline=(255, 255, 255))
    lines = [clean(c) for c in caption if clean(c)]
    if lines:
        line_h = h / (len(lines) + 2) if layout.style == "led" else min(h / (len(lines) + 4), 90 * layout.unit)
        box_h = line_h * len(lines) + line_h / 2
        top = (h - box_h) / 2
        pen.rect((round(w * 0.08), round(top), round(w * 0.92), round(top + box_h)), (0, 0, 0))
        for i, line in enumerate(lines):
            pen.text((w / 2, top + line_h * (i + 0.75)), line, line_h * 0.75, w * 0.82, (255, 255, 255), "mm",
                     min_px=8)
    return image


# -- TV styles ------------------------------------------------------------------------------------


def _tv(pen: _Pen, c: Mapping[str, Any], lit: bool) -> tuple[list[str], Notice | None, bool]:
    layout, th = pen.layout, pen.layout.theme
    w, h = layout.size
    u = layout.unit
    portrait = layout.style == "portrait"
    pad = round(32 * u)
    y = 0
    # title
    th_h = round((130 if portrait else 110) * u)
    pen.rect((0, 0, w, th_h), th.title_ground)
    pen.text((w / 2, th_h / 2), c.get("title", ""), 64 * u, w - 2 * pad, th.text, "mm")
    y = th_h
    # banner: the board cannot be trusted now
    if clean(c.get("banner")):
        bh = round((100 if portrait else 96) * u)
        pen.rect((0, y, w, y + bh), th.banner_ground)
        pen.text((w / 2, y + bh / 2), c["banner"], 56 * u, w - 2 * pad, th.banner_text, "mm")
        y += bh
    calls = [call for call in c.get("calls", []) if clean(call.get("number"))]
    has_lit = any(call.get("highlight") for call in calls)
    # the newest call as a sentence
    if clean(c.get("announce")):
        ah = round((170 if portrait else 150) * u)
        glow = lit and has_lit
        pen.rect((0, y, w, y + ah), th.highlight_ground if glow else th.ground)
        pen.text((w / 2, y + ah / 2), c["announce"], (84 if portrait else 96) * u, w - 2 * pad,
                 th.highlight_text if glow else th.number, "mm")
        y += ah
    # footer: hours, notice
    bottom = h
    notice = None
    if clean(c.get("notice")):
        nh = round(76 * u)
        bottom -= nh
        px = round(48 * u)
        text = clean(c["notice"])
        notice = Notice(text, (0, bottom, w, nh), px, int(pen.font(px).getlength(text)), th.notice_text, th.notice_ground)
    if clean(c.get("hours")):
        hh = round(64 * u)
        bottom -= hh
        pen.rect((0, bottom, w, bottom + hh), th.title_ground)
        pen.text((pad, bottom + hh / 2), c["hours"], 40 * u, w - 2 * pad, th.text)
    body_top, body_bottom = y + pad // 2, bottom - pad // 2
    labels = c.get("labels") or {}
    waiting = c.get("waiting") or []
    if portrait:
        row_w = round(72 * u)
        wait_h = (round(row_w * 0.85) + row_w * len(waiting)) if waiting else 0
        wait_h = min(wait_h, (body_bottom - body_top) * 2 // 5)
        calls_box = (pad, body_top, w - pad, body_bottom - wait_h - (pad if waiting else 0))
        wait_box = (pad, body_bottom - wait_h, w - pad, body_bottom)
        shown = _calls_table(pen, calls, labels, calls_box, lit, row_h=round(100 * u), px=70 * u)
        if waiting:
            _waiting_table(pen, waiting, labels, wait_box, row_h=row_w, px=48 * u)
    else:
        split = round(w * 0.58)
        shown = _calls_table(pen, calls, labels, (pad, body_top, split - pad // 2, body_bottom), lit,
                             row_h=round(72 * u), px=56 * u)  # eight rows: central's default board_size
        if waiting:
            _waiting_table(pen, waiting, labels, (split + pad // 2, body_top, w - pad, body_bottom),
                           row_h=round(68 * u), px=44 * u)
    if notice is not None:
        pen.image.paste(render_notice(notice, layout), (0, notice.box[1]))
    return shown, notice, has_lit


def _calls_table(pen: _Pen, calls: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
                 box: tuple[int, int, int, int], lit: bool, *, row_h: int, px: float) -> list[str]:
    th = pen.layout.theme
    x0, y0, x1, y1 = box
    width = x1 - x0
    names = any(clean(call.get("name")) for call in calls)
    cols = (0.36, 0.40, 0.24) if names else (0.42, 0.58, 0.0)
    xs = [x0, x0 + width * cols[0], x0 + width * (cols[0] + cols[1]), x1]
    cell = [xs[i + 1] - xs[i] - row_h * 0.2 for i in range(3)]
    y = y0
    head = [clean(labels.get("number")), clean(labels.get("window")), clean(labels.get("name")) if names else ""]
    if any(head):
        hh = round(row_h * 0.8)
        for i, text in enumerate(head):
            pen.text((xs[i] + row_h * 0.1, y + hh / 2), text, px * 0.7, cell[i], th.header)
        y += hh
        pen.draw.line([(x0, y), (x1, y)], fill=th.rule, width=max(1, row_h // 30))
    shown: list[str] = []
    for call in calls:
        if y + row_h > y1:
            break
        glow = lit and bool(call.get("highlight"))
        if glow:
            pen.rect((x0, y + 2, x1, y + row_h - 2), th.highlight_ground)
        mid = y + row_h / 2
        number_colour = th.highlight_text if glow else th.number
        text_colour = th.highlight_text if glow else th.text
        pen.text((xs[0] + row_h * 0.1, mid), call["number"], px, cell[0], number_colour)
        pen.text((xs[1] + row_h * 0.1, mid), call.get("window_name", ""), px, cell[1], text_colour)
        if names:
            pen.text((xs[2] + row_h * 0.1, mid), call.get("name", ""), px * 0.85, cell[2], text_colour)
        shown.append(clean(call["number"]))
        y += row_h
    return shown


def _waiting_table(pen: _Pen, rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
                   box: tuple[int, int, int, int], *, row_h: int, px: float) -> None:
    th = pen.layout.theme
    x0, y0, x1, y1 = box
    width = x1 - x0
    xs = [x0, x0 + width * 0.48, x0 + width * 0.68, x1]
    cell = [xs[i + 1] - xs[i] - row_h * 0.2 for i in range(3)]
    y = y0
    head = [clean(labels.get("section")), clean(labels.get("count")), clean(labels.get("wait"))]
    if any(head):
        hh = round(row_h * 0.85)
        for i, text in enumerate(head):
            pen.text((xs[i] + row_h * 0.1, y + hh / 2), text, px * 0.8, cell[i], th.header)
        y += hh
        pen.draw.line([(x0, y), (x1, y)], fill=th.rule, width=max(1, row_h // 30))
    for row in rows:
        if y + row_h > y1:
            break
        mid = y + row_h / 2
        pen.text((xs[0] + row_h * 0.1, mid), row.get("section", ""), px, cell[0], th.text)
        pen.text((xs[1] + row_h * 0.1, mid), str(row.get("count", "")), px, cell[1], th.number)
        pen.text((xs[2] + row_h * 0.1, mid), row.get("wait", ""), px, cell[2], th.text)
        y += row_h


# -- LED matrix ------------------------------------------------------------------------------------


def _led(pen: _Pen, c: Mapping[str, Any], lit: bool) -> tuple[list[str], bool]:
    layout, th = pen.layout, pen.layout.theme
    w, h = layout.size
    rows = max(1, h // 32)
    row_h = h // rows
    pad = max(1, row_h // 10)
    y = 0
    if clean(c.get("banner")):
        pen.text((w / 2, row_h / 2), c["banner"], row_h * 0.8, w - 2 * pad, th.banner_ground, "mm", min_px=10)
        y += row_h
    calls = [call for call in c.get("calls", []) if clean(call.get("number"))]
    has_lit = any(call.get("highlight") for call in calls)
    shown: list[str] = []
    for call in calls:
        if y + row_h > h:
            break
        glow = lit and bool(call.get("highlight"))
        if glow:
            pen.rect((0, y, w, y + row_h), th.highlight_ground)
        mid = y + row_h / 2
        number = clean(call["number"])
        f, number = pen.fit(number, w * 0.5, row_h * 0.9, row_h * 0.6)
        pen.draw.text((pad, mid), number, font=f, fill=th.highlight_text if glow else th.number, anchor="lm")
        left = pad + f.getlength(number) + row_h // 3
        pen.text((w - pad, mid), call.get("window_name", ""), row_h * 0.85, w - pad - left,
                 th.highlight_text if glow else th.led_window, "rm", min_px=10)
        shown.append(number)
        y += row_h
    return shown, has_lit
