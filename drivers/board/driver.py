"""The call board driver: content in, frames out to a framebuffer, PNG files and a web page.

``show`` renders the board (:mod:`.render`, in a thread) and hands the frame to every output; it
answers once the frame is out, with the calls that fit and when the frame finished rendering.
The driver also runs the motion, so the app sends one ``show`` per change and the outputs get
what each can use:

* a highlighted call that is new (its number, window or ``at`` differ from the last one lit)
  flashes for ``flash_s`` (lit and dark phases; the framebuffer and the web page get each
  phase, PNG files only the settled frame);
* a notice line longer than the board scrolls: on the framebuffer the driver redraws its strip
  ``scroll_fps`` times a second (only those rows are written), on the web page CSS moves it.

Why here and not in the app: the flash and the scroll are how a picture is shown, the same for
whatever drives the board (the app, or a technician's ``show`` from ``hallctl diag``), and only
the driver knows which output can take which frames.

:attr:`CallBoardDriver.history` keeps the last renders (frame, calls shown, monotonic time the
frame finished rendering) for the benchmark.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from hallctl.errors import ConfigError, DeviceError, HallctlError, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.board.framebuffer import FramebufferOutput
from hallctl_drivers.board.layout import Layout
from hallctl_drivers.board.png import PngOutput
from hallctl_drivers.board.render import Notice, render_blank, render_board, render_notice, render_test_pattern
from hallctl_drivers.board.schemas import OPTIONS_SCHEMA, OUTPUTS, SETTINGS_SCHEMA

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from hallctl_drivers.board.web import WebOutput

log = logging.getLogger("hallctl_drivers.board")

#: renders remembered for the benchmark
HISTORY = 256


@dataclass(frozen=True)
class RenderRecord:
    frame: int
    calls: tuple[str, ...]
    #: time.monotonic() when the frame finished rendering (before it went to the outputs)
    rendered_at: float


class CallBoardDriver(Driver):
    """A call board: a TV on the Pi's HDMI (framebuffer), an LED matrix behind an HDMI sending
    card (a window of the framebuffer), a TV's browser (web page), or PNG files.

    Settings (profile): model, width, height, style, font_path, font_index, flash_s,
    flash_period_s, scroll_px_s, scroll_fps. Options (node config): one output at least of
    ``framebuffer`` (+ fb_* geometry when sysfs has none, fb_x/fb_y, rotate), ``png_dir`` (+
    png_mode, png_keep), ``http_port`` (+ http_listen); width/height/style/font_path/flash_s
    over the profile's.
    """

    kind: ClassVar[str] = "call_board"
    features: ClassVar[frozenset[str]] = frozenset()
    #: a probe reads the framebuffer back (something drawn over the board shows within this)
    probe_interval_s: ClassVar[float] = 5.0
    settings_schema = SETTINGS_SCHEMA
    options_schema = OPTIONS_SCHEMA

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None) -> None:
        super().__init__(settings, options, features=features)
        s, o = self.settings, self.options
        if not any(o.get(k) is not None for k in OUTPUTS):
            raise ConfigError("a board needs an output: framebuffer, png_dir or http_port", key="options.framebuffer")
        try:
            self.layout = Layout(o.get("width", s["width"]), o.get("height", s["height"]), o.get("style", s["style"]),
                                 o.get("font_path", s["font_path"]), s.get("font_index"))
        except ValueError as exc:
            raise ConfigError(str(exc), key="options.width") from None
        self.flash_s = float(o.get("flash_s", s["flash_s"]))
        self.flash_period_s = float(s["flash_period_s"])
        self.scroll_px_s = float(s["scroll_px_s"]) * self.layout.unit if self.layout.style != "led" else 0.0
        self.scroll_fps = int(s["scroll_fps"])
        self.fb: FramebufferOutput | None = None
        if o.get("framebuffer"):
            geometry = {k: o.get(k) for k in ("fb_width", "fb_height", "fb_bpp", "fb_stride")}
            self.fb = FramebufferOutput(o["framebuffer"], sysfs=o.get("fb_sysfs"), x=o["fb_x"], y=o["fb_y"],
                                        rotate=o["rotate"], overrides=geometry)
        self.png = PngOutput(o["png_dir"], o["png_mode"], o["png_keep"]) if o.get("png_dir") else None
        self.web: WebOutput | None = None
        self.history: collections.deque[RenderRecord] = collections.deque(maxlen=HISTORY)
        self.frame = 0
        self._content: dict[str, Any] | None = None  # what the board shows (None: a test pattern, blank)
        self._lit_key: tuple[str, str, str] | None = None  # the last call that flashed
        self._view: dict[str, Any] = {}
        self._lock = asyncio.Lock()  # one frame at a time to the outputs, in order
        self._motion: asyncio.Task[None] | None = None
        self._motion_stop = asyncio.Event()
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._check_font)
            if self.fb is not None:
                await asyncio.to_thread(self.fb.open, self.layout.size)
            if self.png is not None:
                await asyncio.to_thread(self.png.open)
            if self.options.get("http_port") is not None:
                from hallctl_drivers.board.web import WebOutput  # aiohttp only for a board with a page

                self.web = WebOutput(self.options["http_listen"], self.options["http_port"])
                try:
                    await self.web.start()
                except OSError as exc:
                    raise DeviceError(f"cannot serve the board page on port {self.options['http_port']}: {exc}") from None
            self._started = True
            self._content, self._lit_key = None, None
            await self._show_still(render_blank(self.layout), {})
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._started = False
        await self._stop_motion()
        if self.web is not None:
            web, self.web = self.web, None
            await web.stop()
        if self.fb is not None:
            await asyncio.to_thread(self.fb.close)

    def _check_font(self) -> None:
        from hallctl_drivers.board.render import font

        try:
            font(self.layout.font_path, 24, self.layout.font_index or 0)
        except OSError as exc:
            raise DeviceError(f"cannot read the font {self.layout.font_path}: {exc} (apt install fonts-wqy-zenhei)") from None

    async def probe(self) -> ProbeResult:
        if not self._started:
            return ProbeResult(Health.FAULT, "not started")
        detail: dict[str, Any] = {"outputs": self.describe_outputs(), "frames": self.frame}
        reason = ""
        if self.fb is not None:
            async with self._lock:
                try:
                    reason = await asyncio.to_thread(self.fb.check)
                except HallctlError as exc:
                    return ProbeResult(Health.FAULT, exc.message, detail)
            detail["repaired"] = self.fb.repaired
        if self.png is not None and not await asyncio.to_thread(self.png.writable):
            return ProbeResult(Health.FAULT, f"cannot write {self.png.directory}", detail)
        if self.web is not None:
            if not self.web.running():
                return ProbeResult(Health.FAULT, "the board page is not served", detail)
            detail["web_clients"] = self.web.clients
        if reason:
            return ProbeResult(Health.DEGRADED, reason, detail)
        return ProbeResult(Health.OK, "drawing", detail)

    def describe_outputs(self) -> list[str]:
        return [o.describe() for o in (self.fb, self.png, self.web) if o is not None]

    # -- actions ----------------------------------------------------------------------------
    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if not self._started:
            raise DeviceError("the board is not started")
        if action == "show":
            return await self._show(dict(args))
        if action == "test_pattern":
            w, h = self.layout.size
            caption = [self.settings["model"], f"{w}x{h} {self.layout.style}", *self.describe_outputs()]
            image = await asyncio.to_thread(render_test_pattern, self.layout, caption)
            self._content = None
            return await self._show_still(image, {})
        if action == "clear":
            self._content = None
            return await self._show_still(render_blank(self.layout), {})
        raise UnknownCommand(f"a call board has no action {action!r}")

    async def _show(self, content: dict[str, Any]) -> dict[str, Any]:
        if content == self._content and self.history:
            last = self.history[-1]
            return {"frame": self.frame, "calls_shown": list(last.calls), "rendered_at_monotonic": last.rendered_at,
                    "changed": False}
        rendered = await asyncio.to_thread(render_board, content, self.layout, lit=True)
        rendered_at = time.monotonic()
        await self._stop_motion()
        self._content = content
        view = {"notice": rendered.notice.to_dict() if rendered.notice else None,
                "scroll_px_s": self.scroll_px_s, "lost": (content.get("labels") or {}).get("lost", "")}
        lit = _lit_call(content) if rendered.lit else None
        flash = lit is not None and lit != self._lit_key and self.flash_s > 0
        if lit is not None:
            self._lit_key = lit
        async with self._lock:
            self.frame += 1
            self.history.append(RenderRecord(self.frame, tuple(rendered.calls_shown), rendered_at))
            await self._put(rendered.image, view, settled=True)
        self._view = view
        scroll = self.fb is not None and rendered.notice is not None and rendered.notice.scrolls and self.scroll_px_s > 0
        if flash or scroll:
            self._motion_stop = asyncio.Event()
            self._motion = asyncio.create_task(self._move(content, rendered.image, rendered.notice if scroll else None,
                                                          self.flash_s if flash else 0.0, self._motion_stop),
                                               name="board-motion")
        return {"frame": self.frame, "calls_shown": rendered.calls_shown, "rendered_at_monotonic": rendered_at,
                "changed": True, "flashing": flash}

    async def _show_still(self, image: "PILImage.Image", view: dict[str, Any]) -> dict[str, Any]:
        await self._stop_motion()
        async with self._lock:
            self.frame += 1
            await self._put(image, view, settled=True)
        self._view = view
        return {"frame": self.frame}

    async def _put(self, image: "PILImage.Image", view: dict[str, Any], *, settled: bool) -> None:
        """One frame to the outputs that take it (the caller holds the lock). ``settled``: the
        board as it stays (PNG files get only these)."""
        fb, png = self.fb, self.png if settled else None
        if fb is not None or png is not None:
            await asyncio.to_thread(self._write_files, image, fb, png)
        if self.web is not None:
            self.web.publish(image, view)

    @staticmethod
    def _write_files(image: "PILImage.Image", fb: FramebufferOutput | None, png: PngOutput | None) -> None:
        if fb is not None:
            fb.write(image)
        if png is not None:
            png.write(image)

    # -- motion: the flash of a new call, the scrolling notice ---------------------------------
    async def _move(self, content: dict[str, Any], lit: "PILImage.Image", notice: Notice | None, flash_s: float,
                    stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set (never cancelled: a write in its thread would go on after a
        cancellation and race the next frame's)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # the dark phase is drawn when first due, half a period on: a flash that the next call
        # ends before then (a burst of calls) costs no render, and the next call's render has the CPU
        dark: "PILImage.Image | None" = None if flash_s else lit
        half = self.flash_period_s / 2
        step = 1 / self.scroll_fps if notice is not None else half
        phase_shown = 0
        strip_at: int | None = None
        try:
            while not stop.is_set():
                now = loop.time() - t0
                flashing = now < flash_s
                phase = int(now / half) % 2 if flashing else 0  # 0 lit, 1 dark; it ends lit
                offset = int(now * self.scroll_px_s) if notice is not None else 0
                async with self._lock:
                    if stop.is_set():
                        return
                    if phase != phase_shown:
                        if phase and dark is None:
                            dark = (await asyncio.to_thread(render_board, content, self.layout, lit=False)).image
                        base = dark if phase else lit
                        if notice is not None:
                            base = base.copy()
                            base.paste(render_notice(notice, self.layout, offset), notice.box[:2])
                            strip_at = offset
                        await self._put(base, self._view, settled=False)
                        phase_shown = phase
                    if notice is not None and offset != strip_at:
                        await asyncio.to_thread(self._scroll_step, notice, offset)
                        strip_at = offset
                if not flashing and notice is None:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(step - (loop.time() - t0) % step):
                        await stop.wait()
        except HallctlError as exc:  # the next probe finds the output broken and the worker restarts it
            log.debug("board motion stopped: %s", exc.message)
        except Exception:  # noqa: BLE001 - a bug here must not take the board down; the frame stays
            log.exception("board motion failed")

    def _scroll_step(self, notice: Notice, offset: int) -> None:
        assert self.fb is not None
        self.fb.paste(render_notice(notice, self.layout, offset), notice.box[:2], self.layout.size)

    async def _stop_motion(self) -> None:
        task, self._motion = self._motion, None
        if task is not None:
            self._motion_stop.set()
            await task


def _lit_call(content: Mapping[str, Any]) -> tuple[str, str, str] | None:
    for call in content.get("calls") or ():
        if call.get("highlight"):
            return (str(call.get("number", "")), str(call.get("window_name", "")), str(call.get("at", "")))
    return None
