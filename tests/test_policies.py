"""Calling policies, ticket classes, transfer, first handler and people-ahead (docs/assignment.md).

Hand-made halls pin each policy's order; a random-hall state machine checks, for every policy, the
no-idle invariant, that no ticket is lost or duplicated, that no number is reused within a day,
that replay rebuilds the same state, and that each call matches a brute-force reading of the
documented rules.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from math import fsum
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hallctl.central.core import Central, Outcome, ReplayError
from hallctl.central.model import (
    BY_SINCE,
    AT_WINDOW,
    POLICY_NAMES,
    Event,
    MatterSpec,
    HallSpec,
    QueueSpec,
    Ticket,
    WindowSpec,
)
from hallctl.central.policies import POLICIES, make_policy
from hallctl.errors import BadRequest, ConfigError, Conflict, NotFound

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 5, 6, 9, 0, tzinfo=SH)


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


QUEUES3 = {
    "a": QueueSpec("a", "A", "综合"),
    "b": QueueSpec("b", "B", "税务"),
    "c": QueueSpec("c", "C", "公安"),
}


def hall(windows: dict[str, tuple[str, ...] | WindowSpec], **kw: Any) -> HallSpec:
    specs = {
        w: q if isinstance(q, WindowSpec) else WindowSpec(w, f"{w}号窗口", q) for w, q in windows.items()
    }
    return HallSpec("h", dict(QUEUES3), specs, **kw)


def central(windows: dict[str, Any], clock: FakeClock | None = None, **kw: Any) -> tuple[Central, FakeClock]:
    clock = clock or FakeClock()
    c = Central(hall(windows, **kw), clock)
    for w in windows:
        c.handle("window.open", {"window": w})
    return c, clock


def issue(c: Central, queue: str = "a", **kw: Any) -> str:
    return c.handle("ticket.issue", {"queue": queue, **kw}).data["ticket"]["number"]


def call(c: Central, window: str, *, done: bool = True) -> str | None:
    t = c.handle("window.call_next", {"window": window}).data["ticket"]
    if t is not None and done:
        c.handle("window.complete", {"window": window})
    return t and t["number"]


def slot_in(clock: FakeClock, **kw: float) -> str:
    return (clock.now + timedelta(**kw)).isoformat()


# --- fifo, dedicated, sew ------------------------------------------------------------------


def test_fifo_takes_the_oldest_ticket_of_every_queue_the_window_lists() -> None:
    c, clock = central({"1": ("a", "b")}, policy="fifo")
    for q in ("b", "c", "a", "b"):
        issue(c, q)
        clock.advance(minutes=1)
    assert [call(c, "1") for _ in range(4)] == ["B001", "A001", "B002", None]


def test_fifo_is_class_blind() -> None:
    c, clock = central({"1": ("*",)}, policy="fifo")
    issue(c, "a")
    issue(c, "a", priority="green")
    assert [call(c, "1"), call(c, "1")] == ["A001", "A002"]


def test_dedicated_serves_only_the_primary_queues() -> None:
    c, clock = central(
        {
            "1": ("a", "b"),
            "2": WindowSpec("2", "2号窗口", ("b", "c", "a"), primary=2),
            "3": ("*",),
        },
        policy="dedicated",
    )
    issue(c, "b")
    issue(c, "a")
    issue(c, "c")
    assert call(c, "1") == "A001"  # B001 is older, but b is only window 1's secondary skill
    assert call(c, "1") is None  # b and c are waiting: not window 1's department
    assert call(c, "2") == "B001"
    assert call(c, "2") == "C001"
    issue(c, "a")
    assert call(c, "2") is None
    assert call(c, "3") == "A002"  # "*": every queue is its own


def test_sew_serves_the_queue_with_the_most_waiting_per_open_capacity() -> None:
    # a: windows 1, 2, 3 (capacity 3); b: window 3 only (capacity 1)
    c, clock = central({"1": ("a",), "2": ("a",), "3": ("a", "b")}, policy="sew")
    for _ in range(3):
        issue(c, "a")
    clock.advance(minutes=5)
    for _ in range(2):
        issue(c, "b")
    # load a = 3/3 = 1, load b = 2/1 = 2: window 3 helps b although A001 waited longer
    assert call(c, "3") == "B001"
    # a = 3/3, b = 1/1: a tie, the older head wins
    assert call(c, "3") == "A001"
    # a = 2/3 < b = 1/1
    assert call(c, "3") == "B002"


def test_sew_queues_served_by_the_same_windows_are_one_pool() -> None:
    # every window universal: one pool, one line, so sew is FIFO (a long line does not starve
    # a short one)
    c, clock = central({"1": ("*",), "2": ("*",)}, policy="sew")
    issue(c, "b")
    clock.advance(minutes=1)
    for _ in range(3):
        issue(c, "a")
    assert [call(c, "1") for _ in range(4)] == ["B001", "A001", "A002", "A003"]


def test_sew_counts_only_open_windows_and_their_speed() -> None:
    windows = {
        "1": WindowSpec("1", "1", ("a",), speed={"a": 4.0}),
        "2": ("b",),
        "3": ("a", "b"),
    }
    c, clock = central(windows, policy="sew")
    issue(c, "a")
    issue(c, "a")
    issue(c, "b")
    assert c.state.lines.capacity == {"a": 5.0, "b": 2.0, "c": 0.0}  # every queue, open or not
    # a: 2/5, b: 1/2
    assert call(c, "3", done=False) == "B001"
    c.handle("window.complete", {"window": "3"})
    c.handle("window.pause", {"window": "1"})
    assert c.state.lines.capacity["a"] == 1.0
    issue(c, "b")
    # a: 2/1, b: 1/2
    assert call(c, "3") == "A001"


# --- default: classes, skills, overflow, anti-starvation ---------------------------------------


def test_default_green_first_then_due_appointments_then_walkins_then_early_appointments() -> None:
    c, clock = central({"1": ("*",)}, appointment_grace_s=120)
    issue(c, "a")  # A001 walk-in
    issue(c, "b", priority="appointment", slot=slot_in(clock, minutes=30))  # B001, early
    issue(c, "c", priority="appointment", slot=slot_in(clock, minutes=1))  # C001, due (grace)
    issue(c, "a", priority="online")  # A002
    issue(c, "b", priority="green")  # B002
    assert [call(c, "1") for _ in range(6)] == ["B002", "C001", "A001", "A002", "B001", None]


def test_appointments_go_by_slot_and_a_late_comer_by_arrival() -> None:
    c, clock = central({"1": ("*",)}, appointment_grace_s=0)
    issue(c, "a", priority="appointment", slot=slot_in(clock, minutes=20))  # A001
    issue(c, "a", priority="appointment", slot=slot_in(clock, minutes=10))  # A002
    clock.advance(minutes=30)
    issue(c, "a", priority="appointment", slot=slot_in(clock, minutes=-25))  # A003: 25 min late
    # all due; A002 (slot +10) then A001 (slot +20), then the late comer (counts from its arrival)
    assert [call(c, "1") for _ in range(3)] == ["A002", "A001", "A003"]


def test_an_appointment_is_due_from_grace_before_its_slot() -> None:
    c, clock = central({"1": ("*",)}, appointment_grace_s=300)
    issue(c, "a")
    issue(c, "b", priority="appointment", slot=slot_in(clock, minutes=6))
    assert call(c, "1", done=False) == "A001"  # due in 1 min: the walk-in goes first
    c.handle("window.complete", {"window": "1"})
    issue(c, "a")
    clock.advance(minutes=1)
    assert call(c, "1") == "B001"


def test_default_prefers_the_primary_queue_until_overflow() -> None:
    c, clock = central({"1": ("a", "b", "c")}, overflow_after_s=300)
    issue(c, "b")  # B001 at 09:00
    clock.advance(minutes=3)
    issue(c, "a")  # A001 at 09:03: B001 waited only 3 min longer
    assert call(c, "1") == "A001"
    issue(c, "c")  # C001 at 09:03
    clock.advance(minutes=6)
    issue(c, "a")  # A002 at 09:09: B001 waited 9 min longer, C001 6 min: both overflow
    assert call(c, "1") == "B001"  # the longest-waiting of the overflowing heads
    assert call(c, "1") == "C001"  # 6 min > 5 min
    assert call(c, "1") == "A002"
    issue(c, "c")
    assert call(c, "1") == "C002"  # primary empty: the next level with someone waiting


def test_default_secondary_levels_follow_the_listed_order() -> None:
    c, clock = central({"1": ("a", "b", "c")}, overflow_after_s=300)
    issue(c, "c")
    clock.advance(minutes=2)
    issue(c, "b")
    assert call(c, "1") == "B001"  # b is listed before c; C001 is only 2 min older


def test_default_primary_count_and_universal_levels() -> None:
    spec = WindowSpec("1", "1", ("a", "b", "c"), primary=2)
    c, clock = central({"1": spec}, overflow_after_s=300)
    issue(c, "c")
    clock.advance(minutes=1)
    issue(c, "b")
    clock.advance(minutes=1)
    issue(c, "a")
    assert [call(c, "1") for _ in range(3)] == ["B001", "A001", "C001"]


def test_anti_starvation_beats_every_class() -> None:
    c, clock = central({"1": ("a", "b")}, max_wait_boost_s=1200, overflow_after_s=3600)
    issue(c, "b")  # B001, a secondary walk-in
    clock.advance(minutes=21)
    issue(c, "a", priority="green")
    issue(c, "a")
    assert call(c, "1") == "B001"  # waited 21 min > 20: first, before green and the primary queue
    assert call(c, "1") == "A001"


def test_green_and_due_appointments_come_from_every_skill() -> None:
    c, clock = central({"1": ("a", "b")})
    issue(c, "a")
    issue(c, "b", priority="green")
    assert call(c, "1") == "B001"


# --- the no-idle invariant, by hand ------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_calls_when_only_an_early_appointment_waits(policy: str) -> None:
    c, clock = central({"1": ("a",)}, policy=policy)
    issue(c, "a", priority="appointment", slot=slot_in(clock, hours=3))
    assert call(c, "1") == "A001"


# --- ticket classes at issue -------------------------------------------------------------------


def test_issue_stores_priority_and_slot_only_when_needed() -> None:
    c, clock = central({"1": ("*",)})
    out = c.handle("ticket.issue", {"queue": "a"})
    assert "priority" not in out.events[-1].data and "slot" not in out.events[-1].data
    assert out.data["ticket"]["priority"] == "walkin"
    out = c.handle("ticket.issue", {"queue": "a", "priority": "appointment", "slot": "2024-05-06T02:30:00Z"})
    assert out.events[-1].data["priority"] == "appointment"
    assert out.events[-1].data["slot"] == "2024-05-06T10:30:00+08:00"  # hall-local
    view = out.data["ticket"]
    assert (view["priority"], view["slot"], view["first_window"]) == (
        "appointment",
        "2024-05-06T10:30:00+08:00",
        None,
    )
    out = c.handle("ticket.issue", {"queue": "a", "priority": "online"})
    assert out.events[-1].data["priority"] == "online"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"priority": "vip"}, "priority"),
        ({"priority": 1}, "priority"),
        ({"priority": "appointment"}, "slot"),
        ({"priority": "green", "slot": "2024-05-06T10:00:00+08:00"}, "slot"),
        ({"slot": "2024-05-06T10:00:00+08:00"}, "slot"),
        ({"priority": "appointment", "slot": "2024-05-06T10:00:00"}, "slot"),
        ({"priority": "appointment", "slot": "10:00"}, "slot"),
        ({"priority": "appointment", "slot": 1715000000}, "slot"),
        ({"priority": "appointment", "slot": "2024-05-07T10:00:00+08:00"}, "slot"),
        ({"birth_date": "1950-01-01"}, "birth_date"),
        ({"birth_date": "19500230"}, "birth_date"),
        ({"birth_date": 19500101}, "birth_date"),
        ({"birth_date": "20300101"}, "birth_date"),
    ],
)
def test_bad_class_fields_name_the_field(data: dict, field: str) -> None:
    c, clock = central({"1": ("*",)})
    seq = c.last_seq
    with pytest.raises(BadRequest) as err:
        c.handle("ticket.issue", {"queue": "a", **data})
    assert err.value.detail["field"] == field
    assert c.last_seq == seq
    if field == "birth_date":
        assert str(data["birth_date"]) not in json.dumps(err.value.to_dict())


@pytest.mark.parametrize(
    ("birth", "elderly_age", "priority"),
    [
        ("19590506", 65, "green"),  # 65 today
        ("19590507", 65, "walkin"),  # 65 tomorrow
        ("19300101", 65, "green"),
        ("19640506", 60, "green"),
        ("19900101", 65, "walkin"),
        ("20231231", 65, "walkin"),  # a baby
    ],
)
def test_elderly_from_the_birth_date_is_green_and_the_date_is_kept_nowhere(
    birth: str, elderly_age: int, priority: str
) -> None:
    clock = FakeClock()
    c, _ = central({"1": ("*",)}, clock, elderly_age=elderly_age)
    out = c.handle("ticket.issue", {"queue": "a", "birth_date": birth})
    assert out.data["ticket"]["priority"] == priority
    text = json.dumps([out.data, [e.to_dict() for e in out.events]]) + repr(c.state)
    for form in (birth, f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"):
        assert form not in text


def test_an_elderly_appointment_becomes_green_without_its_slot() -> None:
    c, clock = central({"1": ("*",)})
    out = c.handle(
        "ticket.issue",
        {"queue": "a", "priority": "appointment", "slot": slot_in(clock, hours=2), "birth_date": "19400101"},
    )
    assert out.events[-1].data["priority"] == "green"
    assert "slot" not in out.events[-1].data


def test_birthday_on_29_february() -> None:
    clock = FakeClock(datetime(2025, 2, 28, 9, 0, tzinfo=SH))
    c, _ = central({"1": ("*",)}, clock)
    assert c.handle("ticket.issue", {"queue": "a", "birth_date": "19600229"}).data["ticket"]["priority"] == "walkin"
    clock.now = datetime(2025, 3, 1, 9, 0, tzinfo=SH)
    assert c.handle("ticket.issue", {"queue": "a", "birth_date": "19600229"}).data["ticket"]["priority"] == "green"


# --- transfer, first handler, recall limit -------------------------------------------------


def test_transfer_keeps_number_class_and_place_in_arrival_order() -> None:
    c, clock = central({"1": ("a",), "2": ("b",)})
    issue(c, "a", priority="online")  # A001 09:00
    clock.advance(minutes=2)
    issue(c, "b")  # B001 09:02
    clock.advance(minutes=2)
    assert call(c, "1", done=False) == "A001"
    c.handle("window.recall", {"window": "1"})
    c.handle("window.start", {"window": "1"})
    out = c.handle("window.transfer", {"window": "1", "queue": "b"})
    assert [e.type for e in out.events] == ["ticket.transferred"]
    assert out.events[0].data == {
        "ticket": "2024-05-06-A001",
        "number": "A001",
        "queue": "b",
        "from_queue": "a",
        "window": "1",
    }
    t = out.data["ticket"]
    assert (t["number"], t["queue"], t["status"], t["window"], t["recalls"]) == ("A001", "b", "waiting", None, 0)
    assert (t["priority"], t["issued_at"], t["first_window"]) == ("online", "2024-05-06T09:00:00.000+08:00", "1")
    assert out.data["ahead"] == 0 and out.data["people_ahead"] == 0  # it arrived before B001
    assert c.window_state("1")["ticket"] is None
    assert c.queue_status()["waiting"] == {"a": 0, "b": 2, "c": 0}
    assert call(c, "2", done=False) == "A001"
    assert c.ticket("2024-05-06-A001").first_window == "1"  # 首办: still the first window
    assert c.ticket("2024-05-06-A001").window == "2"


def test_transfer_needs_a_ticket_at_the_window_and_a_known_queue() -> None:
    c, clock = central({"1": ("*",)})
    with pytest.raises(Conflict, match="nothing to transfer"):
        c.handle("window.transfer", {"window": "1", "queue": "b"})
    issue(c)
    with pytest.raises(NotFound) as err:
        c.handle("window.transfer", {"window": "1", "queue": "zz"})
    assert err.value.detail["field"] == "queue"
    with pytest.raises(BadRequest):
        c.handle("window.transfer", {"window": "1"})
    call(c, "1", done=False)
    c.handle("window.transfer", {"window": "1", "queue": "a"})  # back into its own line: allowed
    assert c.ahead("2024-05-06-A001") == 0


def test_first_window_is_the_first_caller() -> None:
    c, clock = central({"1": ("*",), "2": ("*",)})
    issue(c)
    call(c, "2", done=False)
    c.handle("window.transfer", {"window": "2", "queue": "b"})
    call(c, "1", done=False)
    assert c.ticket("2024-05-06-A001").first_window == "2"
    assert Central.ticket_view(c.ticket("2024-05-06-A001"))["first_window"] == "2"


def test_call_next_passes_a_ticket_at_its_recall_limit_when_auto_no_show() -> None:
    c, clock = central({"1": ("*",)}, recall_limit=1, auto_no_show=True)
    issue(c)
    issue(c)
    call(c, "1", done=False)
    with pytest.raises(Conflict, match="still at window 1"):  # recalls left: the clerk decides
        c.handle("window.call_next", {"window": "1"})
    c.handle("window.recall", {"window": "1"})
    out = c.handle("window.call_next", {"window": "1"})
    assert [e.type for e in out.events] == ["ticket.no_show", "ticket.called"]
    assert out.events[0].data["reason"] == "recall_limit"
    assert out.data["no_show"]["number"] == "A001" and out.data["no_show"]["status"] == "no_show"
    assert out.data["ticket"]["number"] == "A002"
    c.handle("window.start", {"window": "1"})
    with pytest.raises(Conflict):  # being served: never passed
        c.handle("window.call_next", {"window": "1"})


def test_without_auto_no_show_the_limit_only_refuses_recalls() -> None:
    c, clock = central({"1": ("*",)}, recall_limit=0)
    issue(c)
    call(c, "1", done=False)
    with pytest.raises(Conflict, match="limit 0"):
        c.handle("window.recall", {"window": "1"})
    with pytest.raises(Conflict, match="still at window 1"):
        c.handle("window.call_next", {"window": "1"})


# --- people ahead --------------------------------------------------------------------------


def test_people_ahead_fifo_counts_every_earlier_ticket_on_universal_windows() -> None:
    c, clock = central({"1": ("*",), "2": ("*",)}, policy="fifo")
    for q in ("a", "b", "c", "a"):
        out = c.handle("ticket.issue", {"queue": q})
    assert out.data["people_ahead"] == 3
    assert out.data["ahead"] == 1  # same queue only (v1 meaning)
    assert c.people_ahead("2024-05-06-B001") == 1


def test_people_ahead_dedicated_counts_its_own_department() -> None:
    c, clock = central({"1": ("a", "b"), "2": ("b", "a")}, policy="dedicated")
    for q in ("a", "b", "a", "b"):
        out = c.handle("ticket.issue", {"queue": q})
    assert out.data["people_ahead"] == 1


def test_people_ahead_default_counts_higher_classes_first() -> None:
    c, clock = central({"1": ("*",)}, appointment_grace_s=0)
    issue(c, "a")  # A001
    issue(c, "b", priority="appointment", slot=slot_in(clock, minutes=30))  # B001 not due
    issue(c, "c", priority="appointment", slot=slot_in(clock, minutes=-1))  # C001 due
    issue(c, "a", priority="green")  # A002
    out = c.handle("ticket.issue", {"queue": "b"})  # B003
    assert out.data["people_ahead"] == 3  # A002 green, C001 due, A001 earlier walk-in
    assert c.people_ahead("2024-05-06-A002") == 0
    assert c.people_ahead("2024-05-06-C001") == 1  # green A002
    assert c.people_ahead("2024-05-06-B001") == 2  # A002 green, C001 earlier slot
    assert c.people_ahead("2024-05-06-A001") == 2
    call(c, "1")
    assert c.people_ahead("2024-05-06-A002") is None  # called: not waiting


def test_people_ahead_weights_queues_that_share_only_some_windows() -> None:
    # a: windows 1, 2; b: windows 2, 3. Half of b's serving capacity (window 2) can serve a.
    c, clock = central({"1": ("a",), "2": ("a", "b"), "3": ("b",)}, policy="fifo")
    for q in ("b", "b", "b", "b"):
        issue(c, q)
    out = c.handle("ticket.issue", {"queue": "a"})
    assert out.data["people_ahead"] == 2  # 4 earlier b tickets x 1/2


# --- config ------------------------------------------------------------------------------------


def test_window_and_hall_fields_are_checked() -> None:
    q = {"a": QueueSpec("a", "A", "x")}
    with pytest.raises(ConfigError, match="kind"):
        WindowSpec("1", "1", kind="vip")
    with pytest.raises(ConfigError, match="primary"):
        WindowSpec("1", "1", ("a",), primary=2)
    with pytest.raises(ConfigError, match="primary"):
        WindowSpec("1", "1", ("a",), primary=True)
    with pytest.raises(ConfigError, match="twice"):
        WindowSpec("1", "1", ("a", "a"))
    with pytest.raises(ConfigError, match=r"speed\.a"):
        WindowSpec("1", "1", ("a",), speed={"a": 0})
    with pytest.raises(ConfigError, match="does not serve"):
        WindowSpec("1", "1", ("a",), speed={"b": 1.5})
    with pytest.raises(ConfigError, match="windows.1.speed"):
        HallSpec("h", q, {"1": WindowSpec("1", "1", speed={"zz": 2.0})})
    for field, value in (
        ("policy", "random"),
        ("elderly_age", 0),
        ("elderly_age", 65.5),
        ("appointment_grace_s", -1),
        ("overflow_after_s", float("nan")),
        ("max_wait_boost_s", 0),
        ("auto_no_show", "yes"),
    ):
        with pytest.raises(ConfigError, match=field):
            HallSpec("h", q, {}, **{field: value})
    w = WindowSpec("1", "1", ["a", "b"], kind="complaint", speed={"a": 2}, primary=2)
    assert (w.queues, w.primary_queues, w.speed_for("a"), w.speed_for("b")) == (("a", "b"), ("a", "b"), 2.0, 1.0)
    assert hash(w) == hash(WindowSpec("1", "1", ("a", "b"), kind="complaint", speed={"a": 2}, primary=2))
    h = HallSpec("h", q, {})
    assert (h.policy, h.elderly_age, h.auto_no_show) == ("default", 65, False)
    assert (h.appointment_grace_s, h.overflow_after_s, h.max_wait_boost_s) == (120.0, 300.0, 1200.0)


def test_every_policy_name_has_a_policy() -> None:
    assert sorted(POLICIES) == sorted(POLICY_NAMES)
    h = hall({"1": ("*",)})
    assert make_policy(h).name == "default"
    for name in POLICY_NAMES:
        assert make_policy(h, name).name == name


def test_ticket_evolve_is_replace() -> None:
    t = Ticket("d-A001", "A001", "a", "2024-05-06T09:00:00.000+08:00", seq=4)
    moved = t.evolve(status="called", window="1")
    assert moved == Ticket("d-A001", "A001", "a", "2024-05-06T09:00:00.000+08:00", "called", "1", seq=4)
    assert t.status == "waiting"
    with pytest.raises(TypeError):
        t.evolve(colour="red")


# --- replay and backward compatibility -------------------------------------------------------


def test_v1_events_still_replay() -> None:
    """Events as hallctl wrote them before ticket classes existed."""
    ts = "2024-05-06T09:00:00.000+08:00"
    raw = [
        {"seq": 1, "type": "day.started", "ts": ts, "data": {"day": "2024-05-06", "expired": []}},
        {"seq": 2, "type": "window.opened", "ts": ts, "data": {"window": "1"}},
        {"seq": 3, "type": "ticket.issued", "ts": ts,
         "data": {"ticket": "2024-05-06-A001", "number": "A001", "queue": "a", "channel": "kiosk"}},
        {"seq": 4, "type": "ticket.issued", "ts": ts,
         "data": {"ticket": "2024-05-06-A002", "number": "A002", "queue": "a", "channel": "kiosk",
                  "phone": "13912345678"}},
        {"seq": 5, "type": "ticket.called", "ts": ts,
         "data": {"ticket": "2024-05-06-A001", "number": "A001", "queue": "a", "window": "1",
                  "window_name": "1号窗口"}},
        {"seq": 6, "type": "ticket.completed", "ts": ts,
         "data": {"ticket": "2024-05-06-A001", "number": "A001", "queue": "a", "window": "1"}},
    ]
    clock = FakeClock()
    c = Central(hall({"1": ("*",)}), clock)
    c.replay(Event.from_dict(d) for d in raw)
    a1, a2 = c.ticket("2024-05-06-A001"), c.ticket("2024-05-06-A002")
    assert (a1.status, a1.first_window, a1.priority, a1.seq) == ("done", "1", "walkin", 3)
    assert (a2.status, a2.priority, a2.slot) == ("waiting", "walkin", None)
    assert c.state.waiting == {"a": [(4, "2024-05-06-A002")]}
    assert c.state.lines.capacity == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert issue(c) == "A003"


@pytest.mark.parametrize(
    "data",
    [
        {"ticket": "d-A001", "number": "A001", "queue": "a", "priority": "vip"},
        {"ticket": "d-A001", "number": "A001", "queue": "a", "priority": "appointment"},
        {"ticket": "d-A001", "number": "A001", "queue": "a", "slot": "2024-05-06T10:00:00+08:00"},
        {"ticket": "d-A001", "number": "A001", "queue": "a", "priority": "appointment", "slot": "10:00"},
    ],
)
def test_replay_refuses_an_issued_event_with_a_bad_class(data: dict) -> None:
    c = Central(hall({"1": ("*",)}), FakeClock())
    with pytest.raises(ReplayError, match="does not fit"):
        c.apply(Event(1, "ticket.issued", "2024-05-06T09:00:00.000+08:00", data))
    assert c.last_seq == 0 and not c.tickets and c.state.counters == {}


def test_a_new_day_keeps_windows_and_capacity() -> None:
    c, clock = central({"1": ("a",), "2": ("*",)}, policy="sew")
    issue(c)
    call(c, "1", done=False)
    clock.advance(days=1)
    assert [e.type for e in c.tick().events] == ["day.started"]
    assert c.state.lines.capacity == {"a": 2.0, "b": 1.0, "c": 1.0}
    assert c.window_state("1")["state"] == "open" and c.window_state("1")["ticket"] is None
    assert len(c.state.lines) == 0 and not c.tickets


# --- random halls, every policy ------------------------------------------------------------

QUEUE_IDS = ("q1", "q2", "q3", "q4")
PRIORITY_DRAW = st.sampled_from(["walkin", "walkin", "walkin", "online", "green", "appointment", "appointment"])


@st.composite
def random_halls(draw: st.DrawFn, policy: str | None = None, min_queues: int = 1) -> HallSpec:
    n_queues = draw(st.integers(min_queues, 4))
    queues = {q: QueueSpec(q, "ABCD"[i], q) for i, q in enumerate(QUEUE_IDS[:n_queues])}
    windows = {}
    for i in range(draw(st.integers(1, 5))):
        wid = f"w{i}"
        if draw(st.booleans()):
            skills: tuple[str, ...] = ("*",)
        else:
            skills = tuple(draw(st.permutations(list(queues)))[: draw(st.integers(1, n_queues))])
        speed_for = skills if skills != ("*",) else tuple(queues)
        speed = draw(st.dictionaries(st.sampled_from(speed_for), st.sampled_from([0.5, 1.0, 1.5, 2.0]), max_size=2))
        windows[wid] = WindowSpec(
            wid,
            f"{i}号窗口",
            skills,
            kind=draw(st.sampled_from(["acceptance", "handout", "complaint"])),
            speed=speed,
            primary=draw(st.integers(1, len(skills))),
        )
    # matters (some with a time of their own) and, sometimes, classes numbered on their own
    matters = {
        f"m{i}": MatterSpec(f"m{i}", f"事项{i}", draw(st.sampled_from(list(queues))), None,
                            draw(st.sampled_from([None, 120.0, 1800.0])))
        for i in range(draw(st.integers(0, 3)))
    }
    class_prefix = draw(st.sampled_from([{}, {"green": "G"}, {"green": "G", "appointment": "Y"}]))
    return HallSpec(
        "rand",
        queues,
        windows,
        matters=matters,
        class_prefix=class_prefix,
        policy=policy or draw(st.sampled_from(POLICY_NAMES)),
        recall_limit=draw(st.integers(0, 2)),
        auto_no_show=draw(st.booleans()),
        day_reset_hour=3,
        board_size=3,
        appointment_grace_s=draw(st.sampled_from([0, 60, 300])),
        overflow_after_s=draw(st.sampled_from([0, 120, 300])),
        max_wait_boost_s=draw(st.sampled_from([300, 1200, 36000])),
    )


def _since(t: Ticket) -> float:
    issued = datetime.fromisoformat(t.issued_at).timestamp()
    return max(issued, datetime.fromisoformat(t.slot).timestamp()) if t.slot else issued


def _policy_serves(hall: HallSpec, w: WindowSpec, queue: str) -> bool:
    skills = w.primary_queues if hall.policy == "dedicated" else w.queues
    return skills == ("*",) or queue in skills


def reference_next(c: Central, window: str, now: float) -> str | None:
    """The documented rules (docs/assignment.md), by brute force over every waiting ticket."""
    hall = c.hall
    w = hall.windows[window]
    waiting = [t for t in c.tickets.values() if t.status == "waiting" and _policy_serves(hall, w, t.queue)]
    if not waiting:
        return None
    if hall.policy in ("fifo", "dedicated"):
        return min(waiting, key=lambda t: t.seq).id
    if hall.policy == "sew":
        def pool(q: str) -> frozenset[str]:
            return frozenset(x.id for x in hall.windows.values() if x.serves(q))

        def term(q: str) -> float:
            cap = 0.0
            for other in hall.windows.values():
                if other.serves(q) and c.state.windows[other.id].state == "open":
                    cap += other.speed_for(q)
            n = sum(1 for t in c.tickets.values() if t.status == "waiting" and t.queue == q)
            return n / cap if cap > 0 else float("inf")

        pools: dict[frozenset[str], list[Ticket]] = {}
        for t in waiting:
            pools.setdefault(pool(t.queue), []).append(t)

        def load(tickets: list[Ticket]) -> float:
            return fsum(term(q) for q in {t.queue for t in tickets})

        best = min(pools.values(), key=lambda ts: (-load(ts), min(t.seq for t in ts)))
        return min(best, key=lambda t: t.seq).id
    # default: heads of each (queue, class) line
    lines: dict[tuple[str, str], list[Ticket]] = {}
    for t in waiting:
        cls = {"walkin": "ordinary", "online": "ordinary"}.get(t.priority, t.priority)
        lines.setdefault((t.queue, cls), []).append(t)
    heads = {
        k: min(v, key=(lambda t: (_since(t), t.seq)) if k[1] == "appointment" else (lambda t: t.seq))
        for k, v in lines.items()
    }
    starving = [h for h in heads.values() if _since(h) < now - hall.max_wait_boost_s]
    if starving:
        return min(starving, key=lambda t: (_since(t), t.seq)).id
    greens = [h for (q, cls), h in heads.items() if cls == "green"]
    if greens:
        return min(greens, key=lambda t: t.seq).id
    appts = [h for (q, cls), h in heads.items() if cls == "appointment"]
    first_appt = min(appts, key=lambda t: (_since(t), t.seq)) if appts else None
    if first_appt is not None and _since(first_appt) <= now + hall.appointment_grace_s:
        return first_appt.id
    ordinary = [h for (q, cls), h in heads.items() if cls == "ordinary"]
    if ordinary:
        def level(q: str) -> int:
            if w.universal:
                return 0
            return max(0, w.queues.index(q) - w.primary + 1)
        by_level: dict[int, Ticket] = {}
        for h in ordinary:
            lv = level(h.queue)
            if lv not in by_level or h.seq < by_level[lv].seq:
                by_level[lv] = h
        first = min(by_level)
        ref = by_level[first]
        over = [h for lv, h in by_level.items() if lv > first and _since(h) < _since(ref) - hall.overflow_after_s]
        return min(over, key=lambda t: (_since(t), t.seq)).id if over else ref.id
    return first_appt.id if first_appt is not None else None


@pytest.mark.parametrize("policy", POLICY_NAMES)
@given(
    data=st.data(),
    arrivals=st.lists(
        st.tuples(
            st.integers(0, 3),  # queue index (mod the hall's queues)
            PRIORITY_DRAW,
            st.integers(0, 120),  # seconds since the previous ticket
            st.integers(-20, 60),  # slot, minutes from arrival (appointments)
        ),
        min_size=10,
        max_size=40,
    ),
    calls=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 400)), min_size=10, max_size=60),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_call_follows_the_documented_rules(
    policy: str, data: st.DataObject, arrivals: list[tuple[int, str, int, int]], calls: list[tuple[int, int]]
) -> None:
    """A busy morning on a random hall: each call matches the brute-force reading of the rules,
    and no open, free window is left idle while it can serve someone."""
    hall = data.draw(random_halls(policy=policy, min_queues=2))
    clock = FakeClock(datetime(2024, 5, 6, 8, 30, tzinfo=SH))
    c = Central(hall, clock)
    queues = sorted(hall.queues)
    windows = sorted(hall.windows)
    for w in windows:
        c.handle("window.open", {"window": w})
    for qi, priority, gap, slot_min in arrivals:
        clock.advance(seconds=gap)
        req: dict[str, Any] = {"queue": queues[qi % len(queues)]}
        if priority != "walkin":
            req["priority"] = priority
        if priority == "appointment":
            req["slot"] = slot_in(clock, minutes=slot_min)
        c.handle("ticket.issue", req)
    for wi, gap in calls:
        clock.advance(seconds=gap)
        window = windows[wi % len(windows)]
        if c.state.windows[window].ticket is not None:
            c.handle("window.complete", {"window": window})
        expected = reference_next(c, window, clock.now.timestamp())
        got = c.handle("window.call_next", {"window": window}).data["ticket"]
        assert (got and got["id"]) == expected
        if got is None:
            spec = hall.windows[window]
            assert not [t for t in c.tickets.values() if t.status == "waiting" and _policy_serves(hall, spec, t.queue)]


class RandomHall(RuleBasedStateMachine):
    """Random halls, random citizens and clerks, every policy: the engine's promises hold."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(datetime(2024, 5, 6, 8, 0, tzinfo=SH))
        self.central: Central | None = None
        self.events: list[Event] = []
        self.public: list[Any] = []
        self.births: set[str] = set()
        self.numbers_today: list[str] = []

    @initialize(hall=random_halls(), opened=st.lists(st.sampled_from([True, True, True, False]), min_size=5, max_size=5))
    def build(self, hall: HallSpec, opened: list[bool]) -> None:
        self.central = Central(hall, self.clock)
        for w, is_open in zip(hall.windows, opened):
            if is_open:
                self.run("window.open", {"window": w})

    @property
    def c(self) -> Central:
        assert self.central is not None
        return self.central

    def run(self, action: str, data: dict) -> Outcome | None:
        try:
            out = self.c.handle(action, data)
        except Conflict:
            return None
        self.record(out)
        return out

    def record(self, out: Outcome) -> None:
        for e in out.events:
            if e.type == "day.started":
                self.numbers_today = []
            elif e.type == "ticket.issued":
                self.numbers_today.append(e.data["number"])
        self.events += out.events
        self.public.append(out.data)

    def windows(self, *, busy: bool | None = None) -> st.SearchStrategy[str]:
        """Any window; mostly, when ``busy`` is given, an open one that is busy (or free)."""
        every = sorted(self.c.hall.windows)
        live = self.c.state.windows
        likely = [w for w in every if live[w].state == "open" and (live[w].ticket is not None) == busy]
        if busy is None or not likely:
            return st.sampled_from(every)
        return st.sampled_from(likely) | st.sampled_from(likely) | st.sampled_from(every)

    # -- citizens -------------------------------------------------------------------------------

    @rule(data=st.data(), n=st.integers(1, 3))
    def issue(self, data: st.DataObject, n: int) -> None:
        for _ in range(n):
            matters = sorted(self.c.hall.matters)
            matter = data.draw(st.none() | st.sampled_from(matters)) if matters else None
            self.issue_one(
                self.c.hall.matters[matter].queue if matter else data.draw(st.sampled_from(sorted(self.c.hall.queues))),
                data.draw(PRIORITY_DRAW),
                data.draw(st.integers(-40, 90)),
                data.draw(st.none() | st.none() | st.dates(date(1920, 1, 1), date(2010, 12, 31))),
                matter,
            )

    def issue_one(self, queue: str, priority: str, slot_min: int, birth: date | None,
                  matter: str | None = None) -> None:
        req: dict[str, Any] = {"matter": matter} if matter else {"queue": queue}
        if priority != "walkin":
            req["priority"] = priority
        if priority == "appointment":
            hall = self.c.hall
            day = max(self.c.day or "", hall.business_day(self.clock.now))  # a day never un-rolls
            slot = self.clock.now + timedelta(minutes=slot_min)
            if hall.business_day(slot) != day:
                y, m, d = map(int, day.split("-"))
                slot = datetime(y, m, d, hall.day_reset_hour + 6, slot_min % 60, tzinfo=SH)
            req["slot"] = slot.isoformat()
        if birth is not None:
            req["birth_date"] = birth.strftime("%Y%m%d")
            self.births.add(req["birth_date"])
        out = self.run("ticket.issue", req)
        assert out is not None
        assert out.data["people_ahead"] >= 0
        assert out.data["ahead"] == bisect_left(
            self.c.state.waiting[queue], (self.c.ticket(out.data["ticket"]["id"]).seq,)
        )

    # -- clerks ---------------------------------------------------------------------------------

    @rule(data=st.data())
    def call_next(self, data: st.DataObject) -> None:
        c = self.c
        window = data.draw(self.windows(busy=False))
        live = c.state.windows[window]
        now = self.clock.now.timestamp()
        rolls = c.day is None or self.c.hall.business_day(self.clock.now) > c.day
        at = c.tickets.get(live.ticket) if live.ticket else None
        passes = (
            at is not None and c.hall.auto_no_show and at.status == "called" and at.recalls >= c.hall.recall_limit
        )
        can_call = live.state == "open" and (at is None or passes or rolls)
        # a ticket passed at its recall limit is at the window, not waiting: same lines either way
        expected = None if rolls or not can_call else reference_next(c, window, now)
        out = self.run("window.call_next", {"window": window})
        if not can_call:
            assert out is None
            return
        assert out is not None
        got = out.data["ticket"]
        if rolls:
            assert got is None  # a new day: yesterday's tickets expired
            return
        assert (got and got["id"]) == expected
        if got is None:  # the no-idle invariant, independent of the reference
            spec = c.hall.windows[window]
            assert not [t for t in c.tickets.values() if t.status == "waiting" and _policy_serves(c.hall, spec, t.queue)]
        else:
            assert _policy_serves(c.hall, c.hall.windows[window], got["queue"])
            assert c.ticket(got["id"]).first_window is not None

    @rule(data=st.data(), action=st.sampled_from(["recall", "start", "complete", "no_show", "recall"]))
    def at_window(self, data: st.DataObject, action: str) -> None:
        self.run(f"window.{action}", {"window": data.draw(self.windows(busy=True))})

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        window = data.draw(self.windows(busy=True))
        queue = data.draw(st.sampled_from(sorted(self.c.hall.queues)))
        before = self.c.state.windows[window].ticket
        before_t = self.c.tickets.get(before) if before else None
        matters = sorted(self.c.hall.matters)
        matter = data.draw(st.none() | st.sampled_from(matters)) if matters else None
        if matter is not None:
            queue = self.c.hall.matters[matter].queue
        out = self.run("window.transfer", {"window": window, "matter": matter} if matter else {"window": window, "queue": queue})
        if out is not None and before_t is not None and before_t.status in AT_WINDOW:
            t = self.c.ticket(before_t.id)
            assert (t.status, t.queue, t.seq, t.issued_at, t.number) == (
                "waiting", queue, before_t.seq, before_t.issued_at, before_t.number
            )

    @rule(data=st.data(), action=st.sampled_from(["open", "open", "open", "pause", "close"]))
    def window_state(self, data: st.DataObject, action: str) -> None:
        req = {"window": data.draw(self.windows())}
        if action == "open" and data.draw(st.booleans()):
            req["clerk"] = data.draw(st.sampled_from(["s1", "s2", "s3"]))  # a sign-in or a take-over
        self.run(f"window.{action}", req)

    # -- time -----------------------------------------------------------------------------------

    @rule()
    def next_morning(self) -> None:
        """08:30 the next day: a new business day at the next command; windows and signed-in
        clerks stay as they were left."""
        self.clock.now = (self.clock.now + timedelta(days=1)).replace(hour=8, minute=30, second=0, microsecond=0)

    @rule(
        seconds=st.integers(0, 99).flatmap(
            lambda p: st.integers(0, 900) if p < 92 else st.integers(0, 26 * 3600)  # rarely a new day
        )
    )
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(seconds=st.integers(1, 300))
    def clock_steps_back(self, seconds: int) -> None:
        self.clock.advance(seconds=-seconds)

    @rule()
    def tick(self) -> None:
        self.record(self.c.tick())

    # -- the promises ---------------------------------------------------------------------------

    @invariant()
    def replay_reproduces_the_state(self) -> None:
        if self.central is None:
            return
        again = Central(self.c.hall, lambda: (_ for _ in ()).throw(AssertionError("replay read the clock")))
        again.replay(self.events)
        assert again.state == self.c.state
        # a restart from the newest day checkpoint (through JSON, as stored) plus the events after
        # it gives the same state as replaying everything
        cp = self.c.checkpoint()
        if cp is not None:
            seq, _, doc = cp
            resumed = Central.from_checkpoint(self.c.hall, again._clock, json.loads(json.dumps(doc)))
            resumed.replay(e for e in self.events if e.seq > seq)
            assert resumed.state == self.c.state
        assert again.queue_status() == self.c.queue_status()
        assert again.board_state() == self.c.board_state()

    @invariant()
    def no_ticket_lost_or_duplicated_and_no_number_reused(self) -> None:
        if self.central is None:
            return
        c = self.c
        assert len(set(self.numbers_today)) == len(self.numbers_today)
        assert sorted(t.number for t in c.tickets.values()) == sorted(self.numbers_today)
        waiting = {t.id for t in c.tickets.values() if t.status == "waiting"}
        lines = c.state.lines
        assert set(lines.entries) == waiting
        in_lines = [w.ticket for ql in lines.by_queue.values() for w in ql.all]
        assert sorted(in_lines) == sorted(waiting)
        assert all(ql.all for ql in lines.by_queue.values())
        at_windows = [live.ticket for live in c.state.windows.values() if live.ticket]
        assert len(set(at_windows)) == len(at_windows)
        assert set(at_windows) == {t.id for t in c.tickets.values() if t.status in AT_WINDOW}
        for t in c.tickets.values():
            if t.status in AT_WINDOW:
                assert c.state.windows[t.window].ticket == t.id
        assert lines.n_green == sum(1 for t in c.tickets.values() if t.status == "waiting" and t.priority == "green")
        assert lines.n_appt == sum(
            1 for t in c.tickets.values() if t.status == "waiting" and t.priority == "appointment"
        )

    @invariant()
    def lines_are_sorted_and_hold_each_ticket_once_per_class(self) -> None:
        if self.central is None:
            return
        c = self.c
        for q, ql in c.state.lines.by_queue.items():
            assert ql.all == sorted(ql.all)
            assert ql.green == sorted(ql.green) and ql.ordinary == sorted(ql.ordinary)
            assert ql.appt == sorted(ql.appt, key=BY_SINCE)
            assert sorted(ql.green + ql.appt + ql.ordinary) == ql.all
            for e in ql.all:
                t = c.ticket(e.ticket)
                assert (e.queue, e.priority, e.seq) == (q, t.priority, t.seq)
                assert e.since == _since(t)
        now = self.clock.now
        for tid in c.state.lines.entries:
            assert c.people_ahead(tid, now) >= 0

    @invariant()
    def no_birth_date_anywhere(self) -> None:
        if self.central is None or not self.births:
            return
        text = json.dumps([e.to_dict() for e in self.events] + self.public, ensure_ascii=False) + repr(self.c.state)
        for birth in self.births:
            assert birth not in text
        self.public.clear()


TestRandomHall = RandomHall.TestCase
TestRandomHall.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
