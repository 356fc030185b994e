"""Issue 9's browser test: headless Chromium touches the kiosk page through category → matter →
phone → confirm; the emulated printer's PNG shows the ticket, zbar (knowing nothing of our code)
reads the ticket's status link from it, and the number printed, the number on the screen and
central's number for that link are one. Then the same page in landscape and in elder mode."""

from __future__ import annotations

import asyncio
import json

from chromium import chromium
from escpos_samples import zbar
from hallkit import HALL, Observer, central
from kioskkit import kiosk_hall, kiosk_node

from hallctl.bus.topics import Topics

T = Topics(HALL)


async def test_chromium_takes_a_ticket_on_the_kiosk_page(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [T.central_res("probe")]) as obs:
        async with chromium(node.apps["printer"].url) as tab:
            await tab.wait_screen("home")
            assert await tab.eval("document.getElementById('hall').textContent") == "欢迎来到萧山区行政服务中心"
            await tab.touch('[data-do="queue"][data-id="general"]')
            await tab.wait_screen("matters")
            await tab.touch('[data-do="matter"][data-id="licence"]')
            await tab.wait_screen("phone")
            for d in "13800138000":
                await tab.touch(f'[data-do="digit"][data-d="{d}"]')
            await tab.wait("document.getElementById('entry').textContent === '138****8000'")
            await tab.touch('[data-do="phone_ok"]')
            await tab.wait_screen("confirm")
            assert "138****8000" in await tab.eval("document.getElementById('screen').textContent")
            await tab.touch('[data-do="confirm"]')
            await tab.wait_screen("done")
            shown = await tab.eval("document.getElementById('number').textContent")
            ahead = await tab.eval("document.getElementById('ahead').textContent")
            assert ahead == "前面还有0人"
            assert "13800138000" not in await tab.eval("document.documentElement.outerHTML")

            # portrait 1080x1920 and landscape 1920x1080, standard and elder mode: nothing spills
            # sideways and every button is a finger's size
            await tab.touch('[data-do="home"]')
            await tab.wait_screen("home")
            for width, height in ((1080, 1920), (1920, 1080)):
                await tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                               mobile=False)
                for elder in (False, True):
                    if elder != await tab.eval("document.body.classList.contains('elder')"):
                        await tab.touch('[data-do="elder"]')
                        await tab.wait(f"document.body.classList.contains('elder') === {json.dumps(elder)}")
                    fits = await tab.eval("document.documentElement.scrollWidth <= window.innerWidth")
                    smallest = await tab.eval("Math.min(...[...document.querySelectorAll('button')]"
                                              ".map(b => b.getBoundingClientRect().height))")
                    assert fits and smallest >= 80, (width, height, elder, smallest)
            assert await tab.eval("parseFloat(getComputedStyle(document.body).fontSize)") == 48  # elder mode on

        (ticket,) = emu.tickets
        assert shown in ticket.lines and "办理事项：营业执照设立登记" in ticket.lines
        png = sorted((tmp_path / "tickets").glob("*.png"))[-1]
        (link,) = await asyncio.to_thread(zbar, png)
        assert link.startswith("https://hall.example.cn/t/")
        await obs.publish(T.central_req("probe", "ticket.status"),
                          {"v": 1, "request_id": "s1", "data": {"token": link.rsplit("/", 1)[1]}})
        answer = (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == "s1"))[0]
        assert answer["data"]["ticket"]["number"] == shown
        assert answer["data"]["ticket"]["status"] == "waiting" and answer["data"]["ticket"]["phone_masked"] == "138****8000"
