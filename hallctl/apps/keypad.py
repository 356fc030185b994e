"""Keypad app: the clerk's keypad at a window (呼叫器) -> central's window actions, and back.

A key press becomes one request to central as this node (``window.call_next`` ...; the node must
be a ``window`` client of the window in central's ``[[client]]`` list). Which action a key means
comes from the device option ``keys`` (QSystem's default: 1 call next / recall, 2 start,
3 transfer, 4 no-show / complete; a GPIO button is named by its function) and, for QSystem's keys
1 and 4, from the window's state (the retained ``window/<w>/state``).

A press never calls twice:
* one request at a time per keypad: a press while one is in flight is dropped (a double press,
  a clerk pressing again because central is slow);
* the same key again within ``guard_s`` after its request succeeded is dropped (a double press on
  a fast hall: the second would be a recall);
* a request that got no answer is sent again with the same request_id (the node's requester),
  and central answers a repeated request_id with its stored answer, never running it twice;
* when even that got no answer, central may still receive the request until its ``expires_at``
  (the requester's last deadline + 2 s): until then a press says "unreachable" and sends nothing.

The keypad shows the window's state (the number called, blinking; the number being served,
steady; "CAL" when idle with tickets waiting) and, for ``feedback_s`` after a press that failed,
what went wrong (a red blink with a beep, and a short code on a display). Texts are the hall's
(option ``texts``); what a keypad lacks (display or LED) is learnt from its answers. The truth is
re-applied whenever the device (re)starts, after a technician's led_test, and every ``refresh_s``
(a QSystem keypad that lost power is blank and cannot say so: it never answers).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.apps.hold import TestHold
from hallctl.bus.topics import parse
from hallctl.errors import HallctlError, UnknownCommand
from hallctl.ids import ID_RE
from hallctl_drivers.kinds import KEYPAD_FUNCTIONS
from hallctl_drivers.schema import SchemaError

log = logging.getLogger("hallctl.apps.keypad")

#: QSystem's keys ([QS] ub485 ButtonDevice.java, shared/reference/protocols.md §3.8)
DEFAULT_KEYS: dict[str, str] = {"1": "next_or_recall", "2": "start", "3": "transfer", "4": "no_show_or_complete"}

#: what the keypad's display shows per window state and per failure ({number}: the ticket, fitted
#: to the display); cp1251 on a QSystem keypad, so Latin letters and digits
DEFAULT_TEXTS: dict[str, str] = {
    "called": "{number}", "serving": "{number}", "waiting": "CAL", "idle": "", "paused": "", "closed": "",
    "nobody_waiting": "---", "conflict": "E-C", "forbidden": "E-F", "unreachable": "E-U",
    "not_configured": "E-S", "error": "E-E",
}
#: what each failure means (logged with the press; docs/devices-keypad.md)
FAILURES: dict[str, str] = {
    "nobody_waiting": "nobody is waiting for this window",
    "conflict": "not possible in the window's state (nothing called to start, recall limit, window not open)",
    "forbidden": "this node is not a window client of this window in central's [[client]] list",
    "unreachable": "central did not answer",
    "not_configured": "this key has no target here (transfer_queue is not set)",
    "error": "central refused the request",
}
#: central's error code -> the failure shown
_ERROR_FEEDBACK = {"conflict": "conflict", "forbidden": "forbidden", "expired": "unreachable", "timeout": "unreachable"}


@dataclass(frozen=True)
class Output:
    """What the keypad should show: display text, its blink, the LED (a beep is sent once, with
    the next LED command, when one is due)."""

    text: str
    blink: bool
    led: str


#: state or failure -> (display blink, LED state, beep); QSystem's LED answers where it has one
#: (1.3.4: called 36, serving 32, waiting 34, idle 30)
_LOOKS: dict[str, tuple[bool, str, bool]] = {
    "called": (True, "green_blink_slow", False), "serving": (False, "green", False),
    "waiting": (True, "green_blink", False), "idle": (False, "off", False),
    "paused": (False, "red", False), "closed": (False, "off", False),
    "nobody_waiting": (True, "red_blink_slow", False),
    **{k: (True, "red_blink", True) for k in ("conflict", "forbidden", "unreachable", "not_configured", "error")},
}

#: how long a technician's show/led stays before the window's state is shown again (s)
HOLD_S = 10.0
#: margin past a lost request's expires_at before another is sent (clock skew between node and central)
_EXPIRY_MARGIN_S = 2.5


def fit_number(number: str, width: int) -> str:
    """A ticket number for a display ``width`` characters wide: as it is when it fits, else without
    the zeros after its letters (A012 -> A12, as QSystem's "A-12"), else its last digits. QSystem
    cuts to the first three (A012 -> A01), which would tell the clerk nothing."""
    if len(number) <= width:
        return number
    m = re.fullmatch(r"(\D*)0*(\d+)", number)
    if m is None:
        return number[-width:]
    short = m.group(1) + m.group(2)
    return short if len(short) <= width else m.group(2)[-width:]


def check_texts(texts: Any) -> dict[str, str]:
    """The hall's texts (option ``texts``), checked; ValueError says what is wrong."""
    if texts is None:
        return {}
    if not isinstance(texts, Mapping):
        raise ValueError("texts must be a table of state = \"text\"")
    out: dict[str, str] = {}
    for key, text in texts.items():
        if key not in DEFAULT_TEXTS:
            raise ValueError(f"unknown text {key!r}; texts: {', '.join(DEFAULT_TEXTS)}")
        if not isinstance(text, str) or len(text) > 16:
            raise ValueError(f"{key} must be a string of at most 16 characters")
        try:
            text.format(number="A12")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{key}: {text!r} uses an unknown field or bad braces ({exc}); field: {{number}}") from None
        out[key] = text
    return out


class KeypadApp(App):
    """Drives one keypad's presses to central and shows the result on it."""

    name = "keypad"
    kinds = frozenset({"window_keypad"})
    uses_central = True
    options_schema = {
        "type": "object",
        "properties": {
            "window": {"type": "string", "pattern": ID_RE.pattern, "description": "the window this keypad acts on",
                       "x-pattern-hint": "the id of the clerk's window (as in central's config)"},
            "keys": {"type": "object", "additionalProperties": {"type": "string", "enum": list(KEYPAD_FUNCTIONS)},
                     "description": "key name -> function, over QSystem's default 1..4; a key named as a function "
                                    "(a GPIO button) needs no entry"},
            "transfer_queue": {"type": "string", "pattern": ID_RE.pattern,
                               "description": "the queue the transfer key sends the ticket to"},
            "queues": {"type": "array", "items": {"type": "string", "pattern": ID_RE.pattern},
                       "description": "the queues whose waiting tickets an idle keypad shows (default: all)"},
            "texts": {"type": "object", "description": "state or failure -> display text, over the defaults"},
            "display_width": {"type": "integer", "minimum": 1, "maximum": 16, "default": 3,
                              "description": "characters on the keypad's display (its profile's display_width)"},
            "guard_s": {"type": "number", "minimum": 0, "maximum": 10, "default": 1.0,
                        "description": "the same key again this soon after its request succeeded is a double press"},
            "feedback_s": {"type": "number", "minimum": 0.5, "maximum": 60, "default": 3.0,
                           "description": "how long a failure is shown before the window's state again"},
            "request_timeout_s": {"type": "number", "minimum": 0.1, "maximum": 10, "default": 2.0,
                                  "description": "wait for central's answer before sending the request again"},
            "request_attempts": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3,
                                 "description": "sends of one request (same request_id) before 'unreachable'"},
            "refresh_s": {"type": "number", "minimum": 0, "maximum": 3600, "default": 30,
                          "description": "send what the keypad should show again this often (0: never): a keypad "
                                         "that lost power cannot say so"},
        },
        "required": ["window"],
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        o = self.options
        self.window = str(o["window"])
        self.keys = {**DEFAULT_KEYS, **dict(o.get("keys") or {})}
        self.transfer_queue: str | None = o.get("transfer_queue")
        self.queues: list[str] | None = list(o["queues"]) if o.get("queues") else None
        self.texts = {**DEFAULT_TEXTS, **check_texts(o.get("texts"))}
        self.width = int(o.get("display_width", 3))
        self.guard_s = float(o.get("guard_s", 1.0))
        self.feedback_s = float(o.get("feedback_s", 3.0))
        self.request_timeout = float(o.get("request_timeout_s", 2.0))
        self.attempts = int(o.get("request_attempts", 3))
        self.refresh_s = float(o.get("refresh_s", 30))
        #: the window as central last said (retained state, or the answer to our own request)
        self.window_state: dict[str, Any] | None = None
        self.waiting: dict[str, int] = {}
        self._board_known = False
        #: the latest presses and what became of each: (key, "sent" | "busy" | "guard" | "unsure" | "unmapped")
        self.presses: collections.deque[tuple[str, str]] = collections.deque(maxlen=100)
        self.has_display: bool | None = None  # None: not known yet (the first show tells)
        self.has_led: bool | None = None
        self._busy = False
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._last_ok: dict[str, float] = {}
        self._unsure_until = 0.0
        self._feedback: tuple[Output, float] | None = None
        self._beep_due = False
        self._shown_text: tuple[str, bool] | None = None
        self._shown_led: str | None = None
        self._wake = asyncio.Event()
        self._hold = TestHold(self._wake)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        try:
            check_texts(options.get("texts"))
        except ValueError as exc:
            raise SchemaError("texts", str(exc)) from None

    # -- the hall ---------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return [self.ctx.topics.window_state(self.window), self.ctx.topics.board_state]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        parsed = parse(topic)
        if parsed is None:
            return
        before, known = self.look(), self.window_state is not None and self._board_known
        if parsed.kind == "window_state" and parsed.window == self.window:
            self.window_state = dict(doc)
        elif parsed.kind == "board_state" and isinstance(doc.get("waiting"), Mapping):
            self.waiting = {str(q): int(n) for q, n in doc["waiting"].items() if isinstance(n, int)}
            self._board_known = True
        else:
            return
        if known and before == "idle" and self.look() == "waiting":
            # QSystem beeps when the queue fills while the clerk is idle (not when the node starts)
            self._beep_due = True
        self._wake.set()

    def look(self) -> str:
        """The window's state as the keypad shows it: called, serving, paused, closed, waiting, idle."""
        st = self.window_state or {}
        status = (st.get("ticket") or {}).get("status")
        if status in ("called", "serving"):
            return str(status)
        if st.get("state") in ("paused", "closed"):
            return str(st["state"])
        queues = self.queues if self.queues is not None else list(self.waiting)
        return "waiting" if any(self.waiting.get(q, 0) > 0 for q in queues) else "idle"

    def desired(self) -> Output:
        """What the keypad should show now: a failure being shown, else the window's state."""
        loop = asyncio.get_running_loop()
        if self._feedback is not None and loop.time() < self._feedback[1]:
            return self._feedback[0]
        look = self.look()
        number = ((self.window_state or {}).get("ticket") or {}).get("number") or ""
        blink, led, _ = _LOOKS[look]
        return Output(self.texts[look].format(number=fit_number(number, self.width)), blink, led)

    # -- presses ------------------------------------------------------------------------------

    def on_device_event(self, type_: str, data: Mapping[str, Any]) -> None:
        if type_ == "pressed":
            self.press(str(data.get("key", "")))

    def press(self, key: str) -> str:
        """A key was pressed; returns what became of it (see :attr:`presses`)."""
        outcome = self._admit(key)
        self.presses.append((key, outcome))
        if outcome != "sent":
            log.info("window %s: key %r %s", self.window, key, {
                "busy": "ignored: the last press is still with central",
                "guard": f"ignored: pressed again within {self.guard_s:g} s (a double press)",
                "unsure": "not sent: the last request may still reach central",
                "unmapped": "has no function here"}[outcome])
        return outcome

    def _admit(self, key: str) -> str:
        function = self.keys.get(key) or (key if key in KEYPAD_FUNCTIONS else None)
        if function is None:
            return "unmapped"
        now = asyncio.get_running_loop().time()
        if self._busy:
            return "busy"
        if now < self._last_ok.get(key, float("-inf")) + self.guard_s:
            return "guard"
        if now < self._unsure_until:
            self._show_failure("unreachable")
            return "unsure"
        self._busy = True  # until its answer: this is what makes a double press call once
        self._queue.put_nowait((key, function))
        return "sent"

    def request_for(self, function: str) -> tuple[str, dict[str, Any]] | None:
        """The central action and data ``function`` means in the window's state now (None: this
        keypad has no target for it)."""
        st = self.window_state or {}
        status = (st.get("ticket") or {}).get("status")
        data: dict[str, Any] = {"window": self.window}
        if function == "next_or_recall":
            return ("window.recall" if status == "called" else "window.call_next"), data
        if function == "no_show_or_complete":
            return ("window.no_show" if status == "called" else "window.complete"), data
        if function == "pause":
            return ("window.open" if st.get("state") == "paused" else "window.pause"), data
        if function == "transfer":
            if self.transfer_queue is None:
                return None
            return "window.transfer", {**data, "queue": self.transfer_queue}
        return f"window.{function}", data

    async def _handle(self, key: str, function: str) -> None:
        request = self.request_for(function)
        if request is None:
            self._show_failure("not_configured")
            return
        action, data = request
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert self.ctx.request is not None
        try:
            answer = await self.ctx.request(action, data, timeout=self.request_timeout, attempts=self.attempts)
        except HallctlError as exc:
            # central may still get it: not before its expires_at has passed is another one sent
            self._unsure_until = started + self.request_timeout * self.attempts + _EXPIRY_MARGIN_S
            log.warning("window %s: %s got no answer (%s)", self.window, action, exc.message)
            self._show_failure("unreachable")
            return
        if answer.get("status") != "ok":
            error = answer.get("error") or {}
            failure = _ERROR_FEEDBACK.get(str(error.get("code")), "error")
            log.info("window %s: %s refused: %s: %s", self.window, action, error.get("code"), error.get("message"))
            self._show_failure(failure)
            return
        self._last_ok[key] = loop.time()
        self._apply(action, answer.get("data") or {})

    def _apply(self, action: str, data: Mapping[str, Any]) -> None:
        """Central's answer, shown at once (its retained window state follows and agrees)."""
        st = dict(self.window_state or {"window": self.window, "state": "open"})
        if action in ("window.pause", "window.open") and isinstance(data.get("window"), Mapping):
            st["state"] = data["window"].get("state", st.get("state"))
        elif action in ("window.call_next", "window.recall", "window.start"):
            ticket = data.get("ticket")
            st["ticket"] = {k: ticket.get(k) for k in ("number", "queue", "status", "recalls")} if ticket else None
        else:  # complete, no_show, transfer: the ticket has left the window
            st["ticket"] = None
        self.window_state = st
        self._feedback = None
        if action == "window.call_next" and st["ticket"] is None:
            log.info("window %s: %s", self.window, FAILURES["nobody_waiting"])
            self._show_failure("nobody_waiting")
        self._wake.set()

    def _show_failure(self, failure: str) -> None:
        blink, led, beep = _LOOKS[failure]
        loop = asyncio.get_running_loop()
        self._feedback = (Output(self.texts[failure], blink, led), loop.time() + self.feedback_s)
        self._beep_due = self._beep_due or beep
        loop.call_later(self.feedback_s, self._wake.set)
        self._wake.set()

    # -- the device -------------------------------------------------------------------------

    def after_command(self, action: str) -> None:
        self._shown_text = self._shown_led = None
        if action in ("show", "led"):  # a technician's text or LED stays a while
            self._hold.start(HOLD_S)
        else:  # led_test ended blank: put the truth back now
            self._hold.end()
            self._wake.set()

    async def on_up(self) -> None:
        self._shown_text = self._shown_led = None
        self._wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._serve_presses())
            tasks.create_task(self._show_loop())

    async def _serve_presses(self) -> None:
        while True:
            key, function = await self._queue.get()
            try:
                await self._handle(key, function)
            except Exception:  # noqa: BLE001 - the next press must still work
                log.exception("window %s: key %r failed", self.window, key)
                self._show_failure("error")
            finally:
                self._busy = False

    async def _show_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.refresh_s or None):
                    await self._wake.wait()
            except TimeoutError:  # nothing changed for a while: send it again all the same
                self._shown_text = self._shown_led = None
            self._wake.clear()
            if self._hold.active:
                continue
            out = self.desired()
            try:
                await self._show(out)
            except HallctlError as exc:  # the worker reports the device; on_up re-applies
                log.debug("window %s keypad not updated: %s", self.window, exc.code)

    async def _show(self, out: Output) -> None:
        if self.has_display is not False and (out.text, out.blink) != self._shown_text:
            if await self._try("show", {"text": out.text, "blink": out.blink}, "has_display"):
                self._shown_text = (out.text, out.blink)
        beep = self._beep_due
        if self.has_led is not False and (out.led != self._shown_led or beep):
            if await self._try("led", {"state": out.led, "beep": beep}, "has_led"):
                self._shown_led, self._beep_due = out.led, False

    async def _try(self, action: str, args: dict[str, Any], flag: str) -> bool:
        """Run ``action``; a keypad without it (UnknownCommand) is remembered and not asked again."""
        try:
            await self.ctx.submit(action, args)
        except UnknownCommand:
            setattr(self, flag, False)
            return False
        setattr(self, flag, True)
        return True
