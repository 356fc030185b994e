"""Issue 9, the kiosk's appointment screen (预约取号): the citizen types the booking's code on the
on-screen keypad and central issues the booking's ticket. First the pure flow (what each answer
of central shows), then end to end: the booking system books at central over Mosquitto, the page's
HTTP API (as its JavaScript calls it) takes the booking's ticket, the emulated printer prints it
and central confirms it; a used, unknown or late code says so in Chinese; a print that fails
frees the code for the next try."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from hallkit import HALL, Observer, RunningClock, central
from kioskkit import KIOSK, Page, kiosk_hall, kiosk_node
from test_kiosk_flow import CATALOGUE, ready_flow, touch

from hallctl.apps.kiosk.flow import Issue
from hallctl.apps.kiosk.templates import fill, load_texts
from hallctl.bus.topics import Topics

T = Topics(HALL)
SH = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=SH)


def typed(code: str) -> list[dict]:
    return [{"do": "char", "c": c} for c in code]


# -- the flow ------------------------------------------------------------------------------------

def test_the_code_typed_asks_central_for_the_bookings_ticket() -> None:
    flow = ready_flow()
    assert flow.view()["appointment"] is True  # the hall offers the appointment class
    touch(flow, {"do": "appointment"}, *typed("yy20"), {"do": "appt_ok"})
    view = flow.view()
    assert (view["screen"], view["code"], view["message"]) == ("appointment", "YY20", {"key": "appt_invalid"})
    effect = touch(flow, *typed("261123"), {"do": "delete"}, {"do": "char", "c": "9"}, {"do": "appt_ok"})
    assert effect == Issue({"appointment": "YY20261129", "channel": "kiosk", "confirm": "print"})
    assert flow.view()["screen"] == "issuing"
    flow.issued({"ticket": {"number": "A007", "queue": "general", "priority": "appointment"},
                 "people_ahead": 0, "predicted_wait_min": 0})
    assert flow.view()["result"]["missed_slot"] is False and flow.view()["result"]["priority"] == "appointment"


def test_what_central_answers_is_said_in_chinese() -> None:
    texts = load_texts()["screen"]
    flow = ready_flow()
    touch(flow, {"do": "appointment"}, *typed("YY2026NOPE"), {"do": "appt_ok"})
    flow.refused("not_found", "appointment: no booking with that code", {"field": "appointment"})
    view = flow.view()  # a typo, most likely: back to the keypad, the code as typed
    assert (view["screen"], view["code"], view["message"]) == ("appointment", "YY2026NOPE", {"key": "appt_unknown"})
    assert fill(texts["appt_unknown"]) == "未找到该预约，请核对预约码后重新输入"

    for detail, key, shown in (
        ({"reason": "used", "ticket": "A003"}, "appt_used", "该预约已经取过号（A003），请勿重复取号"),
        ({"reason": "cancelled"}, "appt_cancelled", "该预约已取消，请重新预约或取普通号"),
        ({"reason": "other_day", "day": "2026-11-24"}, "appt_other_day", "您的预约日期是2026年11月24日，不是今天，请在预约当天取号"),
    ):
        touch(flow, {"do": "home"}, {"do": "appointment"}, *typed("YY20261123"), {"do": "appt_ok"})
        flow.refused("conflict", "appointment: ...", {"field": "appointment", **detail})
        view = flow.view()
        assert view["screen"] == "failed" and view["message"]["key"] == key
        assert fill(texts[key], **view["message"]) == shown

    touch(flow, {"do": "home"}, {"do": "appointment"}, *typed("YY20261123"), {"do": "appt_ok"})
    flow.issued({"ticket": {"number": "A009", "queue": "general", "priority": "walkin"}, "missed_slot":
                 "2026-11-23T09:00:00+08:00", "people_ahead": 3, "predicted_wait_min": 12})
    assert flow.view()["result"]["missed_slot"] is True  # the page says appt_late
    assert texts["appt_late"] == "您已超过预约时间，已按普通号为您取号"


def test_no_appointment_screen_when_the_hall_offers_none_and_blockers_win() -> None:
    flow = ready_flow()
    flow.on_catalogue({**CATALOGUE, "classes": ["walkin", "green"]})
    touch(flow, {"do": "appointment"})
    assert flow.view()["screen"] == "home" and flow.view()["appointment"] is False
    flow = ready_flow()
    touch(flow, {"do": "appointment"}, *typed("YY2026"))
    flow.on_printer({"available": False, "health": "fault", "reason": "paper out"})
    assert flow.view()["screen"] == "out_of_service"
    assert touch(flow, {"do": "appt_ok"}) is None  # nothing asked of central while out of service


# -- end to end: Mosquitto, central, the kiosk node, the printer emulator --------------------------

async def _book(obs: Observer, rid: str, **data) -> dict:
    await obs.publish(T.central_req("yuyue", "appointment.book"), {"v": 1, "request_id": rid, "data": data})
    return (await obs.wait_for(T.central_res("yuyue"), lambda d: d["request_id"] == rid))[0]


async def _status(obs: Observer, number: str, rid: str) -> dict:
    await obs.publish(T.central_req("yuyue", "ticket.status"), {"v": 1, "request_id": rid, "data": {"ticket": number}})
    return (await obs.wait_for(T.central_res("yuyue"), lambda d: d["request_id"] == rid))[0]["data"]


async def _type_code(page: Page, code: str) -> dict:
    await page.press(do="home")
    assert (await page.press(do="appointment"))["screen"] == "appointment"
    for c in code:
        view = await page.press(do="char", c=c)
    assert view["code"] == code
    return await page.press(do="appt_ok")


async def test_a_bookings_ticket_through_the_page_printed_and_confirmed(mosquitto, tmp_path) -> None:
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path, hall=kiosk_hall(), clock=RunningClock(MORNING)), \
            kiosk_node(host, port, tmp_path) as (node, emu), \
            Observer(host, port, [f"{T.base}/#"]) as obs, \
            aiohttp.ClientSession() as http:
        slot = (MORNING + timedelta(minutes=20)).isoformat()
        booked = await _book(obs, "b1", code="YY2026112301", matter="licence", slot=slot, phone="13800138000")
        assert booked["status"] == "ok", booked
        late = (MORNING - timedelta(minutes=40)).isoformat()
        assert (await _book(obs, "b2", code="YY2026112302", queue="house", slot=late))["status"] == "ok"

        page = Page(node.apps["printer"].url, http)
        home = await page.wait_screen("home")
        assert home["appointment"] is True
        await _type_code(page, "YY2026112301")
        done = await page.wait_screen("done", "failed")
        assert done["screen"] == "done", done
        assert (done["result"]["number"], done["result"]["missed_slot"]) == ("A001", False)
        (ticket,) = emu.tickets
        for line in ("A001", "预约", "办理事项：营业执照设立登记", "短信通知：138****8000"):
            assert line in ticket.lines, (line, ticket.lines)
        status = await _status(obs, "A001", "s1")
        assert (status["ticket"]["status"], status["ticket"]["priority"], status["ticket"]["slot"]) == (
            "waiting", "appointment", "2026-11-23T10:20:00+08:00")

        # the same code again: already used, and which ticket it gave
        await _type_code(page, "YY2026112301")
        used = await page.wait_screen("failed")
        assert used["message"] == {"key": "appt_used", "number": "A001", "day": None}
        # a code nobody booked: back to the keypad to check it
        assert (await _type_code(page, "YY2026119999"))["screen"] == "issuing"
        view = await page.wait_screen("appointment")
        assert view["message"] == {"key": "appt_unknown"} and view["code"] == "YY2026119999"
        # forty minutes late: a walk-in ticket, and the screen says why
        await _type_code(page, "YY2026112302")
        late_done = await page.wait_screen("done", "failed")
        assert (late_done["result"]["number"], late_done["result"]["missed_slot"]) == ("B001", True)
        assert "预约" not in emu.tickets[-1].lines
        assert len(emu.tickets) == 2  # nothing printed for a refused code

    # the booking's code and the phone are on no topic but the requests to central
    where = {t for t, p, _ in obs.messages if b"YY20261123" in p or b"13800138000" in p}
    assert where == {T.central_req("yuyue", "appointment.book"), T.central_req(KIOSK, "ticket.issue")}, where


async def test_a_failed_print_frees_the_code_for_the_next_try(mosquitto, tmp_path) -> None:
    host, port = mosquitto.host, mosquitto.port
    async with central(host, port, tmp_path, hall=kiosk_hall(), clock=RunningClock(MORNING)), \
            kiosk_node(host, port, tmp_path) as (node, emu), \
            Observer(host, port, [T.central_res("yuyue"), T.event("ticket.voided")]) as obs, \
            aiohttp.ClientSession() as http:
        slot = (MORNING + timedelta(minutes=5)).isoformat()
        assert (await _book(obs, "b1", code="YY2026112303", queue="general", slot=slot))["status"] == "ok"
        page = Page(node.apps["printer"].url, http)
        await page.wait_screen("home")
        emu.set(paper_out_after_bytes=40)  # the paper runs out in the middle of the ticket
        await _type_code(page, "YY2026112303")
        failed = await page.wait_screen("failed")
        assert failed["message"] == {"key": "print_failed"} and failed["result"]["number"] == "A001"
        voided = (await obs.wait_for(T.event("ticket.voided")))[0]
        assert voided["data"]["number"] == "A001"
        emu.set(paper_out=False)
        await page.press(do="home")
        await page.wait_screen("home")
        await _type_code(page, "YY2026112303")
        done = await page.wait_screen("done")
        assert done["result"]["number"] == "A002"  # the code served again; A001 never reused
        assert (await _status(obs, "A002", "s1"))["ticket"]["priority"] == "appointment"
        assert json.dumps(done, ensure_ascii=False).count("YY2026112303") == 0
