"""The kiosk page's HTTP server (aiohttp, in the node's event loop): the static page, the texts,
the current screen, touches, and server-sent events so the page changes as soon as the hall does
(a printer fault, the hall closing, a ticket printed).

    GET  /                the page (static/index.html; no internet, no framework)
    GET  /static/<file>   its CSS and JS
    GET  /api/texts       the hall's texts (templates), for the page to fill in
    GET  /api/view        the screen now (JSON)
    POST /api/press       a touch, {"do": "queue", "id": "a"}; answers the new screen
    GET  /api/events      the screen on every change (text/event-stream)

It listens on 127.0.0.1 by default: the kiosk's own Chromium is its only client. A touch is
answered without waiting for central or the printer; the outcome comes as an event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from hallctl.apps.kiosk.app import KioskApp

STATIC = Path(__file__).with_name("static")
#: an idle event stream says something this often, so a dead page connection is noticed
KEEPALIVE_S = 15.0
MAX_BODY = 4096


class KioskServer:
    def __init__(self, app: "KioskApp", host: str, port: int) -> None:
        self.kiosk, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/texts", self._texts)
        app.router.add_get("/api/view", self._view)
        app.router.add_post("/api/press", self._press)
        app.router.add_get("/api/events", self._events)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # any free port: the one we got
            server = site._server  # noqa: SLF001 - aiohttp has no public accessor for it
            assert server is not None and server.sockets
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _texts(self, request: web.Request) -> web.Response:
        texts = {k: v for k, v in self.kiosk.texts.items() if k in ("screen", "status")}
        return web.json_response(texts, dumps=_dumps)

    async def _view(self, request: web.Request) -> web.Response:
        return web.json_response(self.kiosk.view(), dumps=_dumps)

    async def _press(self, request: web.Request) -> web.Response:
        try:
            action = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="a JSON object, e.g. {\"do\": \"home\"}") from None
        if not isinstance(action, dict) or not isinstance(action.get("do"), str):
            raise web.HTTPBadRequest(text="a JSON object with \"do\"")
        return web.json_response(self.kiosk.press(action), dumps=_dumps)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        seen = -1
        try:
            while True:
                view = self.kiosk.view()
                if view["version"] != seen:
                    seen = view["version"]
                    await resp.write(f"data: {_dumps(view)}\n\n".encode())
                else:
                    await resp.write(b": keepalive\n\n")
                await self.kiosk.wait_change(seen, KEEPALIVE_S)
        except ConnectionResetError:  # the page was closed or reloaded: nothing to report
            return resp


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)
