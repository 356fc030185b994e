"""Window display app: the retained ``window/<id>/state`` -> the display over that window.

The citizen looks up at the window and must see the number being served there. Text comes from
templates a hall can override in the device's options (``templates.called = ["...", "..."]``);
fields: ``{window}``, ``{window_name}``, ``{number}``, ``{queue}``. Every ``show`` also carries the
ticket ``number`` and the ``window`` id, which is all a 7-segment board (no Chinese) shows.

A new call at this window (a ticket becoming ``called`` here, or a recall: its ``recalls`` grew)
makes the display blink (option ``blink``: that many times, 0 never, -1 for as long as the ticket
is called). A brightness schedule (option ``brightness``, see :mod:`hallctl.apps.daily_schedule`)
is applied when the device comes up and at each change, on devices with the ``brightness`` feature.

The app keeps what the display *should* show. Pushes are coalesced (only the latest state is sent,
however fast calls come) and re-applied whenever the device (re)starts, so a display that was
power-cycled or unplugged shows the truth again as soon as it is back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.apps.hold import HOLD_S, TestHold
from hallctl.apps.daily_schedule import level_at, parse_schedule, schedule_schema, seconds_to_next_change
from hallctl.bus.topics import parse
from hallctl.errors import BadRequest, HallctlError, UnknownCommand
from hallctl.ids import ID_RE
from hallctl_drivers.schema import SchemaError

log = logging.getLogger("hallctl.apps.window_display")

DEFAULT_TEMPLATES: dict[str, list[str]] = {
    "called": ["请{number}号", "到{window_name}办理"],
    "serving": ["{window_name}", "正在办理{number}"],
    "idle": ["{window_name}", "欢迎光临"],
    "paused": ["{window_name}", "暂停服务"],
    "closed": ["{window_name}", "停止服务"],
}

#: blinks on a new call when the options do not say
DEFAULT_BLINK = 3
#: the longest the app sleeps before looking at the clock again (a clock set forward or back)
RECHECK_S = 60.0
_FIELDS = {"window": "3", "window_name": "3号窗口", "number": "A001", "queue": "a"}


def check_templates(templates: Any) -> dict[str, list[str]]:
    """Validate hall-supplied templates (from a node config); raises ValueError saying what is wrong."""
    if templates is None:
        return {}
    if not isinstance(templates, Mapping):
        raise ValueError("templates must be a table of state = [lines]")
    out: dict[str, list[str]] = {}
    for key, lines in templates.items():
        if key not in DEFAULT_TEMPLATES:
            raise ValueError(f"unknown state {key!r}; states: {', '.join(DEFAULT_TEMPLATES)}")
        if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
            raise ValueError(f"{key} must be a non-empty list of strings")
        for line in lines:
            try:
                line.format(**_FIELDS)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{key}: {line!r} uses an unknown field or bad braces ({exc}); "
                                 f"fields: {', '.join('{' + f + '}' for f in _FIELDS)}") from None
        out[key] = list(lines)
    return out


def _state_key(state: Mapping[str, Any]) -> str:
    window_state = state.get("state", "open")
    ticket = state.get("ticket") or None
    if window_state in ("paused", "closed"):
        return window_state
    if ticket and ticket.get("status") in ("called", "serving"):
        return str(ticket["status"])
    return "idle"


def render(state: Mapping[str, Any], templates: Mapping[str, list[str]] = DEFAULT_TEMPLATES) -> list[str]:
    """The lines a window display shows for a window state document (see docs/topics.md)."""
    key = _state_key(state)
    ticket = state.get("ticket") or {}
    fields = {
        "window": state.get("window", ""),
        "window_name": state.get("name") or f"{state.get('window', '')}号窗口",
        "number": ticket.get("number", ""),
        "queue": ticket.get("queue", ""),
    }
    lines = templates.get(key) or DEFAULT_TEMPLATES[key]
    return [line.format(**fields) for line in lines]


@dataclass(frozen=True)
class View:
    """What the display should show: the lines, and the ticket number for boards without Chinese
    ("" while the window serves nobody, is paused or closed). ``blinking``: blink until the next
    show (the ``blink = -1`` option while a ticket is called)."""

    lines: tuple[str, ...]
    number: str
    blinking: bool = False


def view(state: Mapping[str, Any], templates: Mapping[str, list[str]] = DEFAULT_TEMPLATES,
         blink_while_called: bool = False) -> View:
    key = _state_key(state)
    ticket = state.get("ticket") or {}
    number = str(ticket.get("number", "")) if key in ("called", "serving") else ""
    return View(tuple(render(state, templates)), number, blink_while_called and key == "called")


def call_of(state: Mapping[str, Any]) -> tuple[tuple[str, str], int] | None:
    """The call a window state shows, ((number, called_at), recalls), or None when no ticket is
    being called there."""
    if _state_key(state) != "called":
        return None
    ticket = state["ticket"]
    recalls = ticket.get("recalls")
    key = (str(ticket.get("number", "")), str(ticket.get("called_at", "")))
    return key, recalls if isinstance(recalls, int) else 0


class WindowDisplayApp(App):
    """Drives one display (through its device worker) from one window's state."""

    name = "window_display"
    kinds = frozenset({"window_display"})
    options_schema = {
        "type": "object",
        "properties": {
            "window": {"type": "string", "pattern": ID_RE.pattern, "description": "the window id it shows",
                       "x-pattern-hint": "the id of the window this display is over (as in central's config)"},
            "templates": {"type": "object", "description": "state -> lines, overriding the defaults"},
            "blink": {"type": "integer", "minimum": -1, "maximum": 94, "default": DEFAULT_BLINK,
                      "description": "blinks on a new call or recall; 0 never; -1 as long as the ticket is called"},
            "brightness": schedule_schema("level", 0, 15, "brightness 0..15 by time of day, "
                                                          'e.g. [{at = "08:00", level = 15}, {at = "18:00", level = 3}]'),
        },
        "required": ["window"],
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.window = str(options["window"])
        self.templates = {**DEFAULT_TEMPLATES, **check_templates(options.get("templates"))}
        self.blink: int = int(options.get("blink", DEFAULT_BLINK))
        self.schedule = parse_schedule(options.get("brightness"), "brightness")
        #: local time of day for the schedule (tests set their own clock)
        self.clock: Callable[[], datetime] = datetime.now
        self.desired: View | None = None
        self.shown: View | None = None
        self.level: int | None = None  # the brightness last set, None: to be set
        self._brightness_supported = True
        self._call: tuple[str, str] | None = None
        self._recalls = 0
        #: new calls seen, and the last of them shown with its blinks (a call arriving while an
        #: earlier show is on its way must not lose its blinks when that show completes)
        self._calls_seen = 0
        self._calls_blinked = 0
        self._wake = asyncio.Event()
        self._hold = TestHold(self._wake)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        try:
            check_templates(options.get("templates"))
        except ValueError as exc:
            raise SchemaError("templates", str(exc)) from None
        parse_schedule(options.get("brightness"), "brightness")

    @classmethod
    def claim(cls, options: Mapping[str, Any]) -> str:
        return f"the display of window {options['window']}"

    def subscriptions(self) -> list[str]:
        return [self.ctx.topics.window_state(self.window)]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        parsed = parse(topic)
        if parsed is not None and parsed.kind == "window_state" and parsed.window == self.window:
            self.on_window_state(doc)

    def after_command(self, action: str) -> None:
        if action in ("show", "clear"):
            self.hold()  # a technician's test text stays up for a while, then the truth returns

    def on_window_state(self, state: Mapping[str, Any]) -> None:
        wanted = view(state, self.templates, blink_while_called=self.blink < 0)
        new_call = self._is_new_call(state)
        if new_call and self.blink > 0:
            self._calls_seen += 1
        if wanted != self.desired or new_call:
            self.desired = wanted
            if new_call:
                self.shown = None  # a recall shows the same lines: send them again, blinking
            self._hold.end()  # a real call beats a technician's test text
            self._wake.set()

    def _is_new_call(self, state: Mapping[str, Any]) -> bool:
        call = call_of(state)
        if call is None:
            return False
        key, recalls = call
        new = key != self._call or recalls > self._recalls
        self._call, self._recalls = key, recalls
        return new

    def hold(self, seconds: float | None = None) -> None:
        """Someone else changed the display (diagnostics): leave it for ``seconds`` (default
        :data:`HOLD_S`), then show the window's state again."""
        self.shown = None
        self._hold.start(HOLD_S if seconds is None else seconds)

    async def on_up(self) -> None:
        """The device (re)started: whatever it showed before, and its brightness, may be gone."""
        self.shown = None
        self.level = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._until_next_level()):
                    await self._wake.wait()
            except TimeoutError:
                pass  # a brightness change is due
            self._wake.clear()
            await self._push_view()
            await self._push_brightness()

    # -- the display's text --------------------------------------------------------------------

    async def _push_view(self) -> None:
        if self._hold.active:
            return
        wanted, calls = self.desired, self._calls_seen
        blink_due = calls != self._calls_blinked
        if wanted is None or (wanted == self.shown and not blink_due):
            return
        args: dict[str, Any] = {"lines": list(wanted.lines), "number": wanted.number, "window": self.window}
        blink = -1 if wanted.blinking else (self.blink if blink_due else 0)
        if blink:
            args["blink"] = blink
        try:
            await self.ctx.submit("show", args)
        except BadRequest as exc:
            # the display cannot show it (a character, a number too long for a 7-segment board):
            # no retry would help; say so once per state
            log.warning("window %s: the display cannot show %s: %s", self.window, wanted.number or "the state",
                        exc.message)
        except HallctlError as exc:
            # The supervisor logs the device going down and calls on_up when it is back.
            log.debug("window %s display not updated: %s", self.window, exc.code)
            return
        self.shown = wanted
        self._calls_blinked = calls

    # -- brightness ------------------------------------------------------------------------------

    def _until_next_level(self) -> float | None:
        if not self.schedule or not self._brightness_supported:
            return None
        left = seconds_to_next_change(self.schedule, self.clock())
        return RECHECK_S if left is None else min(left + 0.05, RECHECK_S)

    async def _push_brightness(self) -> None:
        if not self.schedule or not self._brightness_supported:
            return
        level = level_at(self.schedule, self.clock().time())
        if level is None or level == self.level:
            return
        try:
            await self.ctx.submit("brightness", {"level": level})
        except UnknownCommand:
            self._brightness_supported = False
            log.info("window %s: the display has no brightness control; the brightness schedule is not applied",
                     self.window)
            return
        except HallctlError as exc:
            log.debug("window %s display brightness not set: %s", self.window, exc.code)
            return
        self.level = level
