"""Issue 9, central's side of print-confirmed issuance: a ticket may be called only once printed.

The pure core with an injected clock and token source: a pending ticket is never called and
counted nowhere, a confirmed one is called in its place by issue time, a void one never and its
number is not reused, central voids one not confirmed in time, and a replay of the events gives
the same state (tokens included, without drawing new ones). Then over Mosquitto: a ticket's token
is on no topic but the issuing client's answers, and a display may not void.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hallkit import HALL, Observer, RunningClock, central, hall_spec
from hypothesis import given, settings
from hypothesis import strategies as st

from hallctl.access.roles import Client
from hallctl.bus.topics import Topics
from hallctl.central.core import Central
from hallctl.central.history import History
from hallctl.central.kpi import Kpis
from hallctl.central.model import Event, HallSpec, QueueSpec, WindowSpec
from hallctl.errors import BadRequest, Conflict, NotFound

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 9, 0, tzinfo=SH)
T = Topics(HALL)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def tokens():
    """A deterministic token source: tok-0000000000000001, ..."""
    counter = itertools.count(1)
    return lambda: f"tok-{next(counter):016d}"


def make_hall(**kw) -> HallSpec:
    kw.setdefault("policy", "fifo")
    return HallSpec(
        "xiaoshan",
        {"general": QueueSpec("general", "A", "综合受理"), "tax": QueueSpec("tax", "B", "税务")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口")},
        **kw,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(clock: Clock) -> Central:
    c = Central(make_hall(ticket_link="https://hall.example/t/{token}"), clock, token=tokens())
    c.handle("window.open", {"window": "1"})
    return c


def issue(c: Central, queue: str = "general", **kw) -> dict:
    return c.handle("ticket.issue", {"queue": queue, **kw}).data


def call(c: Central, window: str = "1") -> str | None:
    """The number window calls next (its ticket completed first, if it has one)."""
    if c.window_state(window)["ticket"] is not None:
        c.handle("window.complete", {"window": window})
    got = c.handle("window.call_next", {"window": window}).data["ticket"]
    return None if got is None else got["number"]


def all_events(c: Central, *outcomes) -> list[Event]:
    return [e for o in outcomes for e in o.events]


def test_a_pending_ticket_is_never_called_and_counted_nowhere(core: Central) -> None:
    walkin = issue(core)
    pending = issue(core, confirm="print")
    assert pending["ticket"]["status"] == "pending"
    assert pending["confirm_by"] == "2026-11-23T09:01:00.000+08:00"  # print_confirm_s: 60 by default
    # what the kiosk prints: the people ahead once it is confirmed (A001, still waiting)
    assert (pending["ahead"], pending["people_ahead"]) == (1, 1)
    assert pending["predicted_wait_min"] is not None
    assert core.board_state()["waiting"] == {"general": 1, "tax": 0}
    assert core.queue_status()["waiting"]["general"] == 1
    later = issue(core)  # A003: the pending A002 is ahead of nobody
    assert (later["ahead"], later["people_ahead"]) == (1, 1)
    assert call(core) == walkin["ticket"]["number"]
    assert call(core) == "A003"
    assert call(core) is None  # A002 waits for its print, not for a window
    assert core.ticket(pending["ticket"]["id"]).status == "pending"


def test_confirmed_it_is_called_in_its_place_by_issue_time(core: Central) -> None:
    printed = issue(core, confirm="print")["ticket"]
    issue(core)  # A002, waiting at once
    confirmed = core.handle("ticket.confirm", {"ticket": printed["number"]})
    assert [e.type for e in confirmed.events] == ["ticket.confirmed"]
    assert confirmed.events[0].data == {"ticket": printed["id"], "number": "A001", "queue": "general"}
    assert confirmed.data["ticket"]["status"] == "waiting"
    assert confirmed.data["ahead"] == 0  # it was issued first
    assert core.board_state()["waiting"]["general"] == 2
    again = core.handle("ticket.confirm", {"ticket": printed["id"]})  # a retry with a new request_id
    assert again.events == [] and again.data["ticket"]["status"] == "waiting"
    assert call(core) == "A001"
    assert call(core) == "A002"


def test_a_void_ticket_is_never_called_and_its_number_not_reused(core: Central) -> None:
    failed = issue(core, confirm="print")["ticket"]
    voided = core.handle("ticket.void", {"ticket": failed["id"], "reason": "paper_out"})
    assert [e.type for e in voided.events] == ["ticket.voided"]
    assert voided.events[0].data["reason"] == "paper_out"
    assert voided.data["ticket"]["status"] == "void"
    assert voided.data["ticket"]["void_reason"] == "paper_out"
    assert core.handle("ticket.void", {"ticket": "A001", "reason": "paper_out"}).events == []  # again: nothing
    assert issue(core)["ticket"]["number"] == "A002"
    assert call(core) == "A002"
    assert call(core) is None
    with pytest.raises(Conflict, match="void"):
        core.handle("ticket.confirm", {"ticket": "A001"})
    status = core.handle("ticket.status", {"ticket": "A001"}).data
    assert status["ticket"]["status"] == "void"
    assert (status["ahead"], status["people_ahead"], status["predicted_wait_min"]) == (None, None, None)


def test_a_confirmed_ticket_is_not_voided(core: Central) -> None:
    printed = issue(core, confirm="print")["ticket"]
    core.handle("ticket.confirm", {"ticket": printed["id"]})
    with pytest.raises(Conflict, match="only a ticket pending its print"):
        core.handle("ticket.void", {"ticket": printed["id"], "reason": "paper_out"})
    with pytest.raises(Conflict):
        core.handle("ticket.void", {"ticket": issue(core)["ticket"]["id"], "reason": "cover_open"})


@pytest.mark.parametrize("data, field", [
    ({"ticket": "A001"}, "reason"),
    ({"ticket": "A001", "reason": "Paper out"}, "reason"),
    ({"ticket": "A001", "reason": "code13800138000"}, "reason"),  # no digits: it is published
    ({"ticket": "nope", "reason": "paper_out"}, "ticket"),
])
def test_a_void_names_the_ticket_and_a_reason(core: Central, data: dict, field: str) -> None:
    issue(core, confirm="print")
    with pytest.raises(BadRequest) as err:
        core.handle("ticket.void", data)
    assert err.value.detail["field"] == field
    with pytest.raises(BadRequest):
        issue(core, confirm="yes")
    with pytest.raises(NotFound):
        core.handle("ticket.confirm", {"ticket": "A009"})


def test_central_voids_a_ticket_not_confirmed_in_time(clock: Clock) -> None:
    c = Central(make_hall(print_confirm_s=30), clock, token=tokens())
    issued = c.handle("ticket.issue", {"queue": "general", "confirm": "print"})
    late = c.handle("ticket.issue", {"queue": "tax", "confirm": "print"})
    assert c.confirm_due() == START + timedelta(seconds=30)
    clock.now = START + timedelta(seconds=29)
    assert c.tick().events == []
    clock.now = START + timedelta(seconds=30)
    with pytest.raises(Conflict, match="not confirmed within 30 s"):  # the kiosk was too slow
        c.handle("ticket.confirm", {"ticket": "A001"})
    ticked = c.tick()
    assert [(e.type, e.data["number"], e.data["reason"]) for e in ticked.events] == [
        ("ticket.voided", "A001", "not_confirmed"), ("ticket.voided", "B001", "not_confirmed")]
    assert c.ticket("2026-11-23-A001").status == "void"
    assert c.confirm_due() is None
    assert c.tick().events == []
    replay = Central(c.hall, clock, token=_no_tokens)
    replay.replay(all_events(c, issued, late, ticked))
    assert replay.state == c.state


def test_a_pending_ticket_left_at_the_end_of_the_day_expires(clock: Clock) -> None:
    c = Central(make_hall(), clock, token=tokens())
    c.handle("ticket.issue", {"queue": "general", "confirm": "print"})
    clock.now = START + timedelta(days=1)
    out = c.tick()
    assert out.events[0].type == "day.started"
    assert out.events[0].data["expired"] == ["2026-11-23-A001"]
    assert c.confirm_due() is None and c.tick().events == []


def _no_tokens() -> str:
    raise AssertionError("a replay drew a new token")


def test_every_ticket_has_a_token_only_its_issuer_hears(core: Central) -> None:
    out = core.handle("ticket.issue", {"queue": "general", "phone": "13800138000"})
    token = out.data["token"]
    assert token == "tok-0000000000000001"
    assert out.data["link"] == f"https://hall.example/t/{token}"
    assert "confirm_by" not in out.data  # not pending
    issued = out.events[-1]
    assert issued.data["token"] == token  # stored: a replay gives it back
    public = json.dumps(Central.event_public(issued))
    assert token not in public and "phone_masked" in public
    assert token not in json.dumps(core.ticket_view(core.ticket(issued.data["ticket"])))
    assert token not in repr(core.ticket(issued.data["ticket"]))
    by_token = core.handle("ticket.status", {"token": token}).data
    assert by_token["ticket"]["number"] == "A001" and "token" not in by_token
    with pytest.raises(NotFound) as err:
        core.handle("ticket.status", {"token": "tok-0000000000000099"})
    assert "tok-" not in err.value.message  # a token is never echoed
    with pytest.raises(BadRequest):
        core.handle("ticket.status", {"token": token, "ticket": "A001"})


def test_tokens_are_unguessable_by_default(clock: Clock) -> None:
    c = Central(make_hall(), clock)
    got = {issue(c)["token"] for _ in range(50)}
    assert len(got) == 50 and all(len(t) == 22 for t in got)  # 128 bits, url-safe base64


def test_a_class_the_hall_does_not_offer_is_refused(clock: Clock) -> None:
    c = Central(make_hall(classes=("appointment",)), clock, token=tokens())
    assert c.hall.classes == ("walkin", "appointment")
    with pytest.raises(BadRequest, match="does not offer green"):
        issue(c, priority="green")
    # an elderly citizen's ID card gives the green channel only where the hall has one
    assert issue(c, birth_date="19400101")["ticket"]["priority"] == "walkin"


def test_kpis_count_voided_not_as_no_show_and_confirmed_waits_from_the_issue(core: Central, clock: Clock) -> None:
    outcomes = [core.handle("ticket.issue", {"queue": "general", "confirm": "print"}),
                core.handle("ticket.issue", {"queue": "general", "confirm": "print"}),
                core.handle("ticket.issue", {"queue": "general", "confirm": "print"})]
    clock.now += timedelta(seconds=20)
    outcomes.append(core.handle("ticket.confirm", {"ticket": "A001"}))
    outcomes.append(core.handle("ticket.void", {"ticket": "A002", "reason": "printer_offline"}))
    clock.now += timedelta(minutes=5)
    outcomes.append(core.handle("window.call_next", {"window": "1"}))
    kpis = Kpis.from_events(e for o in outcomes for e in o.events)
    counts = kpis.summary()["tickets"]
    assert (counts["issued"], counts["voided"], counts["no_show"], counts["pending"], counts["at_window"]) == (
        3, 1, 0, 1, 1)
    assert kpis.ticket("2026-11-23-A001")["wait_s"] == 320  # from its issue, not its confirmation
    assert kpis.ticket("2026-11-23-A002")["status"] == "void"


def test_a_voided_ticket_is_no_arrival_for_the_staffing_forecast(core: Central) -> None:
    history = History(lambda: "2026-11-30")
    outcomes = [core.handle("ticket.issue", {"queue": "general", "confirm": "print"}),
                core.handle("ticket.void", {"ticket": "A001", "reason": "paper_out"}),
                core.handle("ticket.issue", {"queue": "general"})]
    for e in (e for o in outcomes for e in o.events):
        history.observe(e)
    arrivals = [e.data["number"] for day in history._arrivals.values() for e in day]
    assert arrivals == ["A002"]


# -- any sequence: the rules hold and a replay gives the same state --------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.sampled_from(["general", "tax"]), st.booleans()),
    st.tuples(st.just("confirm"), st.integers(1, 6)),
    st.tuples(st.just("void"), st.integers(1, 6)),
    st.tuples(st.just("call"), st.sampled_from(["1", "2"])),
    st.tuples(st.just("wait"), st.integers(1, 90)),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_no_ticket_is_called_before_its_print_is_confirmed_and_a_replay_agrees(ops) -> None:
    clock = Clock()
    c = Central(make_hall(print_confirm_s=45), clock, token=tokens())
    events: list[Event] = []

    def run(action: str, data: dict) -> None:
        try:
            events.extend(c.handle(action, data).events)
        except (Conflict, NotFound):
            pass

    run("window.open", {"window": "1"})
    run("window.open", {"window": "2"})
    for op in ops:
        if op[0] == "issue":
            run("ticket.issue", {"queue": op[1], **({"confirm": "print"} if op[2] else {})})
        elif op[0] in ("confirm", "void"):
            number = f"{'AB'[op[1] % 2]}{op[1]:03d}"
            run(f"ticket.{op[0]}", {"ticket": number, **({"reason": "paper_out"} if op[0] == "void" else {})})
        elif op[0] == "call":
            run("window.complete", {"window": op[1]})
            run("window.call_next", {"window": op[1]})
        else:
            clock.now += timedelta(seconds=op[1])
            events.extend(c.tick().events)
    confirmed, pending, numbers = set(), set(), []
    for e in events:
        if e.type == "ticket.issued":
            numbers.append(e.data["number"])
            (pending if "confirm" in e.data else confirmed).add(e.data["ticket"])
        elif e.type == "ticket.confirmed":
            confirmed.add(e.data["ticket"])
        elif e.type == "ticket.called":
            assert e.data["ticket"] in confirmed, f"{e.data['number']} called before its print was confirmed"
        elif e.type == "ticket.voided":
            assert e.data["ticket"] not in confirmed
    assert len(numbers) == len(set(numbers)), "a number was issued twice"
    clock.now += timedelta(seconds=45)  # every deadline passed: nothing is left pending
    events.extend(c.tick().events)
    assert c.confirm_due() is None
    assert not [t.number for t in c.tickets.values() if t.status == "pending"]
    replay = Central(c.hall, clock, token=_no_tokens)
    replay.replay(events)
    assert replay.state == c.state


# -- over Mosquitto ------------------------------------------------------------------------------

CLIENTS = (Client("kiosk-1", "kiosk"), Client("board-1", "display"), Client("clerk-1", "window", ("1",)))


async def _ask(obs: Observer, client: str, action: str, request_id: str, **data) -> dict:
    await obs.publish(T.central_req(client, action), {"v": 1, "request_id": request_id, "data": data})
    return (await obs.wait_for(T.central_res(client), lambda d: d.get("request_id") == request_id))[0]


async def test_the_token_is_on_no_topic_but_the_issuing_clients_answer(mosquitto, tmp_path) -> None:
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/#"]) as obs, \
            central(host, port, tmp_path, clients=CLIENTS, housekeeping_every_s=0.2):
        await _ask(obs, "clerk-1", "window.open", "o1", window="1")
        tokens_seen = []
        for i, extra in enumerate(({}, {"confirm": "print"}, {"confirm": "print", "phone": "13800138000"})):
            answer = await _ask(obs, "kiosk-1", "ticket.issue", f"i{i}", queue="a", **extra)
            assert answer["status"] == "ok", answer
            tokens_seen.append(answer["data"]["token"])
        confirmed = await _ask(obs, "kiosk-1", "ticket.confirm", "c1", ticket="A002")
        assert confirmed["data"]["ticket"]["status"] == "waiting"
        assert (await _ask(obs, "kiosk-1", "ticket.void", "v1", ticket="A003", reason="paper_out"))["status"] == "ok"
        called = await _ask(obs, "clerk-1", "window.call_next", "n1", window="1")
        assert called["data"]["ticket"]["number"] == "A001"
        for client, ticket in (("board-1", "A002"), ("clerk-1", "A003")):
            status = await _ask(obs, client, "ticket.status", f"s-{ticket}", ticket=ticket)
            assert status["status"] == "ok"
        await obs.wait_for(T.event("ticket.voided"))
        await obs.wait_for(T.central_catalogue, lambda d: d["waiting"] == {"a": 1, "b": 0})
        await obs.wait_for(T.central_kpi, lambda d: d["tickets"].get("voided") == 1)
    assert len(set(tokens_seen)) == 3
    mine = T.central_res("kiosk-1")
    for token in tokens_seen:
        where = {topic for topic, payload, _ in obs.messages if token.encode() in payload}
        assert where == {mine}, f"a ticket's token was published on {where - {mine}}"


async def test_a_display_may_not_void_or_confirm_a_kiosk_may(mosquitto, tmp_path) -> None:
    host, port = mosquitto.host, mosquitto.port
    async with Observer(host, port, [f"{T.base}/central/res/+", T.event_filter]) as obs, \
            central(host, port, tmp_path, clients=CLIENTS):
        assert (await _ask(obs, "kiosk-1", "ticket.issue", "i1", queue="a", confirm="print"))["status"] == "ok"
        for action, data in (("ticket.void", {"reason": "paper_out"}), ("ticket.confirm", {})):
            refused = await _ask(obs, "board-1", action, f"b-{action}", ticket="A001", **data)
            assert refused["error"]["code"] == "forbidden", refused
        assert not obs.docs(T.event("ticket.voided")) and not obs.docs(T.event("ticket.confirmed"))
        voided = await _ask(obs, "kiosk-1", "ticket.void", "k-void", ticket="A001", reason="printer_offline")
        assert voided["data"]["ticket"]["status"] == "void"
        event = (await obs.wait_for(T.event("ticket.voided")))[0]
        assert event["data"] == {"ticket": voided["data"]["ticket"]["id"], "number": "A001", "queue": "a",
                                 "reason": "printer_offline"}


async def test_central_voids_an_unconfirmed_print_when_it_falls_due(mosquitto, tmp_path) -> None:
    """The kiosk died after issuing: central voids the ticket at its deadline by itself (its
    housekeeping round is 30 s away)."""
    host, port = mosquitto.host, mosquitto.port
    spec = hall_spec()
    spec = HallSpec(spec.hall_id, spec.queues, spec.windows, print_confirm_s=1)
    async with Observer(host, port, [f"{T.base}/central/res/+", T.event_filter]) as obs, \
            central(host, port, tmp_path, hall=spec, clock=RunningClock(START)):
        issued = await _ask(obs, "kiosk-1", "ticket.issue", "i1", queue="a", confirm="print")
        assert issued["data"]["ticket"]["status"] == "pending"
        voided = (await obs.wait_for(T.event("ticket.voided"), timeout=20))[0]
        assert (voided["data"]["number"], voided["data"]["reason"]) == ("A001", "not_confirmed")
        status = await _ask(obs, "kiosk-1", "ticket.status", "s1", ticket="A001")
        assert status["data"]["ticket"]["status"] == "void"
        late = await _ask(obs, "kiosk-1", "ticket.confirm", "c1", ticket="A001")
        assert late["error"]["code"] == "conflict"
