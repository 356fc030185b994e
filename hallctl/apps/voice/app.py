"""Voice caller app (有声叫号): the hall's calls -> announcements on one speaker.

It follows the queue events ``ticket.called`` and ``ticket.recalled`` (and the events that end a
call) and the windows' retained states. Calls are said one at a time, in central's order, each
to its end (``announce`` answers when it has finished playing); before its turn each is checked
again and dropped if no longer true (:mod:`.calls`). Options (the device's ``[device.options]``):

* ``windows``: the windows this speaker calls for (a zone); empty or left out: all;
* the reading rules (:mod:`.reading`): ``templates``, ``numbers``, ``window_numbers``, ``chime``,
  ``repeat``, ``window_names``;
* ``volume``: by time of day, ``[{at = "08:00", volume = 80}, {at = "12:00", volume = 50}]``;
* ``max_age_s``: a call not said within this many seconds of being made is dropped (default 60).

:attr:`VoiceCallerApp.spoken` keeps when each announcement started playing (for ``bench/``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from datetime import datetime, time as time_of_day, timezone
from typing import Any, Callable, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.apps.daily_schedule import Schedule, level_at, parse_schedule, schedule_schema
from hallctl.apps.voice import reading
from hallctl.apps.voice.calls import Call, CallQueue, Dropped, parse_time
from hallctl.bus.topics import parse
from hallctl.errors import BadRequest, DeviceOffline, HallctlError
from hallctl.ids import ID_RE
from hallctl_drivers.schema import SchemaError

log = logging.getLogger("hallctl.apps.voice_caller")

#: attempts at one announcement that fail on the device (a hung engine twice) before it is dropped
ATTEMPTS = 2
#: seconds between two tries at a device that refused an announcement as offline or busy
RETRY_S = 1.0
#: announcements remembered in :attr:`VoiceCallerApp.spoken` and ``dropped``
HISTORY = 1000
_TEMPLATE = {"type": "string", "minLength": 1, "maxLength": 200}


def volume_at(schedule: Schedule, at: time_of_day) -> int | None:
    """The volume in force at time of day ``at``; None without a schedule (the device's default)."""
    return level_at(schedule, at)


@dataclass(frozen=True)
class Spoken:
    number: str
    window: str
    #: time.monotonic() when it started playing (converted from the device's ``started_at``)
    started_monotonic: float
    duration_ms: int
    recalls: int = 0
    file: str | None = None


class VoiceCallerApp(App):
    name = "voice_caller"
    kinds = frozenset({"voice_caller"})
    options_schema = {
        "type": "object",
        "properties": {
            "windows": {"type": "array", "maxItems": 500,
                        "items": {"type": "string", "pattern": ID_RE.pattern,
                                  "x-pattern-hint": "a window id as in central's config"},
                        "description": "the windows this speaker calls for; empty: all"},
            "templates": {"type": "object", "properties": {"called": _TEMPLATE, "recalled": _TEMPLATE},
                          "additionalProperties": False,
                          "description": "what is said; fields {number}, {window}, {window_name}"},
            "numbers": {"type": "string", "enum": list(reading.NUMBER_MODES), "default": "digits",
                        "description": "a ticket's digits: one by one (A012: 零一二) or as a number (十二)"},
            "window_numbers": {"type": "string", "enum": list(reading.NUMBER_MODES), "default": "number",
                               "description": "the digits of a window's id and name (15号窗口: 十五)"},
            "chime": {"type": "boolean", "default": True, "description": "a chime before each announcement"},
            "repeat": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2,
                       "description": "how many times the sentence is said"},
            "window_names": {"type": "object",
                             "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 64},
                             "description": "window id -> what is said for it, instead of central's name"},
            "volume": schedule_schema("volume", 0, 100, 'volume 0..100 by time of day, e.g. '
                                                        '[{at = "08:00", volume = 80}, {at = "12:00", volume = 50}]'),
            "max_age_s": {"type": "number", "minimum": 1, "maximum": 3600, "default": 60,
                          "description": "a call not said within this many seconds is dropped"},
        },
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.rules = reading.rules_from(options)
        self.schedule = parse_schedule(options.get("volume"), "volume", value_key="volume")
        self.calls = CallQueue(options.get("windows") or None, float(options.get("max_age_s", 60)))
        #: the hall's time now (aware), for a call's age; tests set their own
        self.now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        #: local time of day, for the volume schedule
        self.clock: Callable[[], datetime] = datetime.now
        self.spoken: collections.deque[Spoken] = collections.deque(maxlen=HISTORY)
        self.dropped: collections.deque[Dropped] = collections.deque(maxlen=HISTORY)
        #: an announcement is being said now (the benchmark waits for an idle speaker)
        self.speaking = False
        self._wake = asyncio.Event()
        self._device_up = asyncio.Event()
        self._reported: set[str] = set()  # device refusals already logged as errors

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for key, template in (options.get("templates") or {}).items():
            try:
                reading.check_template(template)
            except ValueError as exc:
                raise SchemaError(f"templates.{key}", str(exc)) from None
        parse_schedule(options.get("volume"), "volume", value_key="volume")
        for window in options.get("window_names") or {}:
            if not ID_RE.match(window):
                raise SchemaError(f"window_names.{window}", "not a window id as in central's config")

    def subscriptions(self) -> list[str]:
        t = self.ctx.topics
        windows = sorted(self.calls.windows) if self.calls.windows else None
        states = [t.window_state(w) for w in windows] if windows else [t.window_state_filter]
        return [t.event_filter, *states]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        parsed = parse(topic)
        if parsed is None:
            return
        if parsed.kind == "event":
            self._dropped(self.calls.on_event(doc))
            if len(self.calls):
                self._wake.set()
        elif parsed.kind == "window_state" and parsed.window:
            self.calls.on_window_state(parsed.window, doc)

    def on_device_state(self, state: Mapping[str, Any]) -> None:
        if state.get("available"):
            self._device_up.set()
        else:
            self._device_up.clear()

    async def on_up(self) -> None:
        self._device_up.set()

    async def run(self) -> None:
        attempts = 0
        while True:
            call, dropped = self.calls.take(self.now())
            self._dropped(dropped)
            if call is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self.speaking = True
            try:
                outcome = await self._say(call)
            finally:
                self.speaking = False
            if outcome == "again":
                attempts += 1
                if attempts < ATTEMPTS:
                    self.calls.put_back(call)
                    continue
                self._dropped([Dropped(call, "the voice device failed twice")])
            elif outcome == "wait":
                self.calls.put_back(call)  # said when the device is back, if still true
                try:  # a device that is up but busy (its queue full) sends no new state: look again
                    async with asyncio.timeout(RETRY_S):
                        await self._device_up.wait()
                except TimeoutError:
                    pass
                await asyncio.sleep(0.1)  # up, yet refusing: no busy loop
                continue
            attempts = 0

    async def _say(self, call: Call) -> str:
        """"done", "again" (the device failed on it) or "wait" (the device is down)."""
        args: dict[str, Any] = {
            "parts": reading.announcement(self.rules, call.number, call.window, call.window_name, call.recalls > 0),
            "id": call.label,
        }
        volume = volume_at(self.schedule, self.clock().time())
        if volume is not None:
            args["volume"] = volume
        try:
            answer = await self.ctx.submit("announce", args)
        except DeviceOffline:
            self._device_up.clear()
            return "wait"
        except BadRequest as exc:
            # a word with no recording: no retry would help; the log names the missing file, once
            if exc.message not in self._reported:
                self._reported.add(exc.message)
                log.error("%s not announced: %s", call.label, exc.message)
            self._dropped([Dropped(call, exc.message)])
            return "done"
        except HallctlError as exc:
            log.warning("%s: the voice device failed (%s): %s", call.label, exc.code, exc.message)
            return "again"
        self.spoken.append(Spoken(call.number, call.window, _monotonic_of(answer.get("started_at")),
                                  int(answer.get("duration_ms", 0)), call.recalls, answer.get("file")))
        log.debug("announced %s (%d ms)", call.label, answer.get("duration_ms", 0))
        return "done"

    def _dropped(self, dropped: list[Dropped]) -> None:
        for d in dropped:
            self.dropped.append(d)
            log.debug("%s not announced: %s", d.call.label, d.reason)


def _monotonic_of(started_at: Any) -> float:
    """time.monotonic() at the wall-clock time ``started_at`` (ISO), or now when it is missing."""
    at = parse_time(started_at)
    now_mono, now_wall = time.monotonic(), time.time()
    return now_mono if at is None else now_mono - (now_wall - at.timestamp())
