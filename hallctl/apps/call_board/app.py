"""The call board app: the hall's retained state -> one ``call_board`` device.

It follows ``board/state``, ``central/catalogue`` and ``central/status`` (all retained, so a board
that starts, or a node that reconnects, has the truth at once without asking anyone) and the
node's broker link (:meth:`on_link`). Every change rebuilds the content (:mod:`.content`); the
board is drawn again only when the content differs from what it shows. Pushes are coalesced: a
burst of calls draws the newest state, not every step. When the device (re)starts, what it
should show is drawn again, so the board never needs a manual refresh.

Central offline (its will on ``central/status``) or the node's broker connection gone: the board
says so in its banner, over the last calls it had, so nobody takes a frozen board for a quiet hall.

:attr:`CallBoardApp.renders` keeps the last frames drawn (calls shown, monotonic time each
finished rendering) for the benchmark.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from hallctl.apps.base import App, AppContext
from hallctl.apps.hold import HOLD_S, TestHold
from hallctl.apps.call_board.content import HallView, TemplateError, build, check_templates
from hallctl.bus.topics import parse
from hallctl.errors import HallctlError
from hallctl.ids import ID_RE
from hallctl_drivers.schema import SchemaError

log = logging.getLogger("hallctl.apps.call_board")

RENDERS_KEPT = 256


@dataclass(frozen=True)
class BoardRender:
    frame: int
    calls: tuple[str, ...]
    #: time.monotonic() when the driver finished rendering the frame
    rendered_at: float


class CallBoardApp(App):
    name = "call_board"
    kinds = frozenset({"call_board"})
    options_schema = {
        "type": "object",
        "properties": {
            "templates": {"type": "object", "description": "the board's texts over the Chinese defaults "
                                                          "(title, call, col_*, wait*, hours, notice, central_offline, "
                                                          "link_lost, page_lost)"},
            "queues": {"type": "array", "maxItems": 16,
                       "items": {"type": "string", "pattern": ID_RE.pattern, "x-pattern-hint": "a queue id"},
                       "description": "the sections whose waiting this board shows, in this order (default: all)"},
        },
        "additionalProperties": False,
    }

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        super().__init__(ctx, options)
        self.templates = check_templates(options.get("templates"))
        self.queues = list(options.get("queues") or []) or None
        self.view = HallView()
        self.desired: dict[str, Any] | None = None
        self.shown: dict[str, Any] | None = None
        self.renders: collections.deque[BoardRender] = collections.deque(maxlen=RENDERS_KEPT)
        self._wake = asyncio.Event()
        self._hold = TestHold(self._wake)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        try:
            check_templates(options.get("templates"))
        except TemplateError as exc:
            raise SchemaError(exc.key, exc.problem) from None

    # -- the hall ---------------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        t = self.ctx.topics
        return [t.board_state, t.central_catalogue, t.central_status]

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        parsed = parse(topic)
        if parsed is None:
            return
        if parsed.kind == "board_state":
            self.view.board = doc
        elif parsed.kind == "central_catalogue":
            self.view.catalogue = doc
        elif parsed.kind == "central_status":
            self.view.central_online = doc.get("state") == "online"
        else:
            return
        self.refresh()

    def on_link(self, connected: bool) -> None:
        self.view.link_up = connected
        self.refresh()

    def refresh(self) -> None:
        content = build(self.view, self.templates, self.queues)
        if content != self.desired:
            self.desired = content
            self._hold.end()  # the hall's board beats a technician's test pattern
            self._wake.set()

    # -- the device -------------------------------------------------------------------------
    def after_command(self, action: str) -> None:
        if action in ("show", "test_pattern", "clear"):
            self.hold()

    def hold(self, seconds: float | None = None) -> None:
        """Someone else drew on the board (diagnostics): leave it for ``seconds`` (default
        :data:`HOLD_S`), then draw the hall's board again."""
        self.shown = None
        self._hold.start(HOLD_S if seconds is None else seconds)

    async def on_up(self) -> None:
        self.shown = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._hold.active:
                continue
            content = self.desired
            if content is None or content == self.shown:
                continue
            try:
                answer = await self.ctx.submit("show", content)
            except HallctlError as exc:
                # the supervisor reports the device's state and calls on_up when it is back
                log.debug("board not drawn: %s", exc.code)
                continue
            self.shown = content
            if answer.get("changed", True) and "rendered_at_monotonic" in answer:
                self.renders.append(BoardRender(int(answer.get("frame", 0)), tuple(answer.get("calls_shown", ())),
                                                float(answer["rendered_at_monotonic"])))
