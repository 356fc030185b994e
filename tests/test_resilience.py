"""Bad days: a disk that fails a write, a crash between two commits, requests that come too late,
a typo in a node config, a technician's test text on a window display."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from hallkit import HALL, Observer, hall_spec, node_config, window_node

import hallctl.apps.window_display as window_display
from hallctl.bus import messages
from hallctl.bus.topics import Topics
from hallctl.central.core import Central
from hallctl.central.service import CentralService, MqttSettings
from hallctl.central.store import Store
from hallctl.config import parse_node_config
from hallctl.errors import ConfigError
from hallctl.node.daemon import Node
from hallctl.runtime.tasks import cancel_and_wait
from hallctl_drivers.onbon_bx.emulator import BxEmulator

T = Topics(HALL)


def _req(rid: str, data: dict, **kw) -> bytes:
    return messages.encode(messages.request(rid, data, **kw))


def test_expired_request_is_not_executed(tmp_path):
    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings())
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    res = svc.respond("kiosk", "ticket.issue", _req("late", {"queue": "a"}, expires_at=past))
    assert res["status"] == "error" and res["error"]["code"] == "expired"
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    ok = svc.respond("kiosk", "ticket.issue", _req("on-time", {"queue": "a"}, expires_at=soon))
    assert ok["data"]["ticket"]["number"] == "A001", "the expired request issued no ticket"
    # the same late request again gets the same answer and still issues nothing
    assert svc.respond("kiosk", "ticket.issue", _req("late", {"queue": "a"}, expires_at=past)) == res


def test_a_failed_write_loses_nothing_and_memory_follows_the_disk(tmp_path, monkeypatch):
    svc = CentralService(hall_spec(), str(tmp_path / "c.db"), MqttSettings())
    assert svc.respond("k", "ticket.issue", _req("1", {"queue": "a"}))["data"]["ticket"]["number"] == "A001"
    real_commit = svc.store.commit_batch

    def disk_error(*a, **kw):  # a fake: a failing SD card cannot be made on demand here
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(svc.store, "commit_batch", disk_error)
    failed = svc.respond("k", "ticket.issue", _req("2", {"queue": "a"}))
    assert failed["error"]["code"] == "internal"
    assert svc.core.queue_status()["waiting"]["a"] == 1, "the unstored ticket is not in memory either"
    monkeypatch.setattr(svc.store, "commit_batch", real_commit)
    retry = svc.respond("k", "ticket.issue", _req("2", {"queue": "a"}))
    assert retry["status"] == "ok" and retry["data"]["ticket"]["number"] == "A002"
    svc.store.close()
    svc.outbox.close()


async def test_events_stored_but_never_queued_are_published_after_a_restart(mosquitto, tmp_path):
    db = str(tmp_path / "c.db")
    first = CentralService(hall_spec(), db, MqttSettings(mosquitto.host, mosquitto.port))
    first.open()  # first start: outbox mark 0
    first.store.close()
    first.outbox.close()
    # central "crashed" right after committing two events, before putting them in its outbox
    with Store(db) as store:
        core = Central(hall_spec(), lambda: datetime.now(timezone.utc))
        out = core.handle("ticket.issue", {"queue": "b"})
        store.commit(out.events, "k:x", messages.response_ok("x", out.data))
    async with Observer(mosquitto.host, mosquitto.port, [T.event_filter]) as obs:
        svc = CentralService(hall_spec(), db, MqttSettings(mosquitto.host, mosquitto.port))
        task = asyncio.create_task(svc.run())
        try:
            issued = (await obs.wait_for(T.event("ticket.issued")))[0]
            assert issued["data"]["number"] == "B001" and issued["seq"] == out.events[-1].seq
        finally:
            await svc.stop()
            await cancel_and_wait(task)


@pytest.mark.parametrize("options, key, words", [
    ({"port": "/dev/null", "address": 1}, "device[0].options.window", "window"),
    ({"port": "/dev/null", "window": "1", "templates": {"called": ["请{num}号"]}}, "device[0].options.templates", "num"),
    ({"port": "/dev/null", "window": "1", "templates": {"calling": ["x"]}}, "device[0].options.templates", "calling"),
])
def test_node_config_mistakes_are_config_errors(tmp_path, options, key, words):
    doc = node_config("127.0.0.1", 1883, tmp_path, "1", "/dev/null")
    doc["device"][0]["options"] = options
    with pytest.raises(ConfigError) as err:
        Node(parse_node_config(doc, file="node.toml"))
    assert key in err.value.message and words in err.value.message and "node.toml" in err.value.message


async def test_technician_test_text_gives_way_to_the_window_state(mosquitto, tmp_path, monkeypatch):
    monkeypatch.setattr(window_display, "HOLD_S", 0.5)
    with BxEmulator() as emu:
        async with Observer(mosquitto.host, mosquitto.port, [f"hallctl/v1/{HALL}/node/+/dev/+/res/+"]) as obs:
            await obs.publish(T.window_state("1"), {"v": 1, "window": "1", "name": "1号窗口", "state": "open",
                                                    "ticket": {"number": "A007", "queue": "a", "status": "called",
                                                               "called_at": "2026-11-30T09:00:00+08:00", "recalls": 0}}, retain=True)
            async with window_node(mosquitto.host, mosquitto.port, tmp_path, "1", emu) as node:
                called = ["请A007号", "到1号窗口办理"]
                assert await asyncio.to_thread(emu.wait_for, lambda: emu.screens[1].lines == called, 10)
                await obs.publish(T.dev_cmd(node.id, "display", "show"),
                                  {"v": 1, "request_id": "tech-1", "data": {"lines": ["测试"]}})
                await obs.wait_for(T.dev_res(node.id, "display", "show"))
                assert emu.screens[1].lines == ["测试"]
                assert await asyncio.to_thread(emu.wait_for, lambda: emu.screens[1].lines == called, 10)


def test_central_restart_mid_day_restores_every_waiting_ticket_with_class_and_arrival(tmp_path):
    db = str(tmp_path / "c.db")
    svc = CentralService(hall_spec(), db, MqttSettings())
    svc.open()
    now = datetime.now(svc.hall.zone)
    slot = (now + timedelta(minutes=30)).replace(second=0, microsecond=0)
    if slot.date() != now.date():  # keep the slot on today's business day
        slot = now
    issued = [
        svc.respond("k", "ticket.issue", _req("w", {"queue": "a"})),
        svc.respond("k", "ticket.issue", _req("g", {"queue": "a", "priority": "green"})),
        svc.respond("k", "ticket.issue", _req("p", {"queue": "b", "priority": "appointment",
                                                    "slot": slot.isoformat()})),
    ]
    assert all(r["status"] == "ok" for r in issued), issued
    before = {t.id: (t.number, t.priority, t.issued_at, t.slot, t.status) for t in svc.core.tickets.values()}
    svc.store.close()
    svc.outbox.close()

    again = CentralService(hall_spec(), db, MqttSettings())
    again.open()
    after = {t.id: (t.number, t.priority, t.issued_at, t.slot, t.status) for t in again.core.tickets.values()}
    assert after == before and len(after) == 3
    assert {v[1] for v in after.values()} == {"walkin", "green", "appointment"}
    assert again.core.state == svc.core.state
    # and numbering goes on where it was
    nxt = again.respond("k", "ticket.issue", _req("w2", {"queue": "a"}))
    assert nxt["data"]["ticket"]["number"] == "A003"
