"""Issue 9's browser test: headless Chromium touches the kiosk page through category → matter →
phone → confirm; the emulated printer's PNG shows the ticket, zbar (knowing nothing of our code)
reads the ticket's status link from it, and the number printed, the number on the screen and
central's number for that link are one. Then the same page in landscape and in elder mode."""

from __future__ import annotations

import asyncio
import json
import logging

from chromium import chromium
from escpos_samples import zbar
from hallkit import HALL, Observer, central
from kioskkit import kiosk_hall, kiosk_node

from hallctl.apps.kiosk.pin import pin_hash
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


async def _layout(tab, ok: str) -> list[tuple]:
    """The screen shown in portrait 1080x1920 and landscape 1920x1080, standard and elder mode:
    what does not fit (sideways, a button under a finger's size, ``ok`` below the screen)."""
    bad = []
    for width, height in ((1080, 1920), (1920, 1080)):
        await tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        for elder in (False, True):
            if elder != await tab.eval("document.body.classList.contains('elder')"):
                await tab.touch('[data-do="elder"]')
                await tab.wait(f"document.body.classList.contains('elder') === {json.dumps(elder)}")
            fits = await tab.eval("document.documentElement.scrollWidth <= window.innerWidth")
            smallest = await tab.eval("Math.min(...[...document.querySelectorAll('button')]"
                                      ".map(b => b.getBoundingClientRect().height))")
            bottom = await tab.eval(f"document.querySelector({json.dumps(ok)}).getBoundingClientRect().bottom")
            if not fits or smallest < 80 or bottom > height:
                bad.append((width, height, elder, fits, smallest, bottom))
    await tab.send("Emulation.setDeviceMetricsOverride", width=1080, height=1920, deviceScaleFactor=1, mobile=False)
    if await tab.eval("document.body.classList.contains('elder')"):
        await tab.touch('[data-do="elder"]')
        await tab.wait("!document.body.classList.contains('elder')")
    return bad


async def test_chromium_takes_a_green_channel_ticket_a_staff_member_confirms(mosquitto, tmp_path, caplog) -> None:
    """The 绿色通道 screen: a ground, a wrong PIN said so, the staff member's PIN, then category →
    matter → no SMS → confirm; the ticket printed and central's are green channel. The new
    screens (预约取号's keypad, the grounds, the PIN) fit portrait and landscape, elder mode too."""
    caplog.set_level(logging.INFO, logger="hallctl.apps.kiosk")
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path, green_pin_sha256=pin_hash("246810")) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [T.central_res("probe")]) as obs:
        async with chromium(node.apps["printer"].url) as tab:
            await tab.wait_screen("home")
            await tab.touch('[data-do="appointment"]')
            await tab.wait_screen("appointment")
            assert await _layout(tab, '[data-do="appt_ok"]') == []
            await tab.touch('[data-do="back"]')
            await tab.wait_screen("home")

            await tab.touch('[data-do="green"]')
            await tab.wait_screen("green")
            text = await tab.eval("document.getElementById('screen').textContent")
            assert "须由工作人员现场确认" in text and "孕妇" in text and "急事急办" in text
            assert await _layout(tab, '[data-do="back"]') == []
            await tab.touch('[data-do="ground"][data-id="pregnant"]')
            await tab.wait_screen("green_pin")
            assert await _layout(tab, '[data-do="pin_ok"]') == []
            for d in "1357":
                await tab.touch(f'[data-do="digit"][data-d="{d}"]')
            await tab.wait("document.getElementById('entry').textContent === '●●●●'")
            await tab.touch('[data-do="pin_ok"]')
            await tab.wait("document.getElementById('message')?.textContent === '密码错误，还可尝试2次'")
            for d in "246810":
                await tab.touch(f'[data-do="digit"][data-d="{d}"]')
            await tab.touch('[data-do="pin_ok"]')
            await tab.wait_screen("green_queues")
            assert "孕妇" in await tab.eval("document.getElementById('green-banner').textContent")
            await tab.touch('[data-do="queue"][data-id="general"]')
            await tab.wait_screen("matters")
            await tab.touch('[data-do="matter"][data-id="licence"]')
            await tab.wait_screen("phone")
            await tab.touch('[data-do="no_sms"]')
            await tab.wait_screen("confirm")
            assert await tab.eval("document.getElementById('green').textContent") == "孕妇"
            await tab.touch('[data-do="confirm"]')
            await tab.wait_screen("done")
            shown = await tab.eval("document.getElementById('number').textContent")
            assert "246810" not in await tab.eval("document.documentElement.outerHTML")

        (ticket,) = emu.tickets
        assert shown in ticket.lines and "绿色通道" in ticket.lines
        await obs.publish(T.central_req("probe", "ticket.status"), {"v": 1, "request_id": "g1", "data": {"ticket": shown}})
        answer = (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == "g1"))[0]
        assert (answer["data"]["ticket"]["priority"], answer["data"]["ticket"]["status"]) == ("green", "waiting")
    logged = [r.getMessage() for r in caplog.records if r.name == "hallctl.apps.kiosk"]
    assert "green channel: a wrong staff PIN at this kiosk (1 since start)" in logged
    counts = [m for m in logged if "per ground" in m]
    assert counts == ["green-channel ticket on a staff member's confirmation; per ground since start: pregnant 1"]
    assert not any("246810" in m or "1357" in m for m in logged)
