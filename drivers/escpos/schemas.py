"""What an ESC/POS printer's profile settings and device options may hold (JSON Schema).

Settings are the model's (firmware_profiles/<vendor>-<model>.toml, each value cited there);
options are the device's (the node config): where it is plugged in, and a few overrides.
"""

from __future__ import annotations

from typing import Any

from hallctl_drivers.escpos.render import DEFAULT_FONT, DEFAULT_FONT_INDEX

#: optional features of the ticket_printer kind this driver implements (a profile may list fewer)
FEATURES = frozenset({"cutter", "qr_native", "chinese_native"})

_BAUDRATES = [9600, 19200, 38400, 57600, 115200]
_SECONDS = {"type": "number", "minimum": 0.05, "maximum": 60}
_PATH = {"type": "string", "enum": ["auto", "native", "raster"]}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "minLength": 1, "default": "ESC/POS printer",
                  "description": "the model's name, printed on the test ticket"},
        "dots_per_line": {"type": "integer", "minimum": 128, "maximum": 2048, "default": 576,
                          "description": "printable width in dots (escpos-printer-db media.width.pixels)"},
        "dpi": {"type": "integer", "minimum": 100, "maximum": 600, "default": 203},
        "paper_width_mm": {"type": "integer", "enum": [58, 80, 82, 112], "default": 80},
        "baudrate": {"type": "integer", "enum": _BAUDRATES, "default": 9600,
                     "description": "serial speed as shipped (python-escpos' default is 9600 too)"},
        "cut": {"type": "string", "enum": ["feed_partial", "feed_full", "partial", "full"], "default": "feed_partial",
                "description": "feed_*: GS V 66/65 0 (feed to the cutter, cut); partial/full: ESC d n, GS V 1/0"},
        "cut_feed_lines": {"type": "integer", "minimum": 0, "maximum": 255, "default": 5},
        "tear_feed_lines": {"type": "integer", "minimum": 0, "maximum": 255, "default": 4},
        "gb18030_four_byte": {"type": "boolean", "default": False,
                              "description": "the Chinese font ROM covers GB18030's 4-byte area"},
        "line_spacing_dots": {"type": "integer", "minimum": 24, "maximum": 255, "default": 30},
        "qr_module": {"type": "integer", "minimum": 1, "maximum": 16, "default": 6},
        "qr_level": {"type": "string", "enum": ["L", "M", "Q", "H"], "default": "M"},
        "raster_band_rows": {"type": "integer", "minimum": 8, "maximum": 2048, "default": 256},
        "font_path": {"type": "string", "minLength": 1, "default": DEFAULT_FONT,
                      "description": "CJK TrueType font for the raster path"},
        "font_index": {"type": "integer", "minimum": 0, "maximum": 255, "default": DEFAULT_FONT_INDEX,
                       "description": "face in a .ttc collection (wqy-zenhei.ttc 1: Zen Hei Mono, Font A's cells)"},
        "status_timeout_s": {**_SECONDS, "default": 0.5,
                             "description": "wait for each DLE EOT reply (protocols.md §2.9: 300-500 ms)"},
        "print_timeout_s": {**_SECONDS, "default": 5.0,
                            "description": "wait for the GS r reply that says the ticket was processed"},
        "write_timeout_s": {**_SECONDS, "default": 5.0},
        "confirm_with_gs_r": {"type": "boolean", "default": True,
                              "description": "the model answers GS r 1 in buffer order (proof the ticket went through)"},
    },
    "additionalProperties": False,
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "port": {"type": "string", "minLength": 1, "format": "device-path",
                 "description": "serial port, e.g. /dev/serial/by-id/usb-...; or host, or usb"},
        "baudrate": {"type": "integer", "enum": _BAUDRATES, "description": "overrides the profile's"},
        "host": {"type": "string", "minLength": 1, "description": "a network printer (raw TCP)"},
        "tcp_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 9100},
        "usb": {"type": "string", "pattern": r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$",
                "x-pattern-hint": "vendor:product in hex, e.g. 0416:5011 (see lsusb)"},
        "usb_serial": {"type": "string", "minLength": 1, "description": "picks one of several identical USB printers"},
        "path": {**_PATH, "default": "auto",
                 "description": "raster: always print images (a printer whose font ROM garbles Chinese)"},
        "font_path": {"type": "string", "minLength": 1, "description": "overrides the profile's"},
        "font_index": {"type": "integer", "minimum": 0, "maximum": 255, "description": "overrides the profile's"},
        "status_timeout_s": {**_SECONDS, "description": "overrides the profile's"},
        "print_timeout_s": {**_SECONDS, "description": "overrides the profile's"},
    },
    "additionalProperties": False,
}

#: the device options that override a profile setting of the same name
OVERRIDES = ("baudrate", "font_path", "font_index", "status_timeout_s", "print_timeout_s")
