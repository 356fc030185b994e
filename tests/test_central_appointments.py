"""Issue 9, central's side of appointments (预约) and online applications (网上件).

The pure core with an injected clock and token source: the booking system books a code, a kiosk
issues the booking's ticket by that code (late: a walk-in; used, cancelled, another day: a
conflict that says which; unknown: not_found without the code), one code gives one ticket and a
voided print frees it; bookings outlive the day they were made on, and a replay, from the first
event or from a day's checkpoint, gives the same state. An online application's code stays with
its ticket and reaches only the window that calls it. Then central as a service over its store:
a booking survives a restart across days.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl.bus import messages
from hallctl.central.core import Central
from hallctl.central.kpi import Kpis
from hallctl.central.model import Event, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.errors import BadRequest, Conflict, NotFound
from test_print_confirm import START, Clock, tokens

PHONE = "13800138000"  # START (test_print_confirm's) is a Monday


def make_hall(**kw) -> HallSpec:
    kw.setdefault("policy", "fifo")
    return HallSpec(
        "xiaoshan",
        {"general": QueueSpec("general", "A", "综合受理"), "tax": QueueSpec("tax", "B", "税务")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口")},
        matters={"licence": MatterSpec("licence", "营业执照设立登记", "general")},
        **kw,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(clock: Clock) -> Central:
    c = Central(make_hall(), clock, token=tokens())
    c.handle("window.open", {"window": "1"})
    return c


def at(hhmm: str, days: int = 0) -> str:
    h, m = map(int, hhmm.split(":"))
    return (START + timedelta(days=days)).replace(hour=h, minute=m).isoformat()


def book(c: Central, code: str = "YY20261123A", **kw) -> dict:
    kw.setdefault("queue", "general")
    kw.setdefault("slot", at("09:30"))
    return c.handle("appointment.book", {"code": code, **kw}).data["appointment"]


def refused(c: Central, action: str, data: dict, error: type) -> dict:
    with pytest.raises(error) as err:
        c.handle(action, data)
    return err.value.to_dict()


# -- booking and issuing by code -------------------------------------------------------------------

def test_a_ticket_for_a_booking_takes_its_queue_matter_slot_and_phone(core: Central) -> None:
    booked = core.handle("appointment.book", {"code": "YY20261123A", "matter": "licence", "slot": at("09:30"),
                                              "phone": PHONE})
    view = booked.data["appointment"]
    assert view == {"booking": view["booking"], "status": "booked", "queue": "general", "matter": "licence",
                    "slot": "2026-11-23T09:30:00+08:00", "day": "2026-11-23", "phone_masked": "138****8000"}
    (event,) = booked.events
    public = Central.event_public(event)
    assert event.type == "appointment.booked" and public["data"] == {
        "booking": event.seq, "queue": "general", "matter": "licence", "slot": "2026-11-23T09:30:00+08:00",
        "day": "2026-11-23", "phone_masked": "138****8000"}  # neither the code nor the phone

    issued = core.handle("ticket.issue", {"appointment": "YY20261123A", "confirm": "print"})
    t = issued.data["ticket"]
    assert (t["number"], t["queue"], t["matter"], t["priority"], t["slot"], t["phone_masked"]) == (
        "A001", "general", "licence", "appointment", "2026-11-23T09:30:00+08:00", "138****8000")
    assert core.ticket(t["id"]).phone == PHONE  # the booking's phone: texted like a kiosk ticket's
    text = json.dumps([Central.event_public(e) for e in issued.events] + [issued.data], ensure_ascii=False)
    assert "YY20261123A" not in text and PHONE not in text
    assert Central.event_public(issued.events[-1])["data"]["booking"] == event.seq
    assert core.state.appointments["YY20261123A"].status == "used"


def test_a_phone_given_at_the_kiosk_wins_over_the_bookings(core: Central) -> None:
    book(core, phone=PHONE)
    t = core.handle("ticket.issue", {"appointment": "YY20261123A", "phone": "13900139000"}).data["ticket"]
    assert t["phone_masked"] == "139****9000"


def test_a_late_check_in_is_a_walk_in_and_uses_the_booking(core: Central, clock: Clock) -> None:
    book(core, slot=at("09:30"))
    clock.now = START.replace(hour=9, minute=46)  # 16 min after the slot: past the 15 min allowed
    issued = core.handle("ticket.issue", {"appointment": "YY20261123A"}).data
    assert issued["ticket"]["priority"] == "walkin" and issued["ticket"]["slot"] is None
    assert issued["missed_slot"] == "2026-11-23T09:30:00+08:00"
    assert refused(core, "ticket.issue", {"appointment": "YY20261123A"}, Conflict)["detail"]["reason"] == "used"


def test_early_within_the_grace_it_is_an_appointment_all_the_same(core: Central, clock: Clock) -> None:
    book(core, slot=at("11:00"))
    t = core.handle("ticket.issue", {"appointment": "YY20261123A"}).data["ticket"]
    assert t["priority"] == "appointment" and t["slot"] == "2026-11-23T11:00:00+08:00"


def test_used_cancelled_unknown_and_another_days_code(core: Central, clock: Clock) -> None:
    book(core, "USED000001")
    core.handle("ticket.issue", {"appointment": "USED000001"})
    used = refused(core, "ticket.issue", {"appointment": "USED000001"}, Conflict)
    assert used["detail"] == {"field": "appointment", "reason": "used", "ticket": "A001"}
    assert "A001" in used["message"]

    book(core, "CANCEL0001")
    cancel = core.handle("appointment.cancel", {"code": "CANCEL0001"})
    assert [e.type for e in cancel.events] == ["appointment.cancelled"]
    assert core.handle("appointment.cancel", {"code": "CANCEL0001"}).events == []  # again: nothing happens
    cancelled = refused(core, "ticket.issue", {"appointment": "CANCEL0001"}, Conflict)
    assert cancelled["detail"] == {"field": "appointment", "reason": "cancelled"}

    unknown = refused(core, "ticket.issue", {"appointment": "NOSUCH0001"}, NotFound)
    assert unknown["detail"] == {"field": "appointment"} and "NOSUCH0001" not in json.dumps(unknown)
    gone = refused(core, "appointment.cancel", {"code": "NOSUCH0001"}, NotFound)
    assert "NOSUCH0001" not in json.dumps(gone)

    book(core, "TOMORROW01", slot=at("10:00", days=1))
    tomorrow = refused(core, "ticket.issue", {"appointment": "TOMORROW01"}, Conflict)
    assert tomorrow["detail"] == {"field": "appointment", "reason": "other_day", "day": "2026-11-24"}
    book(core, "TODAY00001", slot=at("16:00"))
    clock.now += timedelta(days=1)  # the citizen comes a day late: told so, not "unknown"
    assert refused(core, "ticket.issue", {"appointment": "TODAY00001"}, Conflict)["detail"]["day"] == "2026-11-23"
    t = core.handle("ticket.issue", {"appointment": "TOMORROW01"}).data["ticket"]
    assert (t["number"], t["priority"]) == ("A001", "appointment")  # its day: numbering restarted
    clock.now += timedelta(days=7)  # kept 7 days after its day, then forgotten
    core.tick()
    assert refused(core, "ticket.issue", {"appointment": "TODAY00001"}, NotFound)["detail"] == {"field": "appointment"}
    assert "TODAY00001" not in core.state.appointments  # its day was 8 days ago
    assert core.state.appointments["TOMORROW01"].status == "used"  # 7 days ago: still kept


def test_one_code_gives_one_ticket_and_a_voided_print_frees_it(core: Central, clock: Clock) -> None:
    book(core)
    first = core.handle("ticket.issue", {"appointment": "YY20261123A", "confirm": "print"}).data["ticket"]
    refused(core, "ticket.issue", {"appointment": "YY20261123A", "confirm": "print"}, Conflict)
    core.handle("ticket.void", {"ticket": first["number"], "reason": "paper_out"})
    assert core.state.appointments["YY20261123A"].status == "booked"
    again = core.handle("ticket.issue", {"appointment": "YY20261123A", "confirm": "print"}).data["ticket"]
    assert again["number"] == "A002"  # the void number is not reused
    clock.now += timedelta(seconds=core.hall.print_confirm_s)  # the kiosk died: central voids it
    assert [e.data["reason"] for e in core.tick().events] == ["not_confirmed"]
    third = core.handle("ticket.issue", {"appointment": "YY20261123A", "confirm": "print"}).data["ticket"]
    core.handle("ticket.confirm", {"ticket": third["number"]})
    core.handle("window.call_next", {"window": "1"})
    core.handle("window.no_show", {"window": "1"})  # called and not there: the booking stays used
    assert refused(core, "ticket.issue", {"appointment": "YY20261123A"}, Conflict)["detail"]["ticket"] == "A003"


def test_booking_again_is_idempotent_moves_a_booking_and_never_a_used_or_cancelled_one(core: Central) -> None:
    first = core.handle("appointment.book", {"code": "YY20261123A", "queue": "general", "slot": at("09:30")})
    again = core.handle("appointment.book", {"code": "YY20261123A", "queue": "general", "slot": at("09:30")})
    assert again.events == [] and again.data == first.data
    moved = core.handle("appointment.book", {"code": "YY20261123A", "queue": "tax", "slot": at("14:00")})
    assert [e.type for e in moved.events] == ["appointment.booked"]
    assert moved.data["appointment"]["booking"] == first.data["appointment"]["booking"]
    assert core.handle("ticket.issue", {"appointment": "YY20261123A"}).data["ticket"]["number"] == "B001"
    same = core.handle("appointment.book", {"code": "YY20261123A", "queue": "tax", "slot": at("14:00")})
    assert same.events == [] and same.data["appointment"]["status"] == "used"
    assert same.data["appointment"]["ticket"] == "2026-11-23-B001"
    assert refused(core, "appointment.book", {"code": "YY20261123A", "queue": "general", "slot": at("15:00")},
                   Conflict)["detail"]["reason"] == "used"
    assert refused(core, "appointment.cancel", {"code": "YY20261123A"}, Conflict)["detail"]["reason"] == "used"
    book(core, "CANCEL0001")
    core.handle("appointment.cancel", {"code": "CANCEL0001"})
    assert refused(core, "appointment.book", {"code": "CANCEL0001", "queue": "general", "slot": at("09:30")},
                   Conflict)["detail"]["reason"] == "cancelled"


@pytest.mark.parametrize("action, data, field", [
    ("appointment.book", {"code": "yy2026", "queue": "general", "slot": at("10:00")}, "code"),
    ("appointment.book", {"code": "YY2026", "queue": "general"}, "slot"),
    ("appointment.book", {"code": "YY2026", "queue": "general", "slot": "2026-11-23T10:00:00"}, "slot"),
    ("appointment.book", {"code": "YY2026", "queue": "general", "slot": at("10:00", days=-1)}, "slot"),
    ("appointment.book", {"code": "YY2026", "queue": "general", "slot": at("10:00", days=400)}, "slot"),
    ("appointment.book", {"code": "YY2026", "queue": "general", "slot": at("10:00"), "phone": "12345"}, "phone"),
    ("appointment.book", {"code": "YY2026", "slot": at("10:00")}, "queue"),
    ("appointment.cancel", {}, "code"),
    ("ticket.issue", {"appointment": "YY2026", "queue": "general"}, "queue"),
    ("ticket.issue", {"appointment": "YY2026", "slot": at("10:00")}, "slot"),
    ("ticket.issue", {"appointment": "YY2026", "priority": "green"}, "priority"),
    ("ticket.issue", {"appointment": "YY2026", "online_code": "WSB123456"}, "online_code"),
    ("ticket.issue", {"appointment": "SHORT"}, "appointment"),
    ("ticket.issue", {"queue": "general", "online_code": "WSB123456", "priority": "walkin"}, "priority"),
    ("ticket.issue", {"queue": "general", "online_code": "wsb123456"}, "online_code"),
    ("ticket.issue", {"queue": "general", "online_code": PHONE}, "online_code"),
    ("ticket.issue", {"queue": "general", "online_code": "110101195001011234"}, "online_code"),
])
def test_bad_requests_name_the_field_and_never_echo_a_code(core: Central, action: str, data: dict, field: str) -> None:
    err = refused(core, action, data, BadRequest)
    assert err["detail"]["field"] == field, err
    for secret in ("yy2026", "SHORT", "wsb123456", PHONE, "110101195001011234"):
        assert secret not in err["message"]


def test_a_hall_that_offers_no_appointments_or_online_class_refuses_them(clock: Clock) -> None:
    c = Central(make_hall(classes=("green",)), clock)
    assert refused(c, "appointment.book", {"code": "YY2026", "queue": "general", "slot": at("10:00")},
                   BadRequest)["detail"]["field"] == "code"
    assert refused(c, "ticket.issue", {"appointment": "YY2026"}, BadRequest)["detail"]["field"] == "appointment"
    assert refused(c, "ticket.issue", {"queue": "general", "online_code": "WSB123456"},
                   BadRequest)["detail"]["field"] == "online_code"


def test_an_elder_with_a_booking_gets_the_green_channel(core: Central) -> None:
    book(core)
    t = core.handle("ticket.issue", {"appointment": "YY20261123A", "birth_date": "19400101"}).data["ticket"]
    assert t["priority"] == "green" and t["slot"] is None
    assert core.state.appointments["YY20261123A"].status == "used"


def test_a_reload_that_moves_or_removes_a_section_under_a_booking(clock: Clock) -> None:
    c = Central(make_hall(), clock)
    events = c.handle("appointment.book", {"code": "MATTER0001", "matter": "licence", "slot": at("10:00")}).events
    events += c.handle("appointment.book", {"code": "QUEUE00001", "queue": "tax", "slot": at("10:00")}).events
    moved = HallSpec("xiaoshan", {"general": QueueSpec("general", "A", "综合受理"), "bank": QueueSpec("bank", "C", "银行")},
                     {"1": WindowSpec("1", "1号窗口")},
                     matters={"licence": MatterSpec("licence", "营业执照设立登记", "bank")}, policy="fifo")
    reloaded = Central(moved, clock)
    reloaded.replay(events)
    t = reloaded.handle("ticket.issue", {"appointment": "MATTER0001"}).data["ticket"]
    assert (t["queue"], t["matter"], t["number"]) == ("bank", "licence", "C001")  # the matter's section now
    assert refused(reloaded, "ticket.issue", {"appointment": "QUEUE00001"}, Conflict)["detail"]["reason"] == "queue_gone"


def test_bookings_are_no_fact_of_the_halls_day_for_the_kpis(core: Central, clock: Clock) -> None:
    """The booking system books at any hour: a booking at 23:00 neither moves the day's KPIs'
    "as of" nor counts as an arrival; its ticket counts as an appointment like any other."""
    events = list(core.handle("ticket.issue", {"queue": "general"}).events)
    book(core)
    events += core.handle("ticket.issue", {"appointment": "YY20261123A"}).events
    clock.now = START.replace(hour=23)
    events += core.handle("appointment.book", {"code": "LATENIGHT1", "queue": "tax", "slot": at("10:00", days=1)}).events
    kpis = Kpis.from_events(events)
    summary = kpis.summary("2026-11-23")
    assert summary["as_of"] == "2026-11-23T09:00:00.000+08:00"
    assert summary["tickets"]["issued"] == 2 and set(summary["by_class"]) == {"walkin", "appointment"}


# -- online applications --------------------------------------------------------------------------

def test_an_online_code_stays_with_its_ticket_and_reaches_only_its_window(core: Central) -> None:
    issued = core.handle("ticket.issue", {"queue": "general", "online_code": "ZJWB20261123"})
    assert issued.data["ticket"]["priority"] == "online" and "online_code" not in issued.data["ticket"]
    public = json.dumps([Central.event_public(e) for e in issued.events])
    assert "ZJWB20261123" not in public
    called = core.handle("window.call_next", {"window": "1"})
    assert called.data["ticket"]["online_code"] == "ZJWB20261123"
    assert "ZJWB20261123" not in json.dumps([Central.event_public(e) for e in called.events])
    assert "ZJWB20261123" not in json.dumps([core.window_state("1"), core.board_state(), core.queue_status()])
    # the core's ticket.status is everyone's view: the service adds the code for the window's client
    assert "online_code" not in core.handle("ticket.status", {"ticket": "A001"}).data["ticket"]
    for action in ("window.recall", "window.start", "window.complete"):
        assert core.handle(action, {"window": "1"}).data["ticket"]["online_code"] == "ZJWB20261123"


# -- any sequence: a replay, from the first event or from a day's checkpoint, agrees ----------------

CODES = ("CODE000001", "CODE000002", "CODE000003")
_CODE = st.sampled_from(CODES)
_BOOK = st.tuples(st.just("book"), _CODE, st.sampled_from(["general", "tax"]), st.sampled_from([0, 0, 0, 1, 2, -1]),
                  st.integers(8, 17), st.booleans())
_ISSUE = st.tuples(st.just("issue"), st.integers(0, 3), st.booleans())  # one of the codes booked
OPS = st.lists(st.one_of(
    _BOOK, _ISSUE, _ISSUE,
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("walkin"), st.sampled_from(["general", "tax"])),
    st.tuples(st.just("confirm"), st.integers(1, 4)),
    st.tuples(st.just("void"), st.integers(1, 4)),
    st.tuples(st.just("call"), st.sampled_from(["1", "2"])),
    st.tuples(st.just("wait"), st.integers(1, 90)),
    st.tuples(st.just("next_day"), st.sampled_from([1, 1, 8])),
), min_size=5, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_bookings_and_their_tickets_replay_to_the_same_state(ops) -> None:
    clock = Clock()
    c = Central(make_hall(print_confirm_s=45), clock, token=tokens())
    events: list[Event] = []
    checkpoints: list[tuple[int, str, dict]] = []

    def run(action: str, data: dict) -> None:
        try:
            events.extend(c.handle(action, data).events)
        except (BadRequest, Conflict, NotFound):
            pass
        keep_checkpoint()

    def keep_checkpoint() -> None:
        cp = c.checkpoint()
        if cp is not None and (not checkpoints or checkpoints[-1][0] != cp[0]):
            checkpoints.append(cp)

    run("window.open", {"window": "1"})
    run("window.open", {"window": "2"})
    for op in ops:
        if op[0] == "book":
            _, code, queue, days, hour, phone = op
            slot = (clock.now + timedelta(days=days)).replace(hour=hour, minute=0)
            run("appointment.book", {"code": code, "queue": queue, "slot": slot.isoformat(),
                                     **({"phone": PHONE} if phone else {})})
        elif op[0] in ("issue", "cancel"):
            booked = sorted(c.state.appointments) or ["NEVERBOOKED"]
            code = booked[op[1] % len(booked)]
            if op[0] == "cancel":
                run("appointment.cancel", {"code": code})
            else:
                run("ticket.issue", {"appointment": code, **({"confirm": "print"} if op[2] else {})})
        elif op[0] == "walkin":
            run("ticket.issue", {"queue": op[1], "confirm": "print"})
        elif op[0] in ("confirm", "void"):
            pending = sorted(t.number for t in c.tickets.values() if t.status == "pending")
            number = pending[op[1] % len(pending)] if pending else f"A{op[1]:03d}"
            run(f"ticket.{op[0]}", {"ticket": number, **({"reason": "paper_out"} if op[0] == "void" else {})})
        elif op[0] == "call":
            run("window.complete", {"window": op[1]})
            run("window.call_next", {"window": op[1]})
        elif op[0] == "wait":
            clock.now += timedelta(seconds=op[1] * 60)
            events.extend(c.tick().events)
            keep_checkpoint()
        else:
            clock.now = (clock.now + timedelta(days=op[1])).replace(hour=9)
            events.extend(c.tick().events)
            keep_checkpoint()
    # the rules held: a code never had two live tickets, and each booking points at its live one
    live: dict[str, str] = {}
    for e in events:
        if e.type == "ticket.issued" and "appointment" in e.data:
            assert e.data["appointment"] not in live, f"{e.data['appointment']} gave a second ticket"
            live[e.data["appointment"]] = e.data["ticket"]
        elif e.type == "ticket.voided":
            live = {code: t for code, t in live.items() if t != e.data["ticket"]}
        elif e.type == "appointment.booked":
            live.pop(e.data["appointment"], None)
    # a replay from the first event reads no clock and draws no token
    again = Central(c.hall, lambda: (_ for _ in ()).throw(AssertionError("replay read the clock")),
                    token=lambda: (_ for _ in ()).throw(AssertionError("replay drew a token")))
    again.replay(events)
    assert again.state == c.state
    # and from every day's checkpoint, as stored (JSON) and read back, plus the events after it
    for seq, _day, doc in checkpoints:
        restored = Central.from_checkpoint(c.hall, clock, json.loads(json.dumps(doc)), token=tokens())
        restored.replay(e for e in events if e.seq > seq)
        assert restored.state.appointments == c.state.appointments
        assert restored.state.tickets == c.state.tickets


# -- central as a service: a booking survives a restart across days ---------------------------------

def _respond(svc: CentralService, client: str, action: str, rid: str, **data) -> dict:
    return svc.respond(client, action, messages.encode(messages.request(rid, data)))


def test_a_booking_outlives_restarts_and_day_checkpoints(tmp_path) -> None:
    clock = Clock()
    path = str(tmp_path / "central.db")

    def service() -> CentralService:
        return CentralService(make_hall(), path, MqttSettings(), clock=clock)

    svc = service()
    booked = _respond(svc, "yuyue", "appointment.book", "b1", code="NEXTWEEK01", matter="licence",
                      slot=at("10:00", days=3), phone=PHONE)
    assert booked["status"] == "ok"
    again = _respond(svc, "yuyue", "appointment.book", "b1", code="NEXTWEEK01", matter="licence",
                     slot=at("10:00", days=3), phone=PHONE)
    assert again == booked  # the same request again: the stored answer
    svc.store.close()
    for day in (1, 2, 3):  # central restarts each morning: it starts from that day's checkpoint
        clock.now = START.replace(hour=9) + timedelta(days=day)
        svc = service()
        svc.open()
        svc.tick()
        assert svc.store.latest_checkpoint()[1] == clock.now.date().isoformat()
        if day < 3:
            svc.store.close()
    issued = _respond(svc, "kiosk-1", "ticket.issue", "k1", appointment="NEXTWEEK01")
    assert issued["status"] == "ok", issued
    t = issued["data"]["ticket"]
    assert (t["number"], t["priority"], t["matter"], t["phone_masked"]) == ("A001", "appointment", "licence", "138****8000")
    svc.store.close()
