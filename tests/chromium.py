"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol with aiohttp's
websocket client: enough to load a page, click what a citizen would touch and read the DOM."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]


class Tab:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        mid = next(self._ids)
        await self.ws.send_json({"id": mid, "method": method, "params": params})
        async for msg in self.ws:
            doc = json.loads(msg.data)
            if doc.get("id") == mid:
                if "error" in doc:
                    raise RuntimeError(f"{method}: {doc['error']}")
                return doc["result"]
        raise RuntimeError("DevTools connection closed")

    async def eval(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait(self, expression: str, timeout: float = 15.0) -> Any:
        """Until ``expression`` is truthy in the page; its value."""
        async with asyncio.timeout(timeout):
            while not (value := await self.eval(expression)):
                await asyncio.sleep(0.05)
        return value

    async def wait_screen(self, name: str, timeout: float = 15.0) -> None:
        # the page may still be loading (no #screen yet)
        await self.wait(f"document.getElementById('screen')?.dataset.screen === {json.dumps(name)}", timeout)

    async def touch(self, selector: str) -> None:
        """Click the element as a finger would: a real input event at its centre."""
        box = await self.wait(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                              " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


@contextlib.asynccontextmanager
async def chromium(url: str, width: int = 1080, height: int = 1920) -> AsyncIterator[Tab]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed (scripts/test installs it)"
    # Chromium's helpers (zygote, renderers, crashpad) may still write the profile while the main
    # process exits: they run in its own process group, ended together, and a file they leave
    # behind in the temp profile is no failure of the test
    with tempfile.TemporaryDirectory(prefix="hallctl-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            async with asyncio.timeout(30):
                while not port_file.exists() or not port_file.read_text().strip():
                    await asyncio.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as http:
                async with asyncio.timeout(30):
                    while True:
                        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                            pages = [p for p in await r.json() if p.get("type") == "page"]
                        if pages:
                            break
                        await asyncio.sleep(0.05)
                async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    tab = Tab(ws)
                    await tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                                   deviceScaleFactor=1, mobile=False)
                    yield tab
        finally:
            _signal_group(proc, signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            _signal_group(proc, signal.SIGKILL)  # any helper still running


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
