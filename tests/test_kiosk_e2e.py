"""The kiosk app on a node, end to end over Mosquitto: the page's HTTP API (as its JavaScript
calls it) takes a ticket that central numbers, the emulated printer prints and central confirms;
paper out is out of service and back; a print that fails is voided and its number never reused;
without central nothing is issued or printed."""

from __future__ import annotations

import asyncio

import aiohttp
from escpos_samples import zbar
from hallkit import HALL, Observer, central
from kioskkit import KIOSK, Page, kiosk_hall, kiosk_node

from hallctl.bus.topics import Topics

T = Topics(HALL)


async def _status(obs: Observer, number: str, rid: str) -> dict:
    await obs.publish(T.central_req("probe", "ticket.status"), {"v": 1, "request_id": rid, "data": {"ticket": number}})
    return (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == rid))[0]


async def _take(page: Page, *touches: dict) -> dict:
    for t in touches:
        await page.press(**t)
    return await page.wait_screen("done", "failed")


async def test_a_ticket_through_the_page_printed_and_confirmed(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [T.central_res("probe")]) as obs, \
            aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        async with http.get(page.url) as r:
            assert r.status == 200 and "取号机" in await r.text()
        async with http.get(page.url + "api/texts") as r:
            assert (await r.json())["screen"]["no_sms"] == "不需要短信"
        home = await page.wait_screen("home")
        assert [q["name"] for q in home["queues"]] == ["综合受理", "不动产"]
        assert (await page.press(do="queue", id="general"))["screen"] == "matters"
        await page.press(do="matter", id="licence")
        for d in "13800138000":
            shown = await page.press(do="digit", d=d)
        assert shown["phone_masked"] == "138****8000"
        assert (await page.press(do="phone_ok"))["screen"] == "confirm"
        done = await _take(page, {"do": "confirm"})
        assert done["screen"] == "done", done
        number = done["result"]["number"]
        assert number == "A001" and done["result"]["people_ahead"] == 0

        (ticket,) = emu.tickets
        assert number in ticket.lines and "办理事项：营业执照设立登记" in ticket.lines
        assert "短信通知：138****8000" in ticket.lines and "13800138000" not in ticket.text
        status = await _status(obs, number, "s1")
        assert status["data"]["ticket"]["status"] == "waiting"  # confirmed: it will be called
        png = sorted((tmp_path / "tickets").glob("*.png"))[-1]
        (link,) = await asyncio.to_thread(zbar, png)
        assert link.startswith("https://hall.example.cn/t/")
        token = link.rsplit("/", 1)[1]
        await obs.publish(T.central_req("probe", "ticket.status"), {"v": 1, "request_id": "s2", "data": {"token": token}})
        by_link = (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == "s2"))[0]
        assert by_link["data"]["ticket"]["number"] == number

        assert (await page.press(do="query"))["screen"] == "query"
        for c in number:
            await page.press(do="char", c=c)
        await page.press(do="query_go")
        async with asyncio.timeout(10):
            while not (view := await page.view()).get("result"):
                await asyncio.sleep(0.05)
        assert view["result"]["status"] == "waiting" and view["result"]["number"] == number


async def test_paper_out_is_out_of_service_and_a_failed_print_is_voided(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [T.central_res("probe"), T.event("ticket.voided")]) as obs, \
            aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        await page.wait_screen("home")
        emu.set(paper_out=True)
        down = await page.wait_screen("out_of_service")
        assert down["next_kiosk"] == "一楼大厅东侧2号取号机"
        assert (await page.press(do="queue", id="house"))["screen"] == "out_of_service"
        emu.set(paper_out=False)
        await page.wait_screen("home")

        # the paper runs out in the middle of the ticket: voided, and the screen says so
        emu.set(paper_out_after_bytes=40)
        failed = await _take(page, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
        assert failed["screen"] == "failed" and failed["message"] == {"key": "print_failed"}
        assert failed["result"]["number"] == "B001"
        voided = (await obs.wait_for(T.event("ticket.voided")))[0]
        assert voided["data"]["number"] == "B001" and voided["data"]["reason"] == "paper_out"
        assert (await _status(obs, "B001", "v1"))["data"]["ticket"]["status"] == "void"

        emu.set(paper_out=False)
        await page.press(do="home")
        await page.wait_screen("home")
        done = await _take(page, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
        assert done["result"]["number"] == "B002"  # B001 is never reused
        assert (await _status(obs, "B002", "v2"))["data"]["ticket"]["status"] == "waiting"


async def test_without_central_nothing_is_issued_or_printed(mosquitto, tmp_path) -> None:
    async with kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        view = await page.view()
        assert view["screen"] == "unavailable"
        assert (await page.press(do="queue", id="general"))["screen"] == "unavailable"
        assert emu.tickets == []
        async with http.post(page.url + "api/press", data="[1]") as r:
            assert r.status == 400
