"""Day checkpoints: central starts (and reloads) from the state at the start of the current
business day instead of replaying the hall's whole history, and gets the same state.

No broker is needed: the service is driven through ``respond`` (the request path without MQTT)
on a real SQLite store, with a clock the test moves.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta

import pytest
from test_central_core import SH, FakeClock

from hallctl.central.core import Central
from hallctl.central.kpi import Kpis
from hallctl.central.model import HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.central.store import Store


def hall(b_prior: float = 900.0) -> HallSpec:
    return HallSpec(
        "ckpt",
        {"a": QueueSpec("a", "A", "综合受理"), "b": QueueSpec("b", "B", "不动产", expected_service_s=b_prior)},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("b", "a"), speed={"b": 1.5})},
        matters={"m": MatterSpec("m", "抵押登记", "b", None, 300)},
    )


class Hall:
    def __init__(self, tmp_path, clock: FakeClock) -> None:
        self.path, self.clock, self.n = str(tmp_path / "central.db"), clock, 0
        self.hall = hall()
        self.svc = self.start()

    def start(self) -> CentralService:
        svc = CentralService(self.hall, self.path, MqttSettings(port=1), clock=self.clock)
        svc.open()  # what start() does off the event loop
        return svc

    def do(self, action: str, **data) -> dict:
        self.n += 1
        res = self.svc.respond("desk", action, json.dumps({"v": 1, "request_id": f"r{self.n}", "data": data}).encode())
        assert res["status"] == "ok", res
        return res["data"]

    def day(self, tickets: int) -> None:
        """A morning: clerks sign in, citizens come, each is served for 6 minutes."""
        self.do("window.open", window="1", clerk="s1")
        self.do("window.open", window="2", clerk="s2")
        for i in range(tickets):
            self.do("ticket.issue", **({"matter": "m"} if i % 3 == 0 else {"queue": "a"}))
        for _ in range(tickets // 2):
            for w in ("1", "2"):
                if self.do("window.call_next", window=w)["ticket"]:
                    self.clock.advance(minutes=6)
                    self.do("window.complete", window=w)

    def restart(self) -> CentralService:
        self.svc.store.close()
        self.svc.outbox.close()
        self.svc = self.start()
        return self.svc

    def close(self) -> None:
        self.svc.store.close()
        self.svc.outbox.close()


def full_replay(path: str) -> Central:
    with Store(path) as store:
        core = Central(hall(), lambda: datetime.now(SH))
        core.replay(store.load_events())
    return core


def test_a_restart_replays_only_today_and_gets_the_state_of_a_full_replay(tmp_path):
    clock = FakeClock(datetime(2026, 11, 16, 9, 0, tzinfo=SH))
    h = Hall(tmp_path, clock)
    for _ in range(3):
        h.day(8)
        clock.now = (clock.now + timedelta(days=1)).replace(hour=9, minute=0)
    h.day(4)  # today: some tickets still waiting
    live = h.svc.core.state
    total = h.svc.store.last_seq()
    svc = h.restart()
    cp = svc.store.latest_checkpoint()
    assert cp is not None and cp[1] == "2026-11-19"
    assert svc.replayed == total - cp[0] < total / 3, "only today's events are replayed"
    assert svc.core.state == live == full_replay(h.path).state
    # the KPIs of earlier days come from the events, as before
    with Store(h.path) as store:
        every = Kpis.from_events(store.load_events())
    assert svc.kpis.summary("2026-11-17") == every.summary("2026-11-17")
    # and the hall goes on: numbers continue, the clerk is still signed in
    assert h.do("ticket.issue", queue="a")["ticket"]["number"] == "A003"  # A001, A002 issued today
    assert h.do("window.call_next", window="1")["ticket"]["first_clerk"] == "s1"
    h.close()


def two_days_then_stop(tmp_path) -> tuple[Hall, object]:
    """Two business days of service, central stopped; returns the hall and its last live state."""
    clock = FakeClock(datetime(2026, 11, 16, 9, 0, tzinfo=SH))
    h = Hall(tmp_path, clock)
    h.day(6)
    clock.advance(days=1)
    h.day(6)
    live = h.svc.core.state
    h.close()
    return h, live


def test_a_store_without_checkpoints_replays_everything_once_and_gains_one(tmp_path):
    h, live = two_days_then_stop(tmp_path)
    with sqlite3.connect(h.path) as db:  # as a store written before checkpoints existed
        db.execute("DELETE FROM checkpoints")
    svc = h.start()
    h.svc = svc
    assert svc.replayed == svc.store.last_seq() and svc.core.state == live
    assert svc.store.latest_checkpoint()[1] == "2026-11-17"
    assert svc.store.nth_newest_day_start(2) == 1, "every day of the old log got its checkpoint"
    total = svc.store.last_seq()
    assert h.restart().replayed < total
    h.close()


def test_an_unreadable_checkpoint_falls_back_to_the_whole_log(tmp_path, caplog):
    h, live = two_days_then_stop(tmp_path)
    with sqlite3.connect(h.path) as db:
        db.execute("UPDATE checkpoints SET state = '{\"v\": 99}'")
    h.svc = h.start()
    assert "unusable" in caplog.text
    assert h.svc.replayed == h.svc.store.last_seq() and h.svc.core.state == live
    h.close()


def test_a_checkpoint_is_written_with_its_events_or_not_at_all(tmp_path):
    from hallctl.central.model import Event
    from hallctl.central.store import StoreError

    with Store(tmp_path / "s.db") as store:
        day = Event(1, "day.started", "2026-11-16T09:00:00.000+08:00", {"day": "2026-11-16", "expired": []})
        store.commit([day], checkpoint=(1, "2026-11-16", {"v": 1}))
        assert store.latest_checkpoint() == (1, "2026-11-16", {"v": 1})
        gap = Event(5, "day.started", "2026-11-17T09:00:00.000+08:00", {"day": "2026-11-17", "expired": []})
        try:
            store.commit([gap], checkpoint=(5, "2026-11-17", {"v": 1}))
        except StoreError:
            pass
        assert store.latest_checkpoint()[0] == 1, "a failed commit leaves no checkpoint behind"
        assert store.day_start_seq("2026-11-20") == 1 and store.day_start_seq("2026-11-15") is None


def test_a_checkpoint_left_behind_by_removed_events_is_never_used(tmp_path):
    h, _ = two_days_then_stop(tmp_path)
    with sqlite3.connect(h.path) as db:  # someone cut the log back to the first day by hand
        first_day_end = db.execute("SELECT MIN(seq) FROM events WHERE type='day.started' AND seq > 1").fetchone()[0]
        db.execute("DELETE FROM events WHERE seq >= ?", (first_day_end,))
    h.svc = h.start()
    assert h.svc.core.day == "2026-11-16" and h.svc.core.state == full_replay(h.path).state
    for _ in range(30):  # the log grows past the stale checkpoint's seq again, on day one
        h.do("ticket.issue", queue="a")
    svc = h.restart()
    assert svc.core.state == full_replay(h.path).state
    h.close()


def test_a_checkpoint_that_is_not_json_means_one_whole_replay_then_a_good_checkpoint(tmp_path, caplog):
    h, live = two_days_then_stop(tmp_path)
    with sqlite3.connect(h.path) as db:
        db.execute("UPDATE checkpoints SET state = '{not json'")
    h.svc = h.start()
    assert "unusable" in caplog.text and h.svc.core.state == live
    assert h.svc.replayed == h.svc.store.last_seq()
    total = h.svc.store.last_seq()
    assert h.restart().replayed < total / 2, "the bad checkpoint was rewritten"
    h.close()


@pytest.mark.parametrize("had_checkpoints", [True, False])
def test_after_a_restart_kpis_and_staffing_history_are_what_the_running_central_had(tmp_path, had_checkpoints):
    """A window opened weeks ago and never closed, 40 days of service: the KPIs (35 days) and the
    staffing history (35 calendar days) come out of a restart as the running central had them,
    also from a store written before checkpoints existed."""
    clock = FakeClock(datetime(2026, 9, 1, 9, 0, tzinfo=SH))
    h = Hall(tmp_path, clock)
    h.do("window.open", window="1", clerk="s1")
    for d in range(43):  # the last day (Monday) has tickets
        clock.now = datetime(2026, 9, 1, 9, 0, tzinfo=SH) + timedelta(days=d)
        if d % 7 in (5, 6):  # weekends: central runs, nobody comes
            h.svc.tick()  # housekeeping's tick
            continue
        for _ in range(3):
            h.do("ticket.issue", queue="a")
            h.do("window.call_next", window="1")
            clock.advance(minutes=5)
            h.do("window.complete", window="1")
    live_kpis, live_advice = h.svc.kpis.summary(None), h.svc.staffing_advice()
    if not had_checkpoints:
        h.close()
        with sqlite3.connect(h.path) as db:
            db.execute("DELETE FROM checkpoints")
        h.svc = h.start()
        assert h.svc.kpis.summary(None) == live_kpis and h.svc.staffing_advice() == live_advice
    svc = h.restart()
    assert svc.observed < svc.store.last_seq(), "not the whole log"
    assert svc.kpis.summary(None) == live_kpis
    assert live_kpis["by_window"]["1"]["state"] == "open" and "clerk:s1" in live_kpis["by_clerk"]
    assert svc.staffing_advice() == live_advice and live_advice["history_days"] > 20
    h.close()


def test_a_queue_never_served_takes_its_new_expected_time_after_a_restart(tmp_path):
    h, _ = two_days_then_stop(tmp_path)
    learned_a = full_replay(h.path).service_estimate("a")
    h.hall = dataclasses.replace(hall(), queues={**hall().queues, "c": QueueSpec("c", "C", "税务", 300)})
    h.hall = dataclasses.replace(h.hall, queues={**h.hall.queues, "a": QueueSpec("a", "A", "综合受理", 1200)})
    svc = h.start()
    h.svc = svc
    assert svc.core.service_estimate("c") == 300.0, "a new queue: its configured time"
    assert svc.core.service_estimate("a") == learned_a, "a served queue keeps what it learned"
    h.close()
