"""Issue 9, central's side: the hall's catalogue on ``central/catalogue``, what a kiosk builds its
menu from with no configuration of its own.

The document from the pure core (the config's names in its order, the classes offered, the hours
now, the board's figures without the tickets pending their print), then over Mosquitto: retained
for a kiosk that subscribes late, re-published when a ticket is issued and confirmed, and when the
hall closes at noon, which central notices by itself (its housekeeping round is 30 s away: the
wake-up at the closing time publishes it).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hallkit import HALL, Observer, RunningClock, central

from hallctl.bus.topics import Topics
from hallctl.central.catalogue import catalogue_document, next_change
from hallctl.central.core import Central
from hallctl.central.hours import OpeningHours
from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec

SH = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # a Monday
T = Topics(HALL)


def hall(**kw) -> HallSpec:
    return HallSpec(
        HALL,
        {"a": QueueSpec("a", "A", "综合受理"), "b": QueueSpec("b", "B", "不动产")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("b",))},
        departments={"amr": DepartmentSpec("amr", "市场监管"), "nr": DepartmentSpec("nr", "自然资源")},
        matters={"licence": MatterSpec("licence", "营业执照设立登记", "a", "amr"),
                 "deed": MatterSpec("deed", "不动产登记", "b", "nr"),
                 "archive": MatterSpec("archive", "个人档案查询", "a")},
        hours=OpeningHours.parse(["08:00-12:00", "13:30-17:00"]),
        name="萧山区行政服务中心", classes=("appointment",),
        **kw,
    )


def test_the_document_is_the_configs_menu_with_the_halls_figures() -> None:
    now = MORNING
    c = Central(hall(), lambda: now)
    c.handle("window.open", {"window": "2"})
    c.handle("ticket.issue", {"matter": "deed"})
    c.handle("ticket.issue", {"queue": "a", "confirm": "print"})  # pending: waiting nowhere yet
    doc = catalogue_document(c, now)
    assert doc["hall"] == {"id": HALL, "name": "萧山区行政服务中心"}
    assert doc["queues"] == [{"id": "a", "prefix": "A", "name": "综合受理"}, {"id": "b", "prefix": "B", "name": "不动产"}]
    assert doc["departments"] == [{"id": "amr", "name": "市场监管"}, {"id": "nr", "name": "自然资源"}]
    assert doc["matters"] == [
        {"id": "licence", "name": "营业执照设立登记", "queue": "a", "department": "amr"},
        {"id": "deed", "name": "不动产登记", "queue": "b", "department": "nr"},
        {"id": "archive", "name": "个人档案查询", "queue": "a", "department": None},
    ]
    assert doc["classes"] == ["walkin", "appointment"]
    assert doc["print_confirm_s"] == 60.0
    assert doc["open"] is True
    assert doc["hours"] == {"open": True, "periods": ["08:00-12:00", "13:30-17:00"],
                            "closes_at": "2026-11-23T12:00:00+08:00", "opens_at": "2026-11-23T13:30:00+08:00"}
    assert doc["waiting"] == {"a": 0, "b": 1}
    board = c.board_state()
    assert (doc["waiting"], doc["predicted_wait_min"]) == (board["waiting"], board["predicted_wait_min"])
    assert doc["predicted_wait_min"]["a"] is None  # no open window calls queue a
    assert next_change(c, now) == datetime(2026, 11, 23, 12, 0, tzinfo=SH)

    lunch = now.replace(hour=12, minute=30)
    closed = catalogue_document(c, lunch)
    assert closed["open"] is False and closed["hours"]["opens_at"] == "2026-11-23T13:30:00+08:00"
    assert next_change(c, lunch) == datetime(2026, 11, 23, 13, 30, tzinfo=SH)


def test_a_hall_without_hours_or_name_is_always_open() -> None:
    bare = HallSpec(HALL, {"a": QueueSpec("a", "A", "综合受理")}, {})
    c = Central(bare, lambda: MORNING)
    doc = catalogue_document(c, MORNING)
    assert (doc["hall"]["name"], doc["open"], doc["hours"], doc["departments"], doc["matters"]) == (
        None, True, None, [], [])
    assert doc["classes"] == ["walkin", "appointment", "green", "online"]
    assert next_change(c, MORNING) is None


async def _issue(obs: Observer, request_id: str, **data) -> dict:
    await obs.publish(T.central_req("kiosk-1", "ticket.issue"), {"v": 1, "request_id": request_id, "data": data})
    return (await obs.wait_for(T.central_res("kiosk-1"), lambda d: d.get("request_id") == request_id))[0]


async def test_the_catalogue_is_retained_and_follows_the_hall(mosquitto, tmp_path) -> None:
    host, port = mosquitto.host, mosquitto.port
    clock = RunningClock(MORNING)
    async with central(host, port, tmp_path, hall=hall(), clock=clock):
        # a kiosk that starts after central gets the menu from the broker at once
        async with Observer(host, port, [T.central_catalogue]) as late:
            first = (await late.wait_for(T.central_catalogue))[0]
            assert late.messages[0][2], "the catalogue must be retained"
            assert first["hall"]["name"] == "萧山区行政服务中心"
            assert [q["name"] for q in first["queues"]] == ["综合受理", "不动产"]
            assert [m["name"] for m in first["matters"]] == ["营业执照设立登记", "不动产登记", "个人档案查询"]
            assert first["open"] is True and first["waiting"] == {"a": 0, "b": 0}

        async with Observer(host, port, [T.central_catalogue, T.central_res("kiosk-1")]) as obs:
            assert (await _issue(obs, "r1", matter="deed"))["status"] == "ok"
            await obs.wait_for(T.central_catalogue, lambda d: d["waiting"] == {"a": 0, "b": 1})
            pending = await _issue(obs, "r2", queue="a", confirm="print")
            await obs.publish(T.central_req("kiosk-1", "ticket.confirm"),
                              {"v": 1, "request_id": "r3", "data": {"ticket": pending["data"]["ticket"]["id"]}})
            await obs.wait_for(T.central_catalogue, lambda d: d["waiting"] == {"a": 1, "b": 1})
            assert not [d for d in obs.docs(T.central_catalogue) if d["waiting"]["a"] > 1]

            # two seconds before noon: the next ticket is issued, then the hall closes by itself
            clock.set(MORNING.replace(hour=11, minute=59, second=58))
            assert (await _issue(obs, "r4", queue="a"))["status"] == "ok"
            closed = (await obs.wait_for(T.central_catalogue, lambda d: not d["open"], timeout=20))[0]
            assert closed["hours"]["opens_at"] == "2026-11-23T13:30:00+08:00"
            assert closed["waiting"] == {"a": 2, "b": 1}
            refused = await _issue(obs, "r5", queue="a")
            assert refused["error"]["code"] == "hall_closed"
