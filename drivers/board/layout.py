"""What a board looks like at one size: its style (landscape TV, portrait TV, LED matrix), font
and colours. Pure data; :mod:`.render` draws with it.

The style follows from the size unless a profile names it: wider than tall is ``landscape``,
taller than wide ``portrait``, and anything under 400 pixels high is an LED matrix (``led``:
a few latest calls in large digits, no anti-aliasing, since an LED pixel is either lit or not).
Sizes in the drawing code are in units of 1/1080 of the short side, so 1280x720 or 4K look like
1080p, only smaller or larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: a CJK font every Debian system can have (fonts-wqy-zenhei); a profile or device option may name another
DEFAULT_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
#: faces of wqy-zenhei.ttc: 0 Zen Hei (proportional), 1 Zen Hei Mono, 2 Zen Hei Sharp (hinted for pixels)
DEFAULT_FONT_INDEX = 0
LED_FONT_INDEX = 2
#: below this height a board is an LED matrix
LED_MAX_HEIGHT = 400
STYLES = ("landscape", "portrait", "led")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Theme:
    """Colours. Light text on a dark ground, as LED and TV boards in halls are: readable from
    across the hall, and the lit call stands out."""

    ground: RGB = (8, 20, 48)
    title_ground: RGB = (16, 52, 110)
    text: RGB = (240, 240, 240)
    number: RGB = (255, 214, 0)
    header: RGB = (140, 180, 230)
    rule: RGB = (40, 70, 120)
    highlight_ground: RGB = (170, 20, 20)
    highlight_text: RGB = (255, 235, 60)
    banner_ground: RGB = (200, 0, 0)
    banner_text: RGB = (255, 255, 255)
    notice_ground: RGB = (0, 0, 0)
    notice_text: RGB = (120, 230, 120)
    led_ground: RGB = (0, 0, 0)
    led_window: RGB = (0, 230, 0)


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    style: str = ""
    font_path: str = DEFAULT_FONT
    font_index: int | None = None
    theme: Theme = field(default_factory=Theme)

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 16:
            raise ValueError(f"a board of {self.width}x{self.height} is too small to draw on")
        if not self.style:
            object.__setattr__(self, "style", style_for(self.width, self.height))
        if self.style not in STYLES:
            raise ValueError(f"unknown board style {self.style!r} (styles: {', '.join(STYLES)})")
        if self.font_index is None:
            object.__setattr__(self, "font_index", LED_FONT_INDEX if self.style == "led" else DEFAULT_FONT_INDEX)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def unit(self) -> float:
        """Pixels per 1/1080 of the short side (1.0 at 1080p, either way round)."""
        return min(self.width, self.height) / 1080

    @property
    def antialias(self) -> bool:
        return self.style != "led"


def style_for(width: int, height: int) -> str:
    if height < LED_MAX_HEIGHT:
        return "led"
    return "portrait" if height > width else "landscape"
