"""Staff sign-in at a window: the clerk who first called a ticket follows it (首问首办责任制),
and the KPIs count per clerk."""

from __future__ import annotations

from datetime import datetime

import pytest
from test_central_core import SH, FakeClock, make_hall

from hallctl.central.core import Central
from hallctl.central.kpi import Kpis
from hallctl.errors import BadRequest


def test_the_clerk_who_first_called_a_ticket_follows_it_across_a_transfer():
    clock = FakeClock(datetime(2024, 5, 6, 9, 0, tzinfo=SH))
    c = Central(make_hall(), clock)
    events = []

    def do(action, **data):
        out = c.handle(action, data)
        events.extend(out.events)
        return out.data

    opened = do("window.open", window="1", clerk="s1024")
    assert opened["window"]["clerk"] == "s1024"
    do("window.open", window="3", clerk="s2048")
    do("ticket.issue", queue="general")
    t = do("window.call_next", window="1")["ticket"]
    assert t["first_window"] == "1" and t["first_clerk"] == "s1024"
    clock.advance(minutes=3)
    do("window.transfer", window="1", queue="police")
    again = do("window.call_next", window="3")["ticket"]
    assert again["number"] == t["number"] and again["window"] == "3"
    assert again["first_clerk"] == "s1024", "the first handler stays responsible"
    do("window.complete", window="3")
    # another clerk takes over window 1; closing signs out
    assert do("window.open", window="1", clerk="s4096")["window"]["clerk"] == "s4096"
    assert "clerk" not in do("window.close", window="1")["window"]
    # replay gives the same state, clerks included
    twin = Central(make_hall(), clock)
    twin.replay(events)
    assert twin.state == c.state
    # KPIs count per clerk from the same events
    by_clerk = Kpis.from_events(events).summary()["by_clerk"]
    assert any("s1024" in key for key in by_clerk) and any("s2048" in key for key in by_clerk)


@pytest.mark.parametrize("clerk", ["", "Zhang San", "张三", 7])
def test_a_clerk_id_is_a_staff_number_not_a_name(clerk):
    c = Central(make_hall(), FakeClock(datetime(2024, 5, 6, 9, 0, tzinfo=SH)))
    with pytest.raises(BadRequest, match="clerk"):
        c.handle("window.open", {"window": "1", "clerk": clerk})


def test_a_signed_in_clerk_stays_signed_in_across_the_day_rollover_live_and_replayed():
    """Regression: the day rollover copied the windows without their clerk, so the live core
    forgot who was signed in (and first_clerk went missing) while a replay remembered."""
    clock = FakeClock(datetime(2024, 5, 6, 16, 0, tzinfo=SH))
    c, events = Central(make_hall(), clock), []
    events += c.handle("window.open", {"window": "1", "clerk": "s1024"}).events
    clock.advance(days=1)
    events += c.handle("ticket.issue", {"queue": "general"}).events
    assert events[-2].type == "day.started"
    out = c.handle("window.call_next", {"window": "1"})
    events += out.events
    assert out.data["ticket"]["first_clerk"] == "s1024"
    twin = Central(make_hall(), clock)
    twin.replay(events)
    assert twin.state == c.state
