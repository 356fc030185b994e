"""The kiosk app (取号机): a touchscreen page served by the kiosk's node, tickets printed on the
node's ticket printer and counted by central only once they are on paper.

One ticket at a time: ``ticket.issue`` with ``confirm: "print"`` (central numbers it, pending),
the printer's ``print`` (answered only when the printer processed it and its status after is
fine), then ``ticket.confirm``; a failed print is ``ticket.void`` with the reason, and the screen
says the number will not be called. Central unreachable: nothing is issued (the request carries
``expires_at``, so a late one is never executed) and the screen says so plainly.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.apps.kiosk.flow import Effect, Issue, KioskFlow, Lookup
from hallctl.apps.kiosk.layout import ticket_blocks
from hallctl.apps.kiosk.pin import PIN_HASH_HINT, PIN_HASH_RE
from hallctl.apps.kiosk.server import KioskServer
from hallctl.apps.kiosk.templates import TemplateError, load_texts
from hallctl.bus.topics import parse
from hallctl.errors import HallctlError
from hallctl_drivers.schema import SchemaError

log = logging.getLogger("hallctl.apps.kiosk")

#: the kind of a node's ID card reader (its issue is still to come); it reports ``card_read``
ID_READER_KIND = "id_reader"
#: a buttons-only kiosk's buttons
BUTTON_PANEL_KIND = "button_panel"
#: how often the panel's lamps are set again though nothing changed (s)
LAMPS_REFRESH_S = 30.0


def void_reason(exc: HallctlError) -> str:
    """Why a print failed, as ``ticket.void`` names it."""
    status = exc.detail.get("status") if isinstance(exc.detail.get("status"), Mapping) else {}
    if status.get("paper_end"):
        return "paper_out"
    if status.get("cover_open"):
        return "cover_open"
    if status.get("cutter_error"):
        return "cutter_jam"
    if exc.code in ("device_offline", "timeout"):
        return "printer_offline"
    return "print_failed"


class KioskApp(App):
    name = "kiosk"
    kinds = frozenset({"ticket_printer"})
    uses_central = True
    options_schema = {
        "type": "object",
        "properties": {
            "listen": {"type": "string", "minLength": 1, "default": "127.0.0.1",
                       "description": "address the page is served on (127.0.0.1: the kiosk's own Chromium only)"},
            "http_port": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 8080,
                          "description": "port of the page (0: any free one, for tests)"},
            "templates_file": {"type": "string", "minLength": 1,
                               "description": "the hall's texts (TOML), over the shipped Chinese defaults"},
            "next_kiosk": {"type": "string", "minLength": 1, "maxLength": 64,
                           "description": "where the next kiosk is, shown when this one is out of service"},
            "id_reader": {"type": "string", "minLength": 1,
                          "description": "the id of this node's ID card reader device (card_read events)"},
            "ticket_timeout_s": {"type": "number", "minimum": 1, "maximum": 50, "default": 20,
                                "description": "give up on a print after this long (shorter than central's print_confirm_s)"},
            "buttons": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                        "description": "a buttons-only kiosk: button name -> the queue (category) it issues; "
                                       "the buttons are this node's button_panel device"},
            "button_panel": {"type": "string", "minLength": 1,
                             "description": "the id of this node's button panel (default: its button_panel device)"},
            "green_pin_sha256": {"type": "string", "pattern": PIN_HASH_RE.pattern, "x-pattern-hint": PIN_HASH_HINT,
                                 "description": "the staff PIN that confirms a green-channel ticket, as "
                                                "salt$sha256(salt+PIN); none: no 绿色通道 button here"},
        },
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.texts = load_texts(options.get("templates_file"))
        self.flow = KioskFlow(next_kiosk=options.get("next_kiosk"), places=self.texts.get("where"),
                              grounds=self.texts.get("grounds"), green_pin=options.get("green_pin_sha256"))
        self.ticket_timeout = float(options.get("ticket_timeout_s", 20))
        self.server = KioskServer(self, options.get("listen", "127.0.0.1"), int(options.get("http_port", 8080)))
        self._effects: asyncio.Queue[Effect] = asyncio.Queue(maxsize=1)
        #: button name -> queue id, and the panel device lit to match (buttons-only kiosk)
        self.buttons: dict[str, str] = dict(options.get("buttons") or {})
        self.panel: str | None = options.get("button_panel")
        self._lamps_wanted: tuple[list[str], list[str]] | None = None
        self._lamps_shown: tuple[list[str], list[str]] | None = None
        self._lamps_wake = asyncio.Event()
        #: set (and replaced) at every change of the view: the page's event streams wait on it
        self._tick = asyncio.Event()
        self.version = 0

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        try:
            load_texts(options.get("templates_file"))
        except TemplateError as exc:
            key = "templates_file" if exc.key == "templates_file" else f"templates_file: {exc.key}"
            raise SchemaError(key, exc.problem) from None
        if options.get("buttons") and not options.get("button_panel"):
            raise SchemaError("button_panel", "a buttons-only kiosk names its button panel device "
                                              "(button_panel = \"buttons\")")

    @classmethod
    def claim(cls, options: Mapping[str, Any]) -> str:
        return f"the kiosk page on {options.get('listen', '127.0.0.1')}:{options.get('http_port', 8080)}"

    @property
    def url(self) -> str:
        return self.server.url

    # -- the hall ---------------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        return [self.ctx.topics.central_catalogue, self.ctx.topics.central_status]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        parsed = parse(topic)
        if parsed is None:
            return
        if parsed.kind == "central_catalogue":
            self.flow.on_catalogue(doc)
        elif parsed.kind == "central_status":
            self.flow.on_central_status(doc.get("state") == "online")
        self.changed()

    def on_device_state(self, state: Mapping[str, Any]) -> None:
        self.flow.on_printer(state)
        self.changed()

    def on_node_event(self, device: str, kind: str | None, type_: str, data: Mapping[str, Any]) -> None:
        if type_ == "pressed" and kind == BUTTON_PANEL_KIND and self.buttons:
            if device == self.panel:
                self.on_button(str(data.get("button", "")))
            return
        if type_ == "card_read" and (kind == ID_READER_KIND or device == self.options.get("id_reader")):
            if self.flow.on_card(data):  # never log the card's fields
                log.info("ID card read: birth date taken for the ticket being issued")
                self.changed()

    def on_button(self, button: str) -> None:
        """A button of the buttons-only kiosk: its category's ticket, printed, no SMS."""
        queue = self.buttons.get(button)
        effect = self.flow.button(queue) if queue is not None else None
        if effect is None:
            log.info("button %s: no ticket now (%s)", button, self.flow.blocker() or self.flow.shown)
            return
        try:
            self._effects.put_nowait(effect)
        except asyncio.QueueFull:  # one ticket at a time
            return
        self.changed()

    async def _follow_lamps(self) -> None:
        """Keep the panel's lamps as the flow says (a lamp lit: that category can be issued)."""
        while True:
            try:  # and again now and then: a panel that restarted has every lamp dark
                async with asyncio.timeout(LAMPS_REFRESH_S):
                    await self._lamps_wake.wait()
            except TimeoutError:
                self._lamps_shown = None
            self._lamps_wake.clear()
            wanted = self._lamps_wanted
            if wanted is None or wanted == self._lamps_shown or self.panel is None or self.ctx.submit_to is None:
                continue
            try:
                await self.ctx.submit_to(self.panel, "lamps", {"on": wanted[0], "blink": wanted[1]})
                self._lamps_shown = wanted
            except HallctlError as exc:  # the panel's worker reports it; its next state change retries
                log.debug("lamps not set: %s", exc.code)

    # -- the page ---------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        return {**self.flow.view(), "version": self.version}

    def press(self, action: Mapping[str, Any]) -> dict[str, Any]:
        """A touch on the page; what it asks of central runs in :meth:`run`, one at a time."""
        if self.flow.shown == "issuing":
            return self.view()
        failures = self.flow.pin_failures
        effect = self.flow.press(action)
        if self.flow.pin_failures > failures:  # never the digits typed
            log.warning("green channel: a wrong staff PIN at this kiosk (%d since start)", self.flow.pin_failures)
        if effect is not None:
            try:
                self._effects.put_nowait(effect)
            except asyncio.QueueFull:  # one request at a time; a second tap is not a second ticket
                pass
        self.changed()
        return self.view()

    def changed(self) -> None:
        if self.buttons:
            self._lamps_wanted = self.flow.lamps(self.buttons)
            self._lamps_wake.set()
        self.version += 1
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def wait_change(self, seen: int, timeout: float) -> None:
        """Until the view is newer than ``seen`` (or ``timeout``)."""
        if self.version > seen:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._tick.wait()
        except TimeoutError:
            pass

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.server.start()
        log.info("kiosk page on %s", self.server.url)

    async def stop(self) -> None:
        await self.server.stop()

    async def run(self) -> None:
        if self.buttons:
            lamps = asyncio.create_task(self._follow_lamps(), name="kiosk lamps")
            try:
                await self._serve()
            finally:
                lamps.cancel()
                await asyncio.gather(lamps, return_exceptions=True)
        else:
            await self._serve()

    async def _serve(self) -> None:
        while True:
            effect = await self._effects.get()
            try:
                if isinstance(effect, Issue):
                    await self._issue(effect.data)
                elif isinstance(effect, Lookup):
                    await self._lookup(effect.ticket)
            except Exception:  # noqa: BLE001 - the kiosk keeps serving the next citizen
                log.exception("kiosk request failed")
                self.flow.refused("internal", "内部错误")
            self.changed()

    # -- a ticket ---------------------------------------------------------------------------
    async def _central(self, action: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Central's answer, or None when it did not answer (then it will not act on it either)."""
        assert self.ctx.request is not None
        try:
            return await self.ctx.request(action, data)
        except HallctlError as exc:
            log.warning("central did not answer %s: %s", action, exc.message)
            return None

    async def _issue(self, data: dict[str, Any]) -> None:
        answer = await self._central("ticket.issue", data)
        if answer is None:
            self.flow.unreachable()
            return
        if answer.get("status") != "ok":
            err = answer.get("error") or {}
            self.flow.refused(str(err.get("code")), str(err.get("message", "")), err.get("detail"))
            return
        issued = answer["data"]
        ticket = issued["ticket"]
        cat = self.flow.catalogue or {}
        queue = next((q for q in cat.get("queues", []) if q["id"] == ticket["queue"]), {"name": ticket["queue"]})
        matter = next((m for m in cat.get("matters", []) if m["id"] == ticket.get("matter")), None)
        blocks = ticket_blocks(issued, self.texts, hall_name=(cat.get("hall") or {}).get("name") or "",
                               queue_name=queue["name"], matter_name=matter["name"] if matter else None,
                               where=self.flow.where_of(ticket["queue"]), now=datetime.now().astimezone())
        try:
            async with asyncio.timeout(self.ticket_timeout):
                await self.ctx.submit("print", {"blocks": blocks})
        except (HallctlError, TimeoutError) as exc:
            reason = void_reason(exc) if isinstance(exc, HallctlError) else "print_failed"
            log.warning("ticket %s not printed (%s): voiding it", ticket["number"], reason)
            await self._central("ticket.void", {"ticket": ticket["id"], "reason": reason})
            self.flow.print_failed(ticket["number"])
            return
        confirmed = await self._central("ticket.confirm", {"ticket": ticket["id"]})
        if confirmed is None or confirmed.get("status") != "ok":
            # on paper, but central will not call it: the citizen must hear that, not a number to wait for
            log.error("ticket %s printed but not confirmed: %s", ticket["number"],
                      "no answer" if confirmed is None else confirmed.get("error"))
            self.flow.print_failed(ticket["number"], on_paper=True)
            return
        if self.flow.issued(issued) is not None:
            # the ground is no one's business but the hall's statistics: counts only, no number
            log.info("green-channel ticket on a staff member's confirmation; per ground since start: %s",
                     ", ".join(f"{g} {n}" for g, n in sorted(self.flow.green_counts.items())))

    async def _lookup(self, number: str) -> None:
        answer = await self._central("ticket.status", {"ticket": number})
        if answer is None:
            self.flow.unreachable()
        else:
            self.flow.looked_up(answer["data"] if answer.get("status") == "ok" else None)
