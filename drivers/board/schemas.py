"""What a call board's profile settings and device options may hold (JSON Schema)."""

from __future__ import annotations

from typing import Any

from hallctl_drivers.board.layout import DEFAULT_FONT, STYLES

_SIZE = {"type": "integer", "minimum": 32, "maximum": 7680}
_STYLE = {"type": "string", "enum": ["", *STYLES],
          "description": "landscape, portrait or led; empty: from the size (under 400 pixels high: led)"}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 64, "default": "call board",
                  "description": "what the test pattern names"},
        "width": {**_SIZE, "default": 1920, "description": "pixels"},
        "height": {**_SIZE, "minimum": 16, "default": 1080, "description": "pixels"},
        "style": {**_STYLE, "default": ""},
        "font_path": {"type": "string", "minLength": 1, "default": DEFAULT_FONT},
        "font_index": {"type": "integer", "minimum": 0, "maximum": 15,
                       "description": "face in a font collection (default: Zen Hei, or Zen Hei Sharp on an LED matrix)"},
        "flash_s": {"type": "number", "minimum": 0, "maximum": 60, "default": 6.0,
                    "description": "how long a new call flashes (0: lit, no flashing)"},
        "flash_period_s": {"type": "number", "minimum": 0.2, "maximum": 5, "default": 1.0,
                           "description": "one lit and one dark phase"},
        "scroll_px_s": {"type": "number", "minimum": 0, "maximum": 2000, "default": 120,
                        "description": "speed of a notice line longer than the board (0: cut, not scrolled)"},
        "scroll_fps": {"type": "integer", "minimum": 1, "maximum": 60, "default": 25,
                       "description": "steps per second of a scrolling notice on a framebuffer"},
    },
    "additionalProperties": False,
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # what the board is drawn for (over the profile's)
        "width": {**_SIZE, "description": "pixels, over the profile's (a TV run at 1280x720)"},
        "height": {**_SIZE, "minimum": 16, "description": "pixels, over the profile's"},
        "style": _STYLE,
        "font_path": {"type": "string", "minLength": 1, "description": "over the profile's"},
        "flash_s": {"type": "number", "minimum": 0, "maximum": 60, "description": "over the profile's"},
        # output: the framebuffer
        # not "format": "device-path": hallctl doctor checks those as serial ports
        "framebuffer": {"type": "string", "minLength": 1, "description": "e.g. /dev/fb0 (the Pi's HDMI picture)"},
        "fb_sysfs": {"type": "string", "minLength": 1,
                     "description": "where its geometry is (default /sys/class/graphics/<fbN>)"},
        "fb_width": {"type": "integer", "minimum": 1, "maximum": 16384, "description": "when sysfs does not say"},
        "fb_height": {"type": "integer", "minimum": 1, "maximum": 16384, "description": "when sysfs does not say"},
        "fb_bpp": {"type": "integer", "enum": [16, 32], "description": "when sysfs does not say: 16 RGB565, 32 XRGB8888"},
        "fb_stride": {"type": "integer", "minimum": 1, "description": "bytes per line, when sysfs does not say"},
        "fb_x": {"type": "integer", "minimum": 0, "maximum": 16383, "default": 0,
                 "description": "where the board's left edge is on the framebuffer (an LED sending card's capture window)"},
        "fb_y": {"type": "integer", "minimum": 0, "maximum": 16383, "default": 0},
        "rotate": {"type": "integer", "enum": [0, 90, 180, 270], "default": 0,
                   "description": "degrees clockwise on the framebuffer (a TV hung in portrait on a landscape signal)"},
        # output: PNG files
        "png_dir": {"type": "string", "minLength": 1, "description": "write the board as PNG here"},
        "png_mode": {"type": "string", "enum": ["latest", "frames"], "default": "latest",
                     "description": "latest: one board.png; frames: one file per change"},
        "png_keep": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1000,
                     "description": "frames mode: how many files are kept"},
        # output: a web page for a TV's browser
        "http_port": {"type": "integer", "minimum": 0, "maximum": 65535,
                      "description": "serve the board as a web page on this port (0: any free one, for tests)"},
        "http_listen": {"type": "string", "minLength": 1, "default": "0.0.0.0",
                        "description": "address the page is served on (0.0.0.0: the hall's network)"},
    },
    "additionalProperties": False,
}

#: the options that name an output; a board needs one at least
OUTPUTS = ("framebuffer", "png_dir", "http_port")
