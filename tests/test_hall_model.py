"""The hall model: matters (事项) grouped into departments and sections, opening hours with the
lunch break and holidays, numbering per class, and where a ticket stands as the queue moves."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_central_core import SH, FakeClock

from hallctl.central.core import Central
from hallctl.central.hours import OpeningHours
from hallctl.central.kpi import Kpis
from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.errors import BadRequest, ConfigError, HallClosed, NotFound

# Monday 2026-11-23
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=SH)
LUNCH = OpeningHours.parse(["08:30-12:00", "13:30-17:00"], [1, 2, 3, 4, 5],
                           closed_dates=["2026-12-31"], open_dates=["2026-11-28"])


def hall(**kw) -> HallSpec:
    kw.setdefault("matters", {
        "transfer": MatterSpec("transfer", "二手房转移登记", "estate", "nr", 1800),
        "mortgage": MatterSpec("mortgage", "抵押登记", "estate", "nr", 300),
        "invoice": MatterSpec("invoice", "发票领用", "tax", "tax"),
    })
    kw.setdefault("departments", {"nr": DepartmentSpec("nr", "自然资源局"), "tax": DepartmentSpec("tax", "税务局")})
    return HallSpec(
        hall_id="xiaoshan",
        queues={
            "estate": QueueSpec("estate", "B", "不动产", expected_service_s=900),
            "tax": QueueSpec("tax", "C", "税务", expected_service_s=600),
        },
        windows={
            "1": WindowSpec("1", "1号窗口", ("estate",)),
            "2": WindowSpec("2", "2号窗口", ("tax",)),
        },
        **kw,
    )


def run(c: Central, events: list, action: str, **data):
    out = c.handle(action, data)
    events.extend(out.events)
    return out.data


# -- matters and departments ---------------------------------------------------------------


def test_a_ticket_for_a_matter_goes_to_its_section_and_names_its_department():
    c, events = Central(hall(), FakeClock(MONDAY_9)), []
    t = run(c, events, "ticket.issue", matter="transfer")["ticket"]
    assert (t["number"], t["queue"], t["matter"]) == ("B001", "estate", "transfer")
    issued = events[-1]
    assert issued.data["matter"] == "transfer" and issued.data["department"] == "nr"
    # naming both is fine when they agree, refused when they do not
    assert run(c, events, "ticket.issue", matter="invoice", queue="tax")["ticket"]["number"] == "C001"
    with pytest.raises(BadRequest, match="served in queue 'estate'"):
        c.handle("ticket.issue", {"matter": "transfer", "queue": "tax"})
    with pytest.raises(NotFound, match="no matter 'passport'"):
        c.handle("ticket.issue", {"matter": "passport"})
    with pytest.raises(BadRequest, match="queue: required"):
        c.handle("ticket.issue", {})


def test_transfer_to_another_matter_moves_the_ticket_to_that_section_keeping_its_number():
    c, events = Central(hall(), FakeClock(MONDAY_9)), []
    run(c, events, "window.open", window="1")
    run(c, events, "window.open", window="2")
    run(c, events, "ticket.issue", matter="transfer")
    run(c, events, "window.call_next", window="1")
    moved = run(c, events, "window.transfer", window="1", matter="invoice")["ticket"]
    assert (moved["number"], moved["queue"], moved["matter"], moved["status"]) == ("B001", "tax", "invoice", "waiting")
    assert events[-1].data["department"] == "tax"
    called = run(c, events, "window.call_next", window="2")["ticket"]
    assert called["number"] == "B001"
    twin = Central(hall(), FakeClock(MONDAY_9))
    twin.replay(events)
    assert twin.state == c.state


def test_kpis_count_per_matter_and_department():
    clock = FakeClock(MONDAY_9)
    c, events = Central(hall(), clock), []
    run(c, events, "window.open", window="1")
    for matter, minutes in (("transfer", 30), ("mortgage", 5), ("mortgage", 7)):
        run(c, events, "ticket.issue", matter=matter)
        run(c, events, "window.call_next", window="1")
        clock.advance(minutes=minutes)
        run(c, events, "window.complete", window="1")
    summary = Kpis.from_events(events).summary()
    assert summary["by_matter"]["mortgage"]["completed"] == 2
    assert summary["by_matter"]["mortgage"]["service_s"]["mean"] == pytest.approx(360.0)
    assert summary["by_matter"]["transfer"]["service_s"]["mean"] == pytest.approx(1800.0)
    assert summary["by_department"]["nr"]["completed"] == 3
    assert "tax" not in summary["by_department"]


def test_the_prediction_weighs_the_matters_waiting_ahead():
    """Three long matters ahead make a longer wait than three short ones in the same queue; the
    figures are the matters' priors over one window (the window is free, so no residual)."""
    for matter, each_s in (("transfer", 1800), ("mortgage", 300)):
        c, events = Central(hall(), FakeClock(MONDAY_9)), []
        run(c, events, "window.open", window="1")
        for _ in range(3):
            run(c, events, "ticket.issue", matter=matter)
        reply = run(c, events, "ticket.issue", queue="estate")
        assert reply["people_ahead"] == 3
        # 3 of this matter + the newcomer (no matter: the queue's 900 s) averaged over 4 waiting
        mean = (3 * each_s + 900) / 4
        assert reply["predicted_wait_min"] == round(3 * mean / 60, 1)


def test_each_matter_learns_its_own_service_time():
    clock = FakeClock(MONDAY_9)
    c, events = Central(hall(), clock), []
    run(c, events, "window.open", window="1")
    for _ in range(10):
        run(c, events, "ticket.issue", matter="mortgage")
        run(c, events, "window.call_next", window="1")
        clock.advance(minutes=20)  # mortgages take 20 min here, not the configured 5
        run(c, events, "window.complete", window="1")
    learned = c.state.matter_service["mortgage"]
    assert 300 < learned < 1200 and learned > 900, learned
    assert "transfer" not in c.state.matter_service  # nothing learned about it: its prior stands
    twin = Central(hall(), clock)
    twin.replay(events)
    assert twin.state.matter_service == c.state.matter_service


def test_a_matter_without_its_own_time_starts_from_what_its_queue_has_learned():
    clock = FakeClock(MONDAY_9)
    h = hall(matters={"plain": MatterSpec("plain", "一般事项", "tax")})
    c, events = Central(h, clock), []
    run(c, events, "window.open", window="2")
    for _ in range(20):  # tax services take 30 min, not the configured 10
        run(c, events, "ticket.issue", queue="tax")
        run(c, events, "window.call_next", window="2")
        clock.advance(minutes=30)
        run(c, events, "window.complete", window="2")
    learned = c.service_estimate("tax")
    assert learned > 1500
    with_matter = run(c, events, "ticket.issue", matter="plain")
    without = run(c, events, "ticket.issue", queue="tax")
    # the free window takes the first; the second waits one learned tax service, matter or not
    assert with_matter["predicted_wait_min"] == 0.0
    assert without["predicted_wait_min"] == round(learned / 60, 1)


# -- numbering per class ---------------------------------------------------------------------


def test_a_class_with_its_own_prefix_is_numbered_on_its_own_and_never_reuses_a_number():
    clock = FakeClock(MONDAY_9)
    c, events = Central(hall(class_prefix={"green": "L"}), clock), []
    numbers = [
        run(c, events, "ticket.issue", **kw)["ticket"]["number"]
        for kw in ({"queue": "estate"}, {"queue": "estate", "priority": "green"}, {"queue": "tax"},
                   {"queue": "tax", "birth_date": "19400101"}, {"queue": "estate"})
    ]
    assert numbers == ["B001", "L001", "C001", "L002", "B002"]
    twin = Central(hall(class_prefix={"green": "L"}), clock)
    twin.replay(events)
    assert run(twin, [], "ticket.issue", queue="tax", priority="green")["ticket"]["number"] == "L003"


@pytest.mark.parametrize("prefix, problem", [
    ({"green": "B"}, "queue 'estate'"),
    ({"vip": "V"}, "unknown class"),
    ({"green": "l"}, "capital letters"),
    ({"green": "L", "online": "L"}, "share a prefix"),
])
def test_class_prefixes_are_checked(prefix, problem):
    with pytest.raises(ConfigError, match=problem):
        hall(class_prefix=prefix)


# -- opening hours -------------------------------------------------------------------------


@pytest.mark.parametrize("now, opens", [
    (datetime(2026, 11, 23, 12, 10, tzinfo=SH), "2026-11-23T13:30:00+08:00"),  # lunch
    (datetime(2026, 11, 23, 8, 0, tzinfo=SH), "2026-11-23T08:30:00+08:00"),  # early
    (datetime(2026, 11, 27, 17, 0, tzinfo=SH), "2026-11-28T08:30:00+08:00"),  # Fri -> 调休 Saturday
    (datetime(2026, 11, 28, 17, 30, tzinfo=SH), "2026-11-30T08:30:00+08:00"),  # Sat -> Mon
    (datetime(2026, 12, 30, 18, 0, tzinfo=SH), "2027-01-01T08:30:00+08:00"),  # holiday on the 31st
])
def test_no_ticket_outside_the_opening_hours_and_the_error_says_when_it_opens(now, opens):
    clock = FakeClock(now)
    c = Central(hall(hours=LUNCH), clock)
    with pytest.raises(HallClosed) as err:
        c.handle("ticket.issue", {"queue": "tax"})
    assert err.value.code == "hall_closed"
    assert err.value.detail["opens_at"] == opens
    assert c.tickets == {} and c.last_seq <= 1  # nothing issued (a day.started at most)


def test_windows_serve_the_waiting_through_the_lunch_break():
    clock = FakeClock(datetime(2026, 11, 23, 11, 55, tzinfo=SH))
    c, events = Central(hall(hours=LUNCH), clock), []
    run(c, events, "window.open", window="2")
    run(c, events, "ticket.issue", queue="tax")
    run(c, events, "ticket.issue", queue="tax")
    status = run(c, events, "queue.status")
    assert status["hours"] == {"open": True, "periods": ["08:30-12:00", "13:30-17:00"],
                               "closes_at": "2026-11-23T12:00:00+08:00",
                               "opens_at": "2026-11-23T13:30:00+08:00"}
    clock.advance(minutes=10)  # 12:05
    assert run(c, events, "window.call_next", window="2")["ticket"]["number"] == "C001"
    run(c, events, "window.complete", window="2")
    assert run(c, events, "window.call_next", window="2")["ticket"]["number"] == "C002"
    assert run(c, events, "queue.status")["hours"]["open"] is False
    clock.now = datetime(2026, 11, 23, 13, 30, tzinfo=SH)
    assert run(c, events, "ticket.issue", queue="tax")["ticket"]["number"] == "C003"


@pytest.mark.parametrize("periods, weekdays, key", [
    (["8:30-12:00"], [1], "hours[0]"),
    (["08:30-12:00", "11:00-13:00"], [1], "hours"),
    (["12:00-08:30"], [1], "hours[0]"),
    ([], [1], "hours"),
    (["08:30-12:00"], [0], "weekdays"),
    (["08:30-12:00"], [], "weekdays"),
])
def test_bad_opening_hours_name_the_key(periods, weekdays, key):
    with pytest.raises(ConfigError) as err:
        OpeningHours.parse(periods, weekdays)
    assert err.value.key == key


TIMES = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=SH))


@settings(max_examples=300, deadline=None)
@given(TIMES)
def test_hours_answers_agree_with_each_other(now):
    opens = LUNCH.next_open(now)
    assert opens is not None and opens > now
    assert LUNCH.is_open(opens)
    assert LUNCH.is_open(opens - timedelta(minutes=1)) is False  # a start, not the middle
    closes = LUNCH.closes_at(now)
    assert (closes is not None) == LUNCH.is_open(now)
    if closes is not None:
        assert closes > now and not LUNCH.is_open(closes)
    # closed on a holiday, open on a make-up Saturday in its periods
    assert not LUNCH.works_on(date(2026, 12, 31)) and LUNCH.works_on(date(2026, 11, 28))


def test_hours_accept_toml_dates_merge_touching_periods_and_refuse_contradictions():
    hours = OpeningHours.parse(["08:00-12:00", "12:00-13:00"], closed_dates=[date(2026, 10, 1)])
    assert hours.describe() == ["08:00-13:00"]
    assert hours.closes_at(datetime(2026, 11, 23, 11, 0, tzinfo=SH)) == datetime(2026, 11, 23, 13, 0, tzinfo=SH)
    assert not hours.works_on(date(2026, 10, 1))
    with pytest.raises(ConfigError) as err:
        OpeningHours.parse(["08:00-12:00"], closed_dates=["2026-10-01"], open_dates=["2026-10-01"])
    assert err.value.key == "open_dates"
    for weekdays in ([[1]], [{"a": 1}], [True], ["1"]):
        with pytest.raises(ConfigError) as err:
            OpeningHours.parse(["08:00-12:00"], weekdays)
        assert err.value.key == "weekdays"
    # a 24:00 end closes at the next midnight
    late = OpeningHours.parse(["20:00-24:00"])
    assert late.closes_at(datetime(2026, 11, 23, 23, 59, tzinfo=SH)) == datetime(2026, 11, 24, 0, 0, tzinfo=SH)


def test_hours_in_a_zone_with_daylight_saving_give_real_instants():
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    hours = OpeningHours.parse(["00:00-01:30", "02:30-24:00"])
    # the second 01:15 of 1 November 2026 (after the clocks went back) closes at the second 01:30
    second = datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=ny)
    utc = ZoneInfo("UTC")
    assert hours.closes_at(second).astimezone(utc) - second.astimezone(utc) == timedelta(minutes=15)
    # 02:30 on 8 March 2026 does not exist: the opening is a real instant, and the hall is open then
    opens = hours.next_open(datetime(2026, 3, 8, 1, 45, tzinfo=ny))
    assert opens is not None and hours.is_open(opens)
    assert opens.astimezone(utc) == datetime(2026, 3, 8, 7, 30, tzinfo=utc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=14), st.integers(), st.none()), max_size=4))
def test_garbage_hours_are_a_config_error_never_a_crash(values):
    try:
        hours = OpeningHours.parse(values)
    except ConfigError:
        return
    assert all(start < end for start, end in hours.periods)
    assert all(isinstance(s, time) for s, _ in hours.periods)


# -- where a ticket stands -------------------------------------------------------------------


def test_ticket_status_follows_the_ticket_as_the_queue_moves():
    clock = FakeClock(MONDAY_9)
    c, events = Central(hall(), clock), []
    run(c, events, "window.open", window="2")
    for _ in range(3):
        run(c, events, "ticket.issue", queue="tax")
    seen = []
    for _ in range(3):
        status = run(c, events, "ticket.status", ticket="C003")
        seen.append((status["people_ahead"], status["predicted_wait_min"]))
        run(c, events, "window.call_next", window="2")
        clock.advance(minutes=10)
        run(c, events, "window.complete", window="2")
    assert [ahead for ahead, _ in seen] == [2, 1, 0]
    assert seen[0][1] > seen[1][1], "the predicted wait falls as the queue moves"
    by_id = run(c, events, "ticket.status", ticket=f"{c.day}-C003")
    assert by_id["ticket"]["status"] == "done" and by_id["predicted_wait_min"] is None
    with pytest.raises(NotFound):
        c.handle("ticket.status", {"ticket": "C004"})
    for bad in ("", "c003", "2026-11-23", 3, "C003; DROP"):
        with pytest.raises(BadRequest):
            c.handle("ticket.status", {"ticket": bad})
    assert not [e for e in events if e.type.startswith("ticket.status")]


def test_matters_and_departments_are_checked():
    with pytest.raises(ConfigError, match="unknown queue 'parking'"):
        hall(matters={"x": MatterSpec("x", "X", "parking")})
    with pytest.raises(ConfigError, match="unknown department 'police'"):
        hall(matters={"x": MatterSpec("x", "X", "tax", "police")})
    with pytest.raises(ConfigError, match="positive"):
        MatterSpec("x", "X", "tax", None, -5)


# -- garbage in: a coded error, nothing changed --------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(["estate", "tax", "transfer", "1", "2", "A001", "2026-11-23-B001", "green",
                       "appointment", "19400101", "13912345678", "11010519491231002X",
                       "2026-11-23T10:00:00+08:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
FIELDS = st.sampled_from(["queue", "matter", "window", "ticket", "clerk", "phone", "priority", "slot",
                          "birth_date", "channel", "x"])


@settings(max_examples=400, deadline=None)
@example(action="ticket.issue", data={"queue": "13912345678"})
@example(action="ticket.issue", data={"matter": "11010519491231002X"})
@example(action="window.call_next", data={"window": "13912345678"})
@example(action="ticket.status", data={"ticket": "A13912345678"})
@example(action="13912345678", data={})
@given(action=st.sampled_from(Central.ACTIONS + ("ticket.print", "", "window")),
       data=st.one_of(JSONISH, st.dictionaries(FIELDS, JSONISH, max_size=4)))
def test_any_request_gets_a_result_or_a_coded_error_and_an_error_changes_nothing(action, data):
    from hallctl.errors import HallctlError

    clock = FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=SH))
    c = Central(hall(hours=LUNCH, class_prefix={"green": "L"}), clock)
    c.handle("window.open", {"window": "1"})
    c.handle("ticket.issue", {"matter": "transfer", "phone": "13912345678"})
    before, seq = repr(c.state), c.last_seq
    try:
        out = c.handle(action, data)
    except HallctlError as exc:
        assert exc.code in ("bad_request", "not_found", "conflict", "unknown_command", "hall_closed")
        assert repr(c.state) == before and c.last_seq == seq
        text = json.dumps(exc.to_dict(), ensure_ascii=False)
        assert not [p for p in ("13912345678", "19400101", "11010519491231002X") if p in text], text
        return
    assert isinstance(out.data, dict)
    assert "13912345678" not in json.dumps([Central.event_public(e) for e in out.events], ensure_ascii=False)


def test_an_appointment_too_late_for_its_slot_queues_as_a_walk_in():
    clock = FakeClock(datetime(2026, 11, 23, 9, 10, tzinfo=SH))
    c, events = Central(hall(class_prefix={"appointment": "Y"}), clock), []
    slot = "2026-11-23T09:00:00+08:00"
    on_time = run(c, events, "ticket.issue", queue="tax", priority="appointment", slot=slot)
    assert on_time["ticket"]["priority"] == "appointment" and on_time["ticket"]["number"] == "Y001"
    assert "missed_slot" not in on_time
    clock.advance(minutes=6)  # 09:16: more than appointment_late_s (15 min) after the slot
    late = run(c, events, "ticket.issue", queue="tax", priority="appointment", slot=slot)
    assert (late["ticket"]["priority"], late["ticket"]["slot"], late["ticket"]["number"]) == ("walkin", None, "C001")
    assert late["missed_slot"] == "2026-11-23T09:00:00+08:00"
    assert events[-1].data["missed_slot"] == "2026-11-23T09:00:00+08:00" and "priority" not in events[-1].data
    twin = Central(hall(class_prefix={"appointment": "Y"}), clock)
    twin.replay(events)
    assert twin.state == c.state
    assert Kpis.from_events(events).summary()["tickets"]["missed_slot"] == 1


@pytest.mark.parametrize("text, shown", [
    ("queue '+8613800138000'", "queue '+86*******8000'"),
    ("138-0013-8000", "138******8000"),
    ("138 0013 8000", "138******8000"),
    ("１３８００１３８０００", "138****8000"),
    ("id 11010519491231002X", "id 110***********002X"),
    ("ticket 2026-11-23-A001 at seq 1700000000123", "ticket 2026-11-23-A001 at seq 1700000000123"),
])
def test_scrub_masks_phone_and_id_numbers_however_written_and_leaves_the_rest(text, shown):
    from hallctl.errors import BadRequest
    from hallctl.privacy import scrub

    assert scrub(text) == shown
    err = BadRequest(text, value=13800138000, values=[text, {"phone": "13800138000"}])
    assert err.message == shown
    assert err.detail == {"value": "138****8000", "values": [shown, {"phone": "138****8000"}]}
