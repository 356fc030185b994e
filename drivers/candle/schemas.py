"""What a Candle board's profile settings and device options may hold (JSON Schema), with the
sources of the limits: [CANDLE] the vendor manual, [PLUG] QSystem's RS485 board plugin
(shared/reference/protocols.md §3.7)."""

from __future__ import annotations

from typing import Any

_BAUD = {"type": "integer", "enum": [57600, 19200],
         "description": "[CANDLE] §1 p.2: 57600 with the board's jumper fitted, 19200 without; no other rate"}
_GAP = {"type": "number", "minimum": 0, "maximum": 5,
        "description": "pause on the bus between two frames (s); the manual gives none, QSystem waits 0.2 s"}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "digits": {"type": "integer", "enum": [3, 4], "default": 4,
                   "description": "ticket digits ([CANDLE] §2 p.3, Fig. 1)"},
        "arrow_module": {"type": "boolean", "default": True,
                         "description": "an arrow module and 2 window digits follow the ticket digits"},
        "baudrate": {**_BAUD, "default": 57600},
        "frame_gap_s": {**_GAP, "default": 0.2},
    },
    "additionalProperties": False,
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "port": {"type": "string", "minLength": 1, "format": "device-path",
                 "description": "serial port of the RS485 adapter, e.g. /dev/ttyUSB0; boards on one bus share it"},
        "address": {"type": "integer", "minimum": 0x20, "maximum": 0x7F, "default": 0x20,
                    "description": "the board's address, 32..127 ([CANDLE] §3 p.5; QSystem's first window is 32)"},
        "arrow": {"type": "string", "enum": ["-", "<", ">"], "default": "-",
                  "description": "what the arrow module shows towards the window: '<' left, '>' right, '-' a dash"},
        "window_label": {"type": "string", "maxLength": 2,
                         "description": "the window digits this board shows, whatever a show says (e.g. \"5\")"},
        "baudrate": {**_BAUD, "description": "overrides the profile's (the jumper on this installation's boards)"},
        "frame_gap_s": {**_GAP, "description": "overrides the profile's"},
        "refresh_s": {"type": "number", "minimum": 0, "maximum": 3600, "default": 60,
                      "description": "re-send what the board should show this often (s), since it cannot say "
                                     "it lost power; 0: never"},
    },
    "required": ["port"],
    "additionalProperties": False,
}

#: what the driver implements beyond show/clear: no ``status`` and no ``ping`` (the board never
#: answers), brightness in four steps
FEATURES = frozenset({"brightness"})
