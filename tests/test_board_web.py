"""The board's web page in headless Chromium (a TV's browser): a new call reaches the page by push,
without a reload; the picture it shows is the driver's frame, pixel for pixel; when the node goes
away the page says so in the hall's words, and clears that by itself when the node is back."""

from __future__ import annotations

import base64
import io

import numpy as np
from chromium import chromium
from PIL import Image

from hallctl.apps.call_board.content import DEFAULT_TEMPLATES, HallView, build
from hallctl.profiles import load_profiles
from hallctl.sim.mosquitto import free_port
from hallctl_drivers.board import CallBoardDriver

CATALOGUE = {"hall": {"name": "萧山区行政服务中心"}, "queues": [{"id": "a", "name": "综合受理"}]}
NOTICE = "各位办事群众请注意：本中心实行一次告知、限时办结，如有疑问请到服务台咨询，谢谢合作。" * 2


def content(calls: int) -> dict:
    board = {"calls": [{"number": f"A{i:03d}", "window": str(i), "window_name": f"{i}号窗口", "at": f"t{i}"}
                       for i in range(1, calls + 1)], "waiting": {"a": 10 - calls}, "predicted_wait_min": {"a": 5.0}}
    return {**build(HallView(board, CATALOGUE, True, True), DEFAULT_TEMPLATES), "notice": NOTICE}


def driver(port: int, tmp) -> CallBoardDriver:
    p = load_profiles().get("generic-hdmi-board-landscape")
    return CallBoardDriver(p.settings, {"http_port": port, "http_listen": "127.0.0.1", "png_dir": str(tmp), "flash_s": 0})


async def shown_picture(tab) -> np.ndarray:
    """The picture the page shows, as the browser decoded it."""
    url = await tab.eval("(() => { const i = document.getElementById('board'); const c = document.createElement('canvas');"
                         " c.width = i.naturalWidth; c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0);"
                         " return c.toDataURL('image/png'); })()")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


async def test_a_new_call_reaches_the_page_by_push_and_the_page_says_when_it_lost_the_node(tmp_path):
    port = free_port()
    board = driver(port, tmp_path / "png")
    await board.start()
    try:
        await board.execute("show", content(3))
        async with chromium(board.web.url, width=1920, height=1080) as tab:
            await tab.wait(f"document.body?.dataset.frame === '{board.web.version}'")
            await tab.eval("window.loadedOnce = 'yes'")  # gone if the page were reloaded
            assert np.array_equal(await shown_picture(tab), np.asarray(Image.open(tmp_path / "png" / "board.png")))
            # the notice is longer than the board: the page scrolls it over its strip
            assert await tab.wait("document.getElementById('notice').style.display === 'block'"
                                  " && document.querySelector('#notice span').getAnimations().length === 1")

            answer = await board.execute("show", content(4))  # a new call
            assert answer["calls_shown"][0] == "A004"
            await tab.wait(f"document.body?.dataset.frame === '{board.web.version}'")
            assert await tab.eval("window.loadedOnce") == "yes"
            assert await tab.eval("performance.getEntriesByType('navigation').length") == 1
            assert np.array_equal(await shown_picture(tab), np.asarray(Image.open(tmp_path / "png" / "board.png")))
            assert not await tab.eval("document.body.classList.contains('lost')")

            await board.stop()  # the node goes away
            await tab.wait("document.body.classList.contains('lost')")
            assert await tab.eval("document.getElementById('lost').offsetHeight") > 0
            assert await tab.eval("document.getElementById('lost-text').textContent") == DEFAULT_TEMPLATES["page_lost"]

            board = driver(port, tmp_path / "png")  # and comes back: the page finds it by itself
            await board.start()
            await board.execute("show", content(5))
            await tab.wait("!document.body.classList.contains('lost')", timeout=20)
            await tab.wait(f"document.body?.dataset.frame === '{board.web.version}'")
            assert await tab.eval("window.loadedOnce") == "yes"
            assert np.array_equal(await shown_picture(tab), np.asarray(Image.open(tmp_path / "png" / "board.png")))
    finally:
        await board.stop()
