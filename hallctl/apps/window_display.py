"""Window display app: the retained ``window/<id>/state`` -> the LED bar over that window.

The citizen looks up at the window and must see the number being served there. Text comes from
templates a hall can override in the device's options (``templates.called = ["...", "..."]``);
fields: ``{window}``, ``{window_name}``, ``{number}``, ``{queue}``.

The app keeps the lines the display *should* show. Pushes are coalesced (only the latest state is
sent, however fast calls come) and re-applied whenever the device (re)starts, so a display that
was power-cycled or unplugged shows the truth again as soon as it is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.errors import HallctlError
from hallctl.bus.topics import parse
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


#: how long a technician's test text (a diagnostics ``show``/``clear``) stays before the app
#: puts the window's real state back; a new call ends the hold at once
HOLD_S = 30.0
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


def render(state: Mapping[str, Any], templates: Mapping[str, list[str]] = DEFAULT_TEMPLATES) -> list[str]:
    """The lines a window display shows for a window state document (see docs/topics.md)."""
    window_state = state.get("state", "open")
    ticket = state.get("ticket") or None
    if window_state in ("paused", "closed"):
        key = window_state
    elif ticket and ticket.get("status") == "called":
        key = "called"
    elif ticket and ticket.get("status") == "serving":
        key = "serving"
    else:
        key = "idle"
    fields = {
        "window": state.get("window", ""),
        "window_name": state.get("name") or f"{state.get('window', '')}号窗口",
        "number": (ticket or {}).get("number", ""),
        "queue": (ticket or {}).get("queue", ""),
    }
    lines = templates.get(key) or DEFAULT_TEMPLATES[key]
    return [line.format(**fields) for line in lines]


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
        },
        "required": ["window"],
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.window = str(options["window"])
        self.templates = {**DEFAULT_TEMPLATES, **check_templates(options.get("templates"))}
        self.desired: list[str] | None = None
        self.shown: list[str] | None = None
        self._wake = asyncio.Event()
        self._hold_until = 0.0

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        try:
            check_templates(options.get("templates"))
        except ValueError as exc:
            raise SchemaError("templates", str(exc)) from None

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
        lines = render(state, self.templates)
        if lines != self.desired:
            self.desired = lines
            self._hold_until = 0.0  # a real call beats a technician's test text
            self._wake.set()

    def hold(self, seconds: float | None = None) -> None:
        """Someone else changed the display (diagnostics): leave it for ``seconds`` (default
        :data:`HOLD_S`), then show the window's state again."""
        seconds = HOLD_S if seconds is None else seconds
        self.shown = None
        loop = asyncio.get_running_loop()
        self._hold_until = loop.time() + seconds
        loop.call_later(seconds, self._wake.set)

    async def on_up(self) -> None:
        """The device (re)started: whatever it showed before is gone."""
        self.shown = None
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if loop.time() < self._hold_until:
                continue
            lines = self.desired
            if lines is None or lines == self.shown:
                continue
            try:
                await self.ctx.submit("show", {"lines": lines})
                self.shown = lines
            except HallctlError as exc:
                # The supervisor logs the device going down and calls on_up when it is back.
                log.debug("window %s display not updated: %s", self.window, exc.code)
