"""The kiosk's issuing flow as a pure state machine (no HTTP, no MQTT, no printer): what the
citizen sees at each touch, what it asks central, and that personal data never reaches the view."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl.apps.kiosk.flow import Issue, KioskFlow, Lookup, mask_typed
from hallctl.apps.kiosk.layout import ticket_blocks
from hallctl.apps.kiosk.pin import pin_hash
from hallctl.apps.kiosk.templates import TemplateError, load_texts
from datetime import datetime

CATALOGUE = {
    "v": 1, "hall": {"id": "xiaoshan", "name": "萧山区行政服务中心"}, "open": True,
    "hours": {"open": True, "periods": ["08:30-12:00", "13:30-17:00"], "closes_at": "2026-11-23T12:00:00+08:00",
              "opens_at": "2026-11-23T13:30:00+08:00"},
    "classes": ["walkin", "appointment", "green", "online"],
    "queues": [{"id": "general", "prefix": "A", "name": "综合受理"}, {"id": "house", "prefix": "B", "name": "不动产"}],
    "departments": [{"id": "amr", "name": "市场监管"}],
    "matters": [{"id": "licence", "name": "营业执照设立登记", "queue": "general", "department": "amr"},
                {"id": "food", "name": "食品经营许可", "queue": "general", "department": "amr"}],
    "print_confirm_s": 60.0, "waiting": {"general": 4, "house": 0}, "predicted_wait_min": {"general": 6.5, "house": None},
}
PRINTER_OK = {"available": True, "health": "ok", "reason": ""}


def ready_flow(**kw) -> KioskFlow:
    flow = KioskFlow(places={"default": "请在{queue_name}等候区等候叫号"}, **kw)
    flow.on_catalogue(CATALOGUE)
    flow.on_central_status(True)
    flow.on_printer(PRINTER_OK)
    return flow


def touch(flow: KioskFlow, *actions: dict):
    effect = None
    for a in actions:
        effect = flow.press(a)
    return effect


def test_category_matter_phone_confirm_asks_central_for_a_print_confirmed_ticket() -> None:
    flow = ready_flow()
    home = flow.view()
    assert home["screen"] == "home" and home["hall_name"] == "萧山区行政服务中心"
    assert [(q["name"], q["waiting"], q["wait"]) for q in home["queues"]] == [("综合受理", 4, 6), ("不动产", 0, None)]
    touch(flow, {"do": "queue", "id": "general"})
    assert flow.view()["matters"] == [{"id": "licence", "name": "营业执照设立登记"}, {"id": "food", "name": "食品经营许可"}]
    touch(flow, {"do": "matter", "id": "licence"}, *[{"do": "digit", "d": d} for d in "13800138000"])
    assert flow.view()["phone_masked"] == "138****8000"
    touch(flow, {"do": "phone_ok"})
    confirm = flow.view()
    assert (confirm["screen"], confirm["matter"], confirm["phone_masked"]) == ("confirm", "营业执照设立登记", "138****8000")
    effect = touch(flow, {"do": "confirm"})
    assert effect == Issue({"matter": "licence", "phone": "13800138000", "channel": "kiosk", "confirm": "print"})
    assert flow.view()["screen"] == "issuing"
    assert touch(flow, {"do": "confirm"}) is None  # a second tap is not a second ticket

    flow.issued({"ticket": {"number": "A005", "queue": "general", "matter": "licence", "phone_masked": "138****8000"},
                 "people_ahead": 4, "predicted_wait_min": 6.4})
    done = flow.view()
    assert done["screen"] == "done"
    assert done["result"] == {"number": "A005", "queue": "general", "matter": "licence", "priority": None,
                              "phone_masked": "138****8000", "people_ahead": 4, "wait": 6, "where": "请在综合受理等候区等候叫号",
                              "missed_slot": False}
    assert "13800138000" not in json.dumps(done, ensure_ascii=False)


def test_a_whole_section_no_sms_and_a_section_without_matters() -> None:
    flow = ready_flow()
    effect = touch(flow, {"do": "queue", "id": "general"}, {"do": "matter"}, {"do": "no_sms"}, {"do": "confirm"})
    assert effect == Issue({"queue": "general", "channel": "kiosk", "confirm": "print"})
    flow = ready_flow()
    touch(flow, {"do": "queue", "id": "house"})
    assert flow.view()["screen"] == "phone"  # no matters listed: straight to the phone
    touch(flow, {"do": "digit", "d": "1"}, {"do": "no_sms"})
    assert flow.view()["phone_masked"] is None
    assert touch(flow, {"do": "confirm"}).data == {"queue": "house", "channel": "kiosk", "confirm": "print"}


@pytest.mark.parametrize("digits", ["12800138000", "1380013800", "23800138000"])
def test_a_wrong_phone_number_is_refused_on_the_screen(digits: str) -> None:
    flow = ready_flow()
    touch(flow, {"do": "queue", "id": "house"}, *[{"do": "digit", "d": d} for d in digits], {"do": "phone_ok"})
    view = flow.view()
    assert view["screen"] == "phone" and view["message"] == {"key": "phone_invalid"}
    touch(flow, {"do": "delete"}, {"do": "clear"}, {"do": "digit", "d": "x"}, {"do": "digit", "d": "12"})
    assert flow.view()["phone_masked"] == ""


def test_an_id_card_gives_the_birth_date_to_central_and_never_to_the_page() -> None:
    flow = ready_flow()
    assert not flow.on_card({"birth_date": "19500101"})  # nobody is taking a ticket
    touch(flow, {"do": "queue", "id": "house"})
    assert not flow.on_card({"birth_date": "1950-01-01"})
    assert flow.on_card({"birth_date": "19500101", "id_number": "110101195001011234", "name": "张三"})
    view = flow.view()
    assert view["card"] is True
    text = json.dumps(view, ensure_ascii=False)
    assert "19500101" not in text and "110101" not in text and "张三" not in text
    effect = touch(flow, {"do": "no_sms"}, {"do": "confirm"})
    assert effect.data["birth_date"] == "19500101" and "id_number" not in effect.data
    assert "19500101" not in repr(flow.entry)


def test_an_online_application_code_reaches_central_with_the_ticket() -> None:
    flow = ready_flow()
    touch(flow, {"do": "code"}, *[{"do": "char", "c": c} for c in "wsb1o"], {"do": "code_ok"})
    assert flow.view()["message"] == {"key": "code_invalid"}
    touch(flow, {"do": "char", "c": "3"}, {"do": "code_ok"}, {"do": "no_sms"})
    assert flow.view()["online"] is True
    # the code goes to central with the ticket (its class follows from it): the clerk is told it
    assert touch(flow, {"do": "confirm"}).data == {"queue": "general", "online_code": "WSB1O3", "channel": "kiosk",
                                                   "confirm": "print"}
    # one central would refuse (it reads as a phone number: no clerk could see it unmasked)
    flow = ready_flow()
    touch(flow, {"do": "code"}, *[{"do": "char", "c": c} for c in "13800138000"], {"do": "code_ok"})
    assert flow.view()["screen"] == "code" and flow.view()["message"] == {"key": "code_invalid"}
    touch(flow, {"do": "clear"})
    assert flow.view()["code"] == ""
    closed_to_online = ready_flow()
    closed_to_online.on_catalogue({**CATALOGUE, "classes": ["walkin"]})
    touch(closed_to_online, {"do": "code"})
    assert closed_to_online.view()["screen"] == "home" and closed_to_online.view()["code"] is False


def test_what_stops_issuing_wins_over_every_screen_before_the_ticket() -> None:
    flow = ready_flow(next_kiosk="一楼大厅东侧2号取号机")
    touch(flow, {"do": "queue", "id": "general"})
    flow.on_printer({"available": False, "health": "fault", "reason": "paper out"})
    view = flow.view()
    assert view == {**view, "screen": "out_of_service", "next_kiosk": "一楼大厅东侧2号取号机"}
    assert touch(flow, {"do": "matter", "id": "licence"}) is None and flow.screen == "matters"
    flow.on_printer(PRINTER_OK)  # paper back: the citizen goes on where they were
    assert flow.view()["screen"] == "matters"
    flow.on_catalogue({**CATALOGUE, "open": False, "hours": {**CATALOGUE["hours"], "open": False}})
    closed = flow.view()
    assert (closed["screen"], closed["opens_at"], closed["hours"]) == ("closed", "13:30", "08:30-12:00，13:30-17:00")
    flow.on_catalogue(CATALOGUE)
    flow.on_central_status(False)
    assert flow.view()["screen"] == "unavailable"
    flow.on_central_status(True)
    fresh = KioskFlow()
    fresh.on_central_status(True)
    fresh.on_printer(PRINTER_OK)
    assert fresh.view()["screen"] == "unavailable"  # no catalogue yet: no menu to offer


def test_the_outcomes_of_an_issue() -> None:
    flow = ready_flow()
    touch(flow, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
    flow.unreachable()
    assert flow.view()["screen"] == "unavailable"
    flow.on_central_status(True)
    touch(flow, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
    flow.print_failed("B001")
    assert flow.view()["screen"] == "failed" and flow.view()["message"] == {"key": "print_failed"}
    touch(flow, {"do": "home"}, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
    flow.refused("hall_closed", "closed", {"opens_at": "2026-11-23T13:30:00+08:00"})
    assert flow.view()["screen"] == "closed" and flow.view()["opens_at"] == "13:30"
    flow.on_catalogue(CATALOGUE)
    touch(flow, {"do": "queue", "id": "house"}, {"do": "no_sms"}, {"do": "confirm"})
    flow.refused("forbidden", "client kiosk-1 may not call ticket.issue")
    assert flow.view()["message"]["key"] == "issue_refused"


def test_query_looks_a_ticket_up() -> None:
    flow = ready_flow()
    touch(flow, {"do": "query"}, *[{"do": "char", "c": c} for c in "a01"])
    assert flow.view()["query"] == "A01"
    assert touch(flow, {"do": "char", "c": "2"}, {"do": "query_go"}) == Lookup("A012")
    flow.looked_up({"ticket": {"number": "A012", "status": "waiting"}, "people_ahead": 3, "predicted_wait_min": 5.2})
    assert flow.view()["result"] == {"found": True, "number": "A012", "status": "waiting", "people_ahead": 3, "wait": 5,
                                     "window": None}
    flow.looked_up(None)
    assert flow.view()["result"] == {"found": False}


def test_elder_mode_is_a_toggle_kept_across_screens() -> None:
    flow = ready_flow()
    touch(flow, {"do": "elder"}, {"do": "queue", "id": "general"})
    assert flow.view()["elder"] is True
    touch(flow, {"do": "home"}, {"do": "elder"})
    assert flow.view()["elder"] is False


def test_mask_typed() -> None:
    assert [mask_typed(s) for s in ("", "138", "1380", "13800138000")] == ["", "138", "138*", "138****8000"]


def test_the_ticket_layout() -> None:
    texts = load_texts()
    answer = {"ticket": {"id": "2026-11-23-A005", "number": "A005", "queue": "general", "phone_masked": "138****8000",
                         "priority": "green"},
              "people_ahead": 4, "predicted_wait_min": 6.4, "link": "https://hall.example/t/abcdefghijklmnop"}
    blocks = ticket_blocks(answer, texts, hall_name="萧山区行政服务中心", queue_name="综合受理",
                           matter_name="营业执照设立登记", where="请在综合受理等候区等候叫号", now=datetime(2026, 11, 23, 9, 30))
    texts_printed = [b.get("text") for b in blocks]
    assert {"text": "A005", "size": 5, "align": "center", "bold": True} in blocks
    for line in ("办理事项：营业执照设立登记", "前面还有 4 人", "预计等待约 6 分钟", "取号时间：2026-11-23 09:30",
                 "短信通知：138****8000", "绿色通道"):
        assert line in texts_printed
    assert {"qr": "https://hall.example/t/abcdefghijklmnop", "align": "center"} in blocks


def test_a_halls_templates_override_and_are_checked(tmp_path) -> None:
    own = tmp_path / "kiosk.toml"
    own.write_text('[screen]\nwelcome = "您好，{hall_name}"\n[where]\nhouse = "二楼东侧 不动产登记区"\n', encoding="utf-8")
    texts = load_texts(own)
    assert texts["screen"]["welcome"] == "您好，{hall_name}" and texts["screen"]["done"] == "请取走您的号票"
    assert texts["where"]["house"] == "二楼东侧 不动产登记区"
    for body, key in (('[screen]\nwelcome = "{name}"\n', "screen.welcome"), ('[screen]\nhello = "x"\n', "screen.hello"),
                      ('[colours]\na = "b"\n', "colours"), ('[ticket]\nnotice = "{"\n', "ticket.notice")):
        own.write_text(body, encoding="utf-8")
        with pytest.raises(TemplateError) as err:
            load_texts(own)
        assert err.value.key == key


def test_the_example_kiosk_config_plans_and_a_bad_template_file_is_a_config_error(tmp_path) -> None:
    import tomllib
    from pathlib import Path

    from hallctl.config import parse_node_config
    from hallctl.errors import ConfigError
    from hallctl.node.plan import plan_node
    from hallctl.profiles import load_profiles

    raw = tomllib.loads((Path(__file__).parent.parent / "config" / "kiosk.example.toml").read_text(encoding="utf-8"))
    texts = tmp_path / "kiosk-texts.toml"
    texts.write_text('[where]\nhouse = "二楼东侧"\n', encoding="utf-8")
    raw["device"][0]["options"]["templates_file"] = str(texts)
    (plan,) = plan_node(parse_node_config(raw, file="kiosk.toml"), load_profiles())
    assert plan.app.name == "kiosk" and plan.app_options["next_kiosk"] == "一楼大厅东侧2号取号机"
    assert "listen" not in plan.driver_options and plan.driver_options["port"].startswith("/dev/serial/")
    texts.write_text('[ticket]\nnotice = "{phone}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        plan_node(parse_node_config(raw, file="kiosk.toml"), load_profiles())
    assert "ticket.notice" in str(err.value) and "{phone}" in str(err.value)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)
_DOS = st.sampled_from(["queue", "matter", "code", "code_ok", "digit", "char", "back", "confirm", "no_sms",
                        "phone_ok", "home", "query", "query_go", "elder", "clear", "delete", "appointment", "appt_ok",
                        "green", "ground", "pin_ok"]) | st.text(max_size=6)
_IDS = st.sampled_from(["general", "house", "licence", "urgent", "1", "2"])
HAPPY_PATH = ({"do": "queue", "id": "general"}, {"do": "matter", "id": "licence"}, {"do": "no_sms"}, {"do": "confirm"})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({"do": _DOS}, optional={"id": _JSON | _IDS, "d": _JSON, "c": _JSON}),
                max_size=12))
def test_garbage_touches_never_break_the_flow(touches) -> None:
    """What the page posts is whatever a browser (or anyone on the kiosk's network) sends: any
    JSON in any field, on any screen (the appointment and green-channel ones too), changes nothing
    or moves the flow on; it never raises."""
    flow = ready_flow(grounds={"urgent": "急事急办"}, green_pin=pin_hash("2468", salt="saltsalt"))
    for action in touches:
        flow.press(action)
    # and a citizen after them still gets a ticket asked for: home, category, matter, no SMS, confirm
    effect = touch(flow, {"do": "home"}, *HAPPY_PATH)
    assert isinstance(effect, Issue), (flow.shown, effect)
