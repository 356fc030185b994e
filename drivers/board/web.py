"""The board as a web page for a TV's browser, served by the node itself (aiohttp, in its loop).

    GET /               the page (static/index.html: no framework, no internet)
    GET /frame.png      the board as it is now (PNG, encoded once per frame, on first request)
    GET /api/view       what the page needs besides the picture (JSON): frame, size, the notice
                        line to scroll, the text to show when the page loses the node
    GET /api/events     the view on every new frame (server-sent events), and a ``ping`` event
                        every few seconds, so the page can tell a dead connection from a quiet board

The page never reloads: it swaps the picture when an event says there is a new frame, and says
plainly when the node stops answering (it keeps retrying and clears that when the node is back).
It listens on every address by default (the TV is another machine on the hall's network); the
board shows nothing that is not on the hall's open topics.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from PIL import Image as PILImage

STATIC = Path(__file__).with_name("static")
#: how often an idle event stream says something; the page counts the node lost after 2.5 of these
PING_S = 4.0
#: how soon a page that lost the node tries again (the browser's own default is about 3 s)
RETRY_MS = 1000


class WebOutput:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        #: a new value every start: a page that reconnects to a restarted node fetches its picture
        self.boot = secrets.token_hex(4)
        self.version = 0
        self.view: dict[str, Any] = {}
        self.clients = 0
        self._image: "PILImage.Image | None" = None
        self._png: tuple[int, bytes] | None = None
        self._png_lock = asyncio.Lock()
        self._tick = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/"

    def describe(self) -> str:
        return f"web page on {self.host}:{self.port}"

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/frame.png", self._frame)
        app.router.add_get("/api/view", self._view)
        app.router.add_get("/api/events", self._events)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # any free port: the one we got
            server = site._server  # noqa: SLF001 - aiohttp has no public accessor for it
            assert server is not None and server.sockets
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def running(self) -> bool:
        return self._runner is not None

    def publish(self, image: "PILImage.Image", view: dict[str, Any]) -> None:
        """A new frame: every open page is told at once."""
        self.version += 1
        self._image = image
        self.view = {**view, "frame": self.version, "boot": self.boot,
                     "width": image.width, "height": image.height}
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    # -- handlers ---------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _view(self, request: web.Request) -> web.Response:
        return web.json_response(self.view, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def _frame(self, request: web.Request) -> web.Response:
        async with self._png_lock:  # one encoding per frame, however many TVs ask
            if self._image is None:
                raise web.HTTPNotFound(text="no frame yet")
            version, image = self.version, self._image
            if self._png is None or self._png[0] != version:
                self._png = (version, await asyncio.to_thread(_encode, image))
            body = self._png[1]
        return web.Response(body=body, content_type="image/png",
                            headers={"Cache-Control": "no-store", "X-Frame": str(version)})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        self.clients += 1
        seen = -1
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            while True:
                if self.version != seen and self.view:
                    seen = self.version
                    await resp.write(f"data: {_dumps(self.view)}\n\n".encode())
                else:
                    await resp.write(b"event: ping\ndata: {}\n\n")
                tick = self._tick
                if self.version == seen:
                    try:
                        async with asyncio.timeout(PING_S):
                            await tick.wait()
                    except TimeoutError:
                        pass
        except ConnectionResetError:  # the page was closed or reloaded: nothing to report
            return resp
        finally:
            self.clients -= 1


def _encode(image: "PILImage.Image") -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)
