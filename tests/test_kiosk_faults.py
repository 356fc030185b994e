"""A printer that misbehaves, seen from the kiosk: garbage for a status reply, a status reply that
never comes, a cable pulled mid-ticket. Each ends in a device state a technician can read (on the
bus, with a reason), a page that keeps answering every touch at once, no ticket left waiting for a
citizen who has no paper, and a kiosk that serves again by itself once the printer is back."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from hallkit import HALL, Observer, central
from kioskkit import KIOSK, Page, kiosk_hall, kiosk_node

from hallctl.bus.topics import Topics

T = Topics(HALL)
STATE = T.dev_state(KIOSK, "printer")


async def _state(obs: Observer, pred) -> dict:
    """The first retained-or-live device state document of the printer that satisfies ``pred``."""
    return (await obs.wait_for(STATE, lambda d: d is not None and pred(d), timeout=10))[0]


async def _status(obs: Observer, number: str, rid: str) -> dict:
    await obs.publish(T.central_req("probe", "ticket.status"), {"v": 1, "request_id": rid, "data": {"ticket": number}})
    return (await obs.wait_for(T.central_res("probe"), lambda d: d["request_id"] == rid))[0]


async def _touch_answers(page: Page) -> dict:
    """A touch is answered at once, whatever the printer does (the page never hangs)."""
    async with asyncio.timeout(2):
        return await page.press(do="queue", id="general")


async def _take(page: Page) -> dict:
    await page.press(do="home")
    await page.wait_screen("home")
    for touch in ({"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"}):
        await page.press(**touch)
    return await page.wait_screen("done", "failed")


@pytest.mark.parametrize("fault, reason_word", [("garbage", "garbled"), ("silent", "no status reply")])
async def test_a_printer_that_talks_nonsense_or_nothing_takes_the_kiosk_out_of_service(
        mosquitto, tmp_path, caplog, fault: str, reason_word: str) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [STATE, T.central_res("probe")]) as obs, \
            aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        await page.wait_screen("home")
        await _state(obs, lambda d: d["health"] == "ok")

        emu.set(**{fault: True})
        down = await _state(obs, lambda d: d["health"] == "fault")
        assert reason_word in down["reason"].lower(), down
        assert (await page.wait_screen("out_of_service"))["next_kiosk"] == "一楼大厅东侧2号取号机"
        assert (await _touch_answers(page))["screen"] == "out_of_service"
        assert emu.tickets == []

        emu.set(**{fault: False})
        await _state(obs, lambda d: d["health"] == "ok")
        done = await _take(page)
        assert done["screen"] == "done", done
        assert (await _status(obs, done["result"]["number"], "s1"))["data"]["ticket"]["status"] == "waiting"
        assert [done["result"]["number"] in t.lines for t in emu.tickets] == [True]
    # a page that closed its event stream (each wait_screen above did) is no error in the log
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_cable_pulled_mid_ticket_voids_it_and_the_kiosk_serves_again_once_replugged(mosquitto, tmp_path) -> None:
    async with central(mosquitto.host, mosquitto.port, tmp_path, hall=kiosk_hall()), \
            kiosk_node(mosquitto.host, mosquitto.port, tmp_path) as (node, emu), \
            Observer(mosquitto.host, mosquitto.port, [STATE, T.central_res("probe"), T.event("ticket.voided")]) as obs, \
            aiohttp.ClientSession() as http:
        page = Page(node.apps["printer"].url, http)
        await page.wait_screen("home")
        emu.set(unplug_after_bytes=40)
        failed = await _take(page)
        assert failed["screen"] == "failed" and failed["result"]["number"] == "B001"
        voided = (await obs.wait_for(T.event("ticket.voided")))[0]
        assert voided["data"]["number"] == "B001" and voided["data"]["reason"] == "printer_offline"
        assert (await _status(obs, "B001", "v1"))["data"]["ticket"]["status"] == "void"

        gone = await _state(obs, lambda d: not d["available"] or d["health"] == "fault")
        assert gone["reason"], gone  # a technician reads why, not just "fault"
        assert (await _touch_answers(page))["screen"] in ("out_of_service", "failed")

        emu.replug()
        await _state(obs, lambda d: d["available"] and d["health"] == "ok")
        done = await _take(page)
        assert done["screen"] == "done" and done["result"]["number"] == "B002"  # B001 is never reused
        assert (await _status(obs, "B002", "v2"))["data"]["ticket"]["status"] == "waiting"
        # what a technician sees in the log of states: every state document says why
        states = [json.loads(p) for t, p, _ in obs.messages if t == STATE and p]
        assert all(s["reason"] for s in states if s["health"] != "ok" or not s["available"])
