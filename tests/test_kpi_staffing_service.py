"""Central answers kpi.summary and staffing.advice from what it has stored, and publishes the
advice retained on central/staffing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hallkit import HALL, Observer, hall_spec

from hallctl.bus import messages
from hallctl.bus.topics import Topics
from hallctl.central.service import CentralService, MqttSettings
from hallctl.runtime.tasks import cancel_and_wait

TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _req(rid: str, data: dict | None = None) -> bytes:
    return messages.encode(messages.request(rid, data or {}))


def _a_morning(svc: CentralService, clock: Clock, tag: str, tickets: int) -> None:
    """Tickets every 3 minutes from 09:00, served at window 1 and 2 in turn, 6 minutes each."""
    for w in ("1", "2"):
        svc.respond("clerk", "window.open", _req(f"{tag}-open-{w}", {"window": w}))
    for i in range(tickets):
        svc.respond("kiosk", "ticket.issue", _req(f"{tag}-t{i}", {"queue": "a"}))
        w = "1" if i % 2 == 0 else "2"
        svc.respond("clerk", "window.call_next", _req(f"{tag}-c{i}", {"window": w}))
        clock.now += timedelta(minutes=3)
        svc.respond("clerk", "window.complete", _req(f"{tag}-d{i}", {"window": w}))


def test_kpi_summary_and_staffing_advice_from_history(tmp_path):
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))  # a Monday
    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings(), clock=clock)
    _a_morning(svc, clock, "mon1", 20)
    kpi = svc.respond("office", "kpi.summary", _req("k1"))
    assert kpi["status"] == "ok", kpi
    summary = kpi["data"]
    assert summary["tickets"]["issued"] == 20 and summary["tickets"]["completed"] == 20
    assert summary["service_s"]["mean"] == 180.0 and summary["by_window"]["1"]["busy_s"] > 0
    assert "13800138000" not in str(summary)
    # a week later, same weekday: the advice is built from last Monday's arrivals
    clock.now = datetime(2026, 11, 9, 8, 0, tzinfo=TZ)
    advice = svc.respond("office", "staffing.advice", _req("s1"))["data"]
    assert advice["day"] == "2026-11-09" and advice["history_days"] == 1
    assert advice["slots"], advice
    first = advice["slots"][0]
    assert first["from"] == "09:00"
    assert first["windows"] >= 1 and first["service_level"] >= 0.8
    # 20 arrivals per hour, 3-minute services: about one window's load; the advice must cover it
    assert all(s["windows"] <= len(svc.hall.windows) for s in advice["slots"])
    svc.store.close()
    svc.outbox.close()


async def test_staffing_advice_is_published_retained(mosquitto, tmp_path):
    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings(mosquitto.host, mosquitto.port))
    t = Topics(HALL)
    task = asyncio.create_task(svc.run())
    try:
        svc._housekeeping_every_s = 0.1
        async with Observer(mosquitto.host, mosquitto.port, [t.central_staffing]) as obs:
            doc = (await obs.wait_for(t.central_staffing, timeout=60))[0]
            assert doc["v"] == 1 and doc["target"] == {"share": 0.8, "within_s": 900.0}
            assert doc["history_days"] == 0 and doc["slots"] == []
    finally:
        await svc.stop()
        await cancel_and_wait(task)


def test_kpi_summary_refuses_a_day_that_is_not_a_date(tmp_path):
    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings())
    for bad in ("x", "2026-13-01", 20261109, "2026-11-9"):
        res = svc.respond("office", "kpi.summary", _req(f"bad-{bad}", {"day": bad}))
        assert res["status"] == "error" and res["error"]["code"] == "bad_request", res
    ok = svc.respond("office", "kpi.summary", _req("good", {"day": "2026-11-09"}))
    assert ok["status"] == "ok" and ok["data"]["day"] == "2026-11-09"
    svc.store.close()
    svc.outbox.close()


def test_the_halls_service_target_comes_from_its_config(tmp_path):
    """[hall] target_share / target_wait_s: the staffing advice plans for them and the KPIs
    report the share served within them (80% within 15 minutes when the hall says nothing)."""
    import dataclasses

    from hallctl.central.config import parse_central_config

    cfg = parse_central_config({
        "central": {"hall": HALL}, "hall": {"target_share": 0.9, "target_wait_s": 300},
        "queue": [{"id": "a", "prefix": "A", "name": "综合"}],
        "window": [{"id": "1", "name": "1号窗口"}, {"id": "2", "name": "2号窗口"}]})
    assert (cfg.hall_settings.target_share, cfg.hall_settings.target_wait_s) == (0.9, 300.0)
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    hall = dataclasses.replace(hall_spec(), target_share=0.9, target_wait_s=300.0)
    svc = CentralService(hall, str(tmp_path / "c.db"), MqttSettings(), clock=clock)
    _a_morning(svc, clock, "mon1", 6)  # each ticket is called at once: every wait is 0
    summary = svc.respond("office", "kpi.summary", _req("k1"))["data"]
    assert summary["target"] == {"share": 0.9, "within_s": 300.0} and summary["served_within_target"] == 1.0
    clock.now = datetime(2026, 11, 9, 8, 0, tzinfo=TZ)
    advice = svc.respond("office", "staffing.advice", _req("s1"))["data"]
    assert advice["target"] == {"share": 0.9, "within_s": 300.0}
    assert all(s["service_level"] >= 0.9 for s in advice["slots"] if s["windows"] < len(hall.windows))
    svc.store.close()
    svc.outbox.close()


def test_a_target_outside_0_to_1_is_a_config_error():
    import pytest

    from hallctl.central.config import parse_central_config
    from hallctl.errors import ConfigError

    with pytest.raises(ConfigError, match="hall.target_share: must be a share between 0 and 1"):
        parse_central_config({"central": {"hall": HALL}, "hall": {"target_share": 80},
                              "queue": [{"id": "a", "prefix": "A", "name": "综合"}],
                              "window": [{"id": "1", "name": "1号窗口"}]})
