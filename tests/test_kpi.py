"""KPIs folded from hand-built event logs: waits (appointments, transfers), service and total times,
window utilisation with a pause mid-day, per-queue/per-class figures, the clerk hook, day rollover."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hallctl.central.kpi import Kpis, percentile
from hallctl.central.model import Event

PHONE = "13800138000"


class Log:
    """Builds events with contiguous seqs on one business day."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, type_: str, when: str, on: str = "2024-05-06", **data: Any) -> None:
        ts = f"{on}T{when}+08:00"
        self.events.append(Event(len(self.events) + 1, type_, ts, data))

    def ticket(self, type_: str, when: str, tid: str, window: str | None = None, **data: Any) -> None:
        number, queue = TICKETS[tid]
        d: dict[str, Any] = {"ticket": tid, "number": number, "queue": queue, **data}
        if window is not None:
            d["window"] = window
        self.add(type_, when, **d)


TICKETS = {"t1": ("A001", "a"), "t2": ("B001", "b"), "t3": ("A002", "a"), "t4": ("A003", "a"),
           "t5": ("A004", "a")}


def hall_day() -> Log:
    log = Log()
    log.add("day.started", "08:00:00", on="2024-05-06", day="2024-05-06", expired=[])
    log.add("window.opened", "08:30:00", window="w1")
    log.add("window.opened", "08:30:00", window="w2", clerk="c7")  # a clerk signs in (hook)
    log.ticket("ticket.issued", "08:35:00", "t1", channel="kiosk", phone=PHONE)
    log.ticket("ticket.issued", "08:40:00", "t2", channel="kiosk")
    log.ticket("ticket.called", "08:45:00", "t1", "w1", window_name="1号窗口")
    log.ticket("ticket.started", "08:46:00", "t1", "w1")
    log.ticket("ticket.called", "08:50:00", "t2", "w2", window_name="2号窗口")
    # t2 goes to queue a: it waits again from the transfer
    log.add("ticket.transferred", "08:55:00", ticket="t2", number="B001", queue="a",
            from_queue="b", window="w2")
    log.ticket("ticket.completed", "08:56:00", "t1", "w1")
    log.add("ticket.called", "09:00:00", ticket="t2", number="B001", queue="a", window="w1",
            window_name="1号窗口")
    # an appointment for 09:30 taken early: its wait starts at the slot
    log.ticket("ticket.issued", "09:00:00", "t3", channel="kiosk", priority="appointment",
               slot="2024-05-06T09:30:00+08:00")
    log.add("ticket.completed", "09:10:00", ticket="t2", number="B001", queue="a", window="w1")
    log.add("window.paused", "09:10:00", window="w1")  # lunch-ish pause mid-day
    log.ticket("ticket.issued", "09:20:00", "t4", channel="kiosk")
    log.ticket("ticket.called", "09:25:00", "t4", "w2", window_name="2号窗口")
    log.ticket("ticket.recalled", "09:26:00", "t4", "w2", window_name="2号窗口", recalls=1)
    log.ticket("ticket.no_show", "09:28:00", "t4", "w2", reason="recall_limit")
    log.ticket("ticket.called", "09:32:00", "t3", "w2", window_name="2号窗口")
    log.add("window.opened", "09:40:00", window="w1")
    log.ticket("ticket.completed", "09:45:00", "t3", "w2", clerk="c9")  # a clerk on the event
    log.ticket("ticket.issued", "09:50:00", "t5", channel="kiosk", priority="green")
    log.add("window.closed", "10:00:00", window="w2")
    return log


def test_per_ticket_times() -> None:
    k = Kpis.from_events(hall_day().events)
    t1, t2, t3, t4, t5 = (k.ticket(t) for t in ("t1", "t2", "t3", "t4", "t5"))
    assert t1 is not None and t2 is not None and t3 is not None and t4 is not None and t5 is not None
    assert (t1["wait_s"], t1["service_s"], t1["total_s"]) == (600, 600, 1260)  # started -> done
    # transfer: 10 min in queue b, then 5 min again in a; service from the second call
    assert (t2["wait_s"], t2["first_wait_s"], t2["service_s"], t2["total_s"]) == (900, 600, 600, 1800)
    assert (t2["queue"], t2["first_queue"], t2["first_window"], t2["transfers"]) == ("a", "b", "w2", 1)
    # appointment: wait from the slot (09:30), not from the issue (09:00); total from the issue
    assert (t3["wait_s"], t3["service_s"], t3["total_s"]) == (120, 780, 2700)
    assert (t4["status"], t4["wait_s"], t4["service_s"], t4["total_s"], t4["recalls"]) == (
        "no_show", 300, None, None, 1)
    assert (t5["status"], t5["wait_s"]) == ("waiting", None)
    assert k.ticket("nope") is None


def test_summary_hall_queues_classes() -> None:
    s = Kpis.from_events(hall_day().events).summary()
    assert s["day"] == "2024-05-06" and s["as_of"] == "2024-05-06T10:00:00+08:00"
    assert s["tickets"] == {"issued": 5, "completed": 3, "no_show": 1, "waiting": 1,
                            "at_window": 0, "expired": 0, "pending": 0, "voided": 0, "transferred": 1,
                            "recalls": 1, "missed_slot": 0}
    assert s["wait_s"] == {"n": 4, "mean": 480.0, "p90": 900.0, "max": 900.0}
    assert s["service_s"]["n"] == 3 and s["service_s"]["mean"] == pytest.approx(660.0)
    assert s["total_s"] == {"n": 3, "mean": 1920.0, "p90": 2700.0, "max": 2700.0}
    assert s["served_within_15_min"] == 1.0 and s["waited_over_30_min"] == 0.0
    assert s["appointments_within_5_min"] == 1.0
    a, b = s["by_queue"]["a"], s["by_queue"]["b"]
    assert (a["issued"], a["transferred_in"], a["completed"], a["no_show"], a["waiting"]) == (4, 1, 3, 1, 1)
    assert a["wait_s"] == {"n": 4, "mean": 330.0, "p90": 600.0, "max": 600.0}  # 600, 300, 300, 120
    assert (b["issued"], b["transferred_out"], b["completed"]) == (1, 1, 0)
    assert b["wait_s"] == {"n": 1, "mean": 600.0, "p90": 600.0, "max": 600.0}
    assert set(s["by_class"]) == {"appointment", "green", "walkin"}
    assert s["by_class"]["appointment"]["wait_s"]["mean"] == 120.0
    assert s["by_class"]["green"]["waiting"] == 1 and s["by_class"]["green"]["wait_s"]["n"] == 0


def test_windows_utilisation_with_a_pause() -> None:
    s = Kpis.from_events(hall_day().events).summary()
    w1, w2 = s["by_window"]["w1"], s["by_window"]["w2"]
    # w1: open 08:30-09:10 and 09:40-10:00 (60 min); busy 11 + 10 min
    assert (w1["state"], w1["open_s"], w1["busy_s"], w1["utilisation"]) == ("open", 3600, 1260, 0.35)
    assert (w1["called"], w1["completed"], w1["no_show"], w1["transferred"]) == (2, 2, 0, 0)
    # w2: open 08:30-10:00 (90 min); busy 5 (transferred) + 3 (no-show) + 13 min
    assert (w2["state"], w2["open_s"], w2["busy_s"]) == ("closed", 5400, 1260)
    assert w2["utilisation"] == pytest.approx(1260 / 5400, abs=1e-4)
    assert (w2["called"], w2["completed"], w2["no_show"], w2["transferred"]) == (3, 1, 1, 1)


def test_clerks_keyed_by_window_or_clerk() -> None:
    s = Kpis.from_events(hall_day().events).summary()
    c = s["by_clerk"]
    assert set(c) == {"window:w1", "clerk:c7", "clerk:c9"}
    assert c["window:w1"] | {} == {**c["window:w1"], "keyed_by": "window", "called": 2,
                                   "completed": 2, "first_handled": 1, "mean_service_s": 600.0}
    assert (c["clerk:c7"]["called"], c["clerk:c7"]["first_handled"], c["clerk:c7"]["no_show"],
            c["clerk:c7"]["transferred"], c["clerk:c7"]["completed"]) == (3, 3, 1, 1, 0)
    assert (c["clerk:c9"]["keyed_by"], c["clerk:c9"]["completed"], c["clerk:c9"]["mean_service_s"]) == (
        "clerk", 1, 780.0)


def test_summary_is_json_without_personal_data() -> None:
    k = Kpis.from_events(hall_day().events)
    text = json.dumps(k.summary(with_tickets=True), ensure_ascii=False)
    assert PHONE not in text and "phone" not in text and "8000" not in text
    assert len(json.loads(text)["ticket_list"]) == 5


def test_replay_of_stored_dicts_and_incremental_apply_agree() -> None:
    events = hall_day().events
    incremental = Kpis()
    for e in events:
        incremental.apply(e)
    from_dicts = Kpis.from_events(e.to_dict() for e in events)
    assert incremental.summary(with_tickets=True) == from_dicts.summary(with_tickets=True)


def test_running_figures_are_as_of_the_last_event() -> None:
    events = hall_day().events
    cut = next(i for i, e in enumerate(events) if e.type == "ticket.started")  # 08:46, t1 at w1
    s = Kpis.from_events(events[: cut + 1]).summary()
    assert s["as_of"].endswith("08:46:00+08:00")
    assert s["tickets"]["at_window"] == 1 and s["tickets"]["waiting"] == 1
    w1 = s["by_window"]["w1"]
    assert (w1["open_s"], w1["busy_s"], w1["utilisation"]) == (960, 60, round(60 / 960, 4))


def test_busy_while_paused_does_not_count_towards_utilisation() -> None:
    log = Log()
    log.add("window.opened", "09:00:00", window="w1")  # no day.started: the day is the ts date
    log.ticket("ticket.issued", "09:00:00", "t1")
    log.ticket("ticket.called", "09:00:00", "t1", "w1")
    log.add("window.paused", "09:10:00", window="w1")  # paused with the citizen still there
    log.ticket("ticket.completed", "09:20:00", "t1", "w1")
    log.add("window.opened", "09:20:00", window="w1")
    log.add("window.closed", "09:40:00", window="w1")
    s = Kpis.from_events(log.events).summary()
    assert s["day"] == "2024-05-06"
    w1 = s["by_window"]["w1"]
    assert (w1["open_s"], w1["busy_s"], w1["utilisation"]) == (1800, 1200, round(600 / 1800, 4))


def test_day_rollover_expires_and_carries_window_state() -> None:
    log = hall_day()
    log.add("day.started", "08:00:00", on="2024-05-07", day="2024-05-07", expired=["t5"])
    log.add("ticket.issued", "08:10:00", on="2024-05-07", ticket="u1", number="A001", queue="a")
    log.add("ticket.called", "08:20:00", on="2024-05-07", ticket="u1", number="A001", queue="a",
            window="w1")
    k = Kpis.from_events(log.events)
    assert k.days == ["2024-05-06", "2024-05-07"] and k.day == "2024-05-07"
    old = k.summary("2024-05-06")
    assert old["tickets"]["expired"] == 1 and old["tickets"]["waiting"] == 0
    assert old["by_window"]["w1"]["open_s"] == 3600  # cut at the old day's last event
    new = k.summary()
    assert new["tickets"]["issued"] == 1 and new["wait_s"]["mean"] == 600.0
    # w1 was left open: it counts as open from day.started; w2 was closed and is not seen today
    assert new["by_window"]["w1"]["open_s"] == 20 * 60 and "w2" not in new["by_window"]
    assert k.ticket("t1") is None and k.ticket("t1", day="2024-05-06") is not None
    assert k.summary("2023-01-01")["tickets"] == {"issued": 0}
    assert Kpis.from_events(log.events, keep_days=1).days == ["2024-05-07"]


def test_inconsistent_and_unknown_events_are_skipped() -> None:
    log = hall_day()
    log.add("ticket.completed", "10:05:00", ticket="ghost", number="A999", queue="a", window="w1")
    log.ticket("ticket.completed", "10:06:00", "t1", "w1")  # already done
    log.add("hall.something_new", "10:07:00", foo=1)
    k = Kpis.from_events(log.events)
    assert k.skipped == 2
    s = k.summary()
    assert s["skipped_events"] == 2 and s["tickets"]["completed"] == 3


def test_percentile_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile(list(range(1, 11)), 100) == 10
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_folds_the_real_core_event_log() -> None:
    """The events the real engine emits (fake clock only), folded live and from the store form."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from hallctl.central.core import Central
    from hallctl.central.model import HallSpec, QueueSpec, WindowSpec

    now = [datetime(2024, 5, 6, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))]
    hall = HallSpec(
        hall_id="xiaoshan",
        queues={"general": QueueSpec("general", "A", "综合受理"), "tax": QueueSpec("tax", "B", "税务")},
        windows={"1": WindowSpec("1", "1号窗口", ("*",))},
        policy="fifo",
    )
    central = Central(hall, lambda: now[0])
    live, log = Kpis(), []

    def do(action: str, data: dict, minutes: float = 0) -> None:
        now[0] += timedelta(minutes=minutes)
        for e in central.handle(action, data).events:
            live.apply(e)
            log.append(e.to_dict())

    do("window.open", {"window": "1"})
    do("ticket.issue", {"queue": "general", "phone": PHONE})
    do("ticket.issue", {"queue": "tax"}, 1)
    do("window.call_next", {"window": "1"}, 4)  # A001 waited 5 min
    do("window.start", {"window": "1"}, 1)
    do("window.transfer", {"window": "1", "queue": "tax"}, 2)
    do("window.call_next", {"window": "1"})  # A001 again: it keeps its place in arrival order
    do("window.complete", {"window": "1"}, 10)
    do("window.call_next", {"window": "1"})
    do("window.no_show", {"window": "1"}, 3)
    s = live.summary()
    assert s == Kpis.from_events(log).summary()
    assert s["tickets"] | {} == {**s["tickets"], "issued": 2, "completed": 1, "no_show": 1,
                                 "transferred": 1}
    w = s["by_window"]["1"]
    assert (w["called"], w["completed"], w["no_show"], w["transferred"]) == (3, 1, 1, 1)
    assert w["open_s"] == 21 * 60 and w["busy_s"] == 16 * 60  # idle only before the first call
    assert PHONE not in json.dumps(s)
