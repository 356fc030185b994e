"""What a BX display's profile settings and device options may hold (JSON Schema), with the
manual's sections the limits come from (BX-5K/6K 通讯协议 v1.4)."""

from __future__ import annotations

from typing import Any

_FONT = {"type": "string", "pattern": r"^(|[A-Za-z][0-9]{3})$",
         "x-pattern-hint": "a font file name like O000 (§11.1), or empty"}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "baudrate": {"type": "integer", "enum": [9600, 57600], "default": 57600,
                     "description": "§2.2/§8.8: serial 8N1 at 9600 or 57600 only"},
        "fallback_baudrates": {"type": "array", "items": {"type": "integer", "enum": [9600, 57600]}, "default": [9600]},
        "device_type": {"type": "integer", "minimum": 0, "maximum": 255, "default": 0xFE},
        "src_address": {"type": "integer", "minimum": 0x8000, "maximum": 0xDFFF, "default": 0x8000},
        "reply_timeout_s": {"type": "number", "minimum": 0.01, "maximum": 60, "default": 2.0},
        "retries": {"type": "integer", "minimum": 0, "maximum": 5, "default": 1},
        "width": {"type": "integer", "minimum": 8, "maximum": 0x7FFF, "default": 128},
        "height": {"type": "integer", "minimum": 8, "maximum": 0xFFFF, "default": 32},
        "font": {**_FONT, "default": "O000"},
        "ascii_font": {**_FONT, "default": ""},
        "color": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
        "text_align": {"type": "string", "enum": ["left", "center", "right"], "default": "center"},
        "rx_buffer_bytes": {"type": "integer", "minimum": 32, "maximum": 0xFFFF, "default": 512},
        "max_dynamic_areas": {"type": "integer", "minimum": 1, "maximum": 255, "default": 5},
        "area_capacity_bytes": {"type": "integer", "minimum": 16, "maximum": 0xFFFF, "default": 512},
        # The protocol has no blink or flash display mode (§9.1 DisplayMode: static, quick type, four
        # scrolls), so the driver blinks by re-sending the area blank and lit; §2.1 gives the dynamic
        # area's refresh rate as ">= 1s", hence one phase per second.
        "blink_period_s": {"type": "number", "minimum": 0.05, "maximum": 10, "default": 1.0,
                           "description": "how long each phase of a blink (dark, lit) lasts"},
    },
    "additionalProperties": False,
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "port": {"type": "string", "minLength": 1, "format": "device-path",
                 "description": "serial port of the RS485 adapter, e.g. /dev/ttyUSB0"},
        "address": {"type": "integer", "minimum": 1, "maximum": 0xFFFE, "default": 1,
                    "description": "the controller's DstAddr (0 is reserved, FFFF is the silent broadcast: §4, §10.1)"},
        "width": {"type": "integer", "minimum": 8, "maximum": 0x7FFF, "description": "pixels, overrides the profile"},
        "height": {"type": "integer", "minimum": 8, "maximum": 0xFFFF, "description": "pixels, overrides the profile"},
        "area_id": {"type": "integer", "minimum": 0, "maximum": 254, "default": 0,
                    "description": "dynamic area to write (below the model's max_dynamic_areas)"},
        "reply_timeout_s": {"type": "number", "minimum": 0.01, "maximum": 60,
                            "description": "overrides the profile's (a long cable, a slow converter)"},
    },
    "required": ["port"],
    "additionalProperties": False,
}

#: what the driver implements beyond show/clear
FEATURES = frozenset({"ping", "status", "brightness"})
