"""Device kinds as contracts: what every device of a kind can be asked to do, whatever its model.

A :class:`Kind` lists its actions with their argument schemas (JSON Schema), the features that
some models lack, the events its devices emit and the fields a probe may report. A driver
declares the kind it serves and the features it implements; a firmware profile may narrow the
features for its model (``features = [...]``, as escpos-printer-db's ``supports()``). The node
announces each device's actions with their schemas in its birth, so ``hallctl diag`` and any
outside client can drive a model they have never seen.

A new kind is registered with :func:`register_kind` (the shipped kinds are at the bottom of this
file); see docs/devices.md, "Adding a device kind".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

__all__ = ["Action", "Kind", "KINDS", "register_kind", "get_kind", "NO_ARGS", "COMMON_ACTIONS"]

#: the schema of an action that takes no arguments
NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class Action:
    """One action of a kind. ``feature`` None: every driver of the kind implements it."""

    name: str
    doc: str
    args: Mapping[str, Any] = field(default_factory=lambda: dict(NO_ARGS))
    feature: str | None = None
    #: a technician's test (a test ticket, pattern or sentence): ``hallctl diag`` lists these first
    test: bool = False

    def announce(self) -> dict[str, Any]:
        """What a node's birth says of this action."""
        out: dict[str, Any] = {"doc": self.doc, "args": dict(self.args)}
        if self.test:
            out["test"] = True
        return out


#: answered by the node itself from the device's last state, for every kind
COMMON_ACTIONS: dict[str, Action] = {
    "probe": Action("probe", "the device's current availability and health, as last probed"),
}


@dataclass(frozen=True)
class Kind:
    name: str
    doc: str
    actions: Mapping[str, Action]
    #: event type -> JSON Schema of its ``data``
    events: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: JSON Schema of the ``detail`` a probe of this kind may report (paper level, last card...)
    state: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    @property
    def features(self) -> frozenset[str]:
        return frozenset(a.feature for a in self.actions.values() if a.feature)

    def actions_for(self, features: Iterable[str]) -> dict[str, Action]:
        """The actions a device with ``features`` offers, the common ones included."""
        have = set(features)
        own = {n: a for n, a in self.actions.items() if a.feature is None or a.feature in have}
        return {**own, **COMMON_ACTIONS}


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Make ``kind`` known to profiles, drivers, apps and the node. Registering the same name
    twice with a different definition is a programming error (ValueError)."""
    known = KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"device kind {kind.name!r} is already registered differently")
    from hallctl.bus.topics import NAME_RE  # action and event names are topic levels

    for name in [*kind.actions, *kind.events]:
        if not NAME_RE.match(name):
            raise ValueError(f"{kind.name}: {name!r} cannot be a topic level (dotted [a-z0-9_] names)")
    for name in kind.actions:
        if name in COMMON_ACTIONS:
            raise ValueError(f"{kind.name}: action {name!r} is answered by the node for every kind")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> Kind:
    """The registered kind; KeyError naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown device kind {name!r} (known: {', '.join(sorted(KINDS))})") from None


# -- the shipped kinds ---------------------------------------------------------------------------

WINDOW_DISPLAY = register_kind(Kind(
    name="window_display",
    doc="the LED bar over a window: shows the number being called there",
    actions={
        "show": Action("show", "show these lines, one per row; the model's area holds a limited number of bytes (BX-6K 1,024, "
                            "BX-5K 512; GB2312: 2 per Chinese character). A 7-segment board (no Chinese) shows number and "
                            "window instead (\"A012-5\"), or else the first line. Held 30 s, or until the window's state "
                            "changes", {
            "type": "object",
            "properties": {
                "lines": {"type": "array", "minItems": 1, "maxItems": 8, "items": {"type": "string", "maxLength": 128}},
                "number": {"type": "string", "maxLength": 16,
                           "description": "the ticket called here (A012); empty: none"},
                "window": {"type": "string", "maxLength": 16, "description": "the window's short label (5)"},
                # -1..94: the Candle board's blink byte holds "n times" up to 0x7F - 0x21 (protocols.md §3.7)
                "blink": {"type": "integer", "minimum": -1, "maximum": 94,
                          "description": "blink this many times, then show steadily; 0 (default) steady; "
                                         "-1 until the next show or clear"},
            },
            "required": ["lines"],
            "additionalProperties": False,
        }, test=True),
        "clear": Action("clear", "blank the display"),
        "ping": Action("ping", "ask the controller to answer (no change on the display); "
                               "a model that cannot answer lacks it", feature="ping", test=True),
        "status": Action("status", "the controller's own status record", feature="status"),
        "brightness": Action("brightness", "set the brightness now: 15 brightest; a model with fewer steps maps "
                                           "the range onto them (Candle: 12..15, 8..11, 4..7, 0..3)", {
            "type": "object",
            "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 15}},
            "required": ["level"],
            "additionalProperties": False,
        }, feature="brightness"),
    },
))

_TICKET_BLOCK: dict[str, Any] = {
    "type": "object",
    "description": "exactly one of text, qr, feed, rule",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 512,
                 "description": "printed as is; \\n starts a new line; no other control characters"},
        "size": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1, "description": "width = height multiplier"},
        "align": {"type": "string", "enum": ["left", "center", "right"], "description": "text: left, qr: center"},
        "bold": {"type": "boolean", "default": False},
        "qr": {"type": "string", "minLength": 1, "maxLength": 512, "description": "a QR code of this text (UTF-8)"},
        "module": {"type": "integer", "minimum": 1, "maximum": 16, "description": "QR dots per module (default: the model's)"},
        "feed": {"type": "integer", "minimum": 1, "maximum": 255, "description": "blank lines"},
        "rule": {"type": "boolean", "enum": [True], "description": "a line across the paper"},
    },
    "additionalProperties": False,
}
_PRINT_PATH = {"type": "string", "enum": ["auto", "native", "raster"], "default": "auto",
               "description": "native: the printer's fonts; raster: an image; auto: native when the model can"}
_PRINTER_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{k: {"type": "boolean"} for k in ("online", "cover_open", "paper_near_end", "paper_end",
                                            "cutter_error", "unrecoverable", "recoverable")},
        "raw": {"type": "string", "description": "the replies to DLE EOT 1..4, hex"},
    },
}

TICKET_PRINTER = register_kind(Kind(
    name="ticket_printer",
    doc="the kiosk's ESC/POS ticket printer; a ticket counts as printed only when print answered",
    actions={
        "print": Action("print", "print one ticket and cut; answers only once the printer has processed it and its "
                                 "status after is fine (data: confirmed, bytes, path, cut, status); any doubt is an error", {
            "type": "object",
            "properties": {
                "blocks": {"type": "array", "minItems": 1, "maxItems": 64, "items": _TICKET_BLOCK},
                "cut": {"type": "boolean", "default": True, "description": "cut after the ticket (models with a cutter)"},
                "path": _PRINT_PATH,
            },
            "required": ["blocks"],
            "additionalProperties": False,
        }),
        "status": Action("status", "the printer's real-time status (DLE EOT 1..4); no reply is an error, never 'paper OK'"),
        "test_ticket": Action("test_ticket", "print a test ticket: the model, its status bits and a QR code", {
            "type": "object",
            "properties": {"path": _PRINT_PATH,
                           "qr": {"type": "string", "minLength": 1, "maxLength": 512}},
            "additionalProperties": False,
        }, test=True),
        "recover": Action("recover", "recover from a recoverable error such as a cleared cutter jam (DLE ENQ)", {
            "type": "object",
            "properties": {"clear_buffer": {"type": "boolean", "default": True,
                                            "description": "drop what the printer still holds (a voided ticket)"}},
            "additionalProperties": False,
        }),
    },
    events={"status_changed": {
        "type": "object",
        "properties": {"health": {"type": "string", "enum": ["ok", "degraded", "fault"]},
                       "reason": {"type": "string"},
                       "status": {**_PRINTER_STATUS, "type": ["object", "null"]}},
        "required": ["health", "reason", "status"],
    }},
    state={"type": "object", "properties": {"status": _PRINTER_STATUS, "transport": {"type": "string"},
                                             "recovered": {"type": "boolean"}}},
))

# -- window_keypad ---------------------------------------------------------------------------------

#: a keypad's LED: steady or blinking at QSystem's 200 ms ("blink") or 500 ms ("blink_slow")
KEYPAD_LED_STATES = ("off", "red", "green", "red_blink", "green_blink", "red_blink_slow", "green_blink_slow")
#: what a keypad's key can do (a GPIO button is named by its function; the keypad app maps a QSystem
#: keypad's "1".."4" to these): the window actions, and QSystem's two keys whose meaning follows the
#: window's state (key 1: call next when idle, recall when called; key 4: no-show when called,
#: complete when serving)
KEYPAD_FUNCTIONS = ("call_next", "recall", "start", "complete", "no_show", "pause", "transfer",
                    "next_or_recall", "no_show_or_complete")

WINDOW_KEYPAD = register_kind(Kind(
    name="window_keypad",
    doc="the clerk's keypad at a window (呼叫器): a key press is an event; the keypad shows the result",
    actions={
        "show": Action("show", "show a short text on the keypad's display (a QSystem keypad: 3 characters, cp1251; "
                               "longer text is cut, as QSystem cuts a number); empty text blanks it", {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 16},
                           "blink": {"type": "boolean", "default": False}},
            "required": ["text"],
            "additionalProperties": False,
        }, feature="display"),
        "led": Action("led", "set the keypad's LED, with a 500 ms beep if asked (blink: 200 ms, blink_slow: 500 ms)", {
            "type": "object",
            "properties": {"state": {"type": "string", "enum": list(KEYPAD_LED_STATES)},
                           "beep": {"type": "boolean", "default": False}},
            "required": ["state"],
            "additionalProperties": False,
        }, feature="led"),
        "led_test": Action("led_test", "a technician's test: 888 on the display, each LED state in turn with a beep, "
                                       "then blank; the keypad app puts the window's state back after it", test=True),
    },
    events={"pressed": {
        "type": "object",
        "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 32,
                               "description": "the key's name: '1'..'4' on a QSystem keypad, the button's "
                                              "function (call_next, ...) on a GPIO keypad"}},
        "required": ["key"],
        "additionalProperties": False,
    }},
    state={"type": "object", "properties": {"port": {"type": "string"}, "address": {"type": "integer"},
                                             "heard": {"type": "boolean"}, "pins": {"type": "object"}}},
))

# -- voice_caller ----------------------------------------------------------------------------------

#: one word of an announcement: "chime", "," (a pause), a digit, a letter, or Chinese ("号", "窗口")
_VOICE_TOKEN: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 32, "pattern": "^[^\\x00-\\x1f\\x7f]+$",
                                "x-pattern-hint": "a word without control characters"}

VOICE_CALLER = register_kind(Kind(
    name="voice_caller",
    doc="a speaker that calls numbers in Mandarin (有声叫号): one announcement at a time, never cut off",
    actions={
        "announce": Action("announce", "say these words, in order, and answer once the announcement has finished "
                                       "playing (data: duration_ms, started_at, engine, volume, file when writing WAV "
                                       "files). Words: \"chime\", \",\" (a pause), one digit (\"0\" is 零), one letter, "
                                       "十/百/千 of a number read as a number, Chinese (\"请\", \"号\", \"窗口\")", {
            "type": "object",
            "properties": {
                "parts": {"type": "array", "minItems": 1, "maxItems": 256, "items": _VOICE_TOKEN},
                "volume": {"type": "integer", "minimum": 0, "maximum": 100,
                           "description": "0 silent, 100 full; default: the device's default_volume"},
                "id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$",
                       "description": "names the announcement in logs and WAV file names (A012-w5)"},
            },
            "required": ["parts"],
            "additionalProperties": False,
        }),
        "say": Action("say", "a technician's test: the chime and a sentence (default: a test call); digits are read "
                             "one by one; a clip voice can say only what it has recordings for", {
            "type": "object",
            "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 200}},
            "additionalProperties": False,
        }, test=True),
    },
    events={"engine_restarted": {
        "type": "object",
        "properties": {"engine": {"type": "string"},
                       "reason": {"type": "string", "description": "why: hung (no answer in time), exited, ..."},
                       "retry": {"type": "boolean", "description": "the announcement it was saying is tried again"}},
        "required": ["engine", "reason", "retry"],
        "additionalProperties": False,
    }},
    state={"type": "object", "properties": {"engine": {"type": "string"}, "output": {"type": "string"},
                                             "spoken": {"type": "integer"}, "restarts": {"type": "integer"}}},
))

# -- the call-order board -------------------------------------------------------------------------


def _board_text(max_length: int, **extra: Any) -> dict[str, Any]:
    """One line of board text (control characters are refused: a board draws lines, not layouts)."""
    return {"type": "string", "maxLength": max_length, "pattern": r"^[^\x00-\x1f\x7f]*$",
            "x-pattern-hint": "one line of text, no control characters", **extra}


CALL_BOARD = register_kind(Kind(
    name="call_board",
    doc="the call-order board (叫号次序显示屏): a TV or an LED matrix with the latest calls, the waiting and notices",
    actions={
        "show": Action("show", "draw the board with this content, text as it is shown; a highlighted call that is new "
                               "flashes for a few seconds (data: frame, calls_shown: the numbers that fit)", {
            "type": "object",
            "properties": {
                "title": _board_text(64),
                "banner": _board_text(64, description="a warning across the board (暂停服务：与中心的连接中断); empty: none"),
                "announce": _board_text(64, description="the newest call as a sentence (请A012号到5号窗口办理)"),
                "calls": {"type": "array", "maxItems": 20, "description": "the latest calls, newest first; as many as fit",
                          "items": {
                              "type": "object",
                              "properties": {
                                  "number": _board_text(16, minLength=1),
                                  "window_name": _board_text(32),
                                  "name": _board_text(16, description="a masked name (张*), when the hall shows names"),
                                  "at": _board_text(40, description="when it was called: a call called again flashes again"),
                                  "highlight": {"type": "boolean", "default": False,
                                                "description": "the newest call: lit, and flashing while it is new"},
                              },
                              "required": ["number", "window_name"],
                              "additionalProperties": False,
                          }},
                "waiting": {"type": "array", "maxItems": 16, "description": "one row per section",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "section": _board_text(32, minLength=1),
                                    "count": {"type": "integer", "minimum": 0, "maximum": 99999},
                                    "wait": _board_text(16, description="the predicted wait as shown (约7分钟)"),
                                },
                                "required": ["section", "count"],
                                "additionalProperties": False,
                            }},
                "labels": {"type": "object", "description": "column headers; lost: what the web page says when it loses the node",
                           "properties": {**{k: _board_text(16) for k in ("number", "window", "name", "section", "count", "wait")},
                                          "lost": _board_text(64)},
                           "additionalProperties": False},
                "hours": _board_text(128, description="the opening hours line"),
                "notice": _board_text(256, description="a notice line; it scrolls when longer than the board is wide"),
            },
            "additionalProperties": False,
        }),
        "test_pattern": Action("test_pattern", "colour bars, a grid and the model and size on every output", test=True),
        "clear": Action("clear", "blank the board (the app draws it again within 30 s)"),
    },
    state={"type": "object", "properties": {"outputs": {"type": "array", "items": {"type": "string"}},
                                             "frames": {"type": "integer"}, "repaired": {"type": "integer"},
                                             "web_clients": {"type": "integer"}}},
))

# -- button_panel ----------------------------------------------------------------------------------
# A simple kiosk's push buttons, one per category, each with a lamp (no touchscreen).

BUTTON_PANEL = register_kind(Kind(
    name="button_panel",
    doc="push buttons with a lamp each (a buttons-only kiosk: one button per category)",
    actions={
        "lamps": Action("lamps", "light these lamps, blink those, the rest off", {
            "type": "object",
            "properties": {
                "on": {"type": "array", "maxItems": 32, "items": {"type": "string", "minLength": 1, "maxLength": 32}},
                "blink": {"type": "array", "maxItems": 32, "items": {"type": "string", "minLength": 1, "maxLength": 32}},
            },
            "additionalProperties": False,
        }),
        "lamp_test": Action("lamp_test", "light each lamp in turn, then all, then none", test=True),
    },
    events={"pressed": {
        "type": "object",
        "properties": {"button": {"type": "string", "minLength": 1, "maxLength": 32}},
        "required": ["button"],
    }},
))
