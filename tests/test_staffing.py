"""Staffing advice: Erlang C against known values, square-root staffing against the exact search,
the advice per half hour and the forecast from synthetic histories."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta

import pytest

from hallctl.central.model import Event
from hallctl.central.staffing import (
    advise,
    beta_for,
    erlang_b,
    erlang_c,
    forecast_from_history,
    halfin_whitt_delay,
    mean_wait,
    service_level,
    square_root_rule,
    windows_needed,
)


def erlang_c_formula(c: int, a: float) -> float:
    """The textbook closed form, fine for small c."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_erlang_c_known_values() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(10, 8.5) == pytest.approx(erlang_c_formula(10, 8.5), rel=1e-12)
    assert erlang_c(10, 8.5) == pytest.approx(0.5299, abs=1e-4)
    for c in range(1, 30):
        for a in (0.1, c * 0.5, c * 0.9, c * 0.99):
            assert erlang_c(c, a) == pytest.approx(erlang_c_formula(c, a), rel=1e-9)


def test_erlang_edges_and_large_halls() -> None:
    assert erlang_c(3, 0.0) == 0.0
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 5.0) == 1.0
    assert erlang_b(0, 2.0) == 1.0
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    # 1000 servers: the recursion never overflows; P(wait) at rho = 0.95 is small but not zero
    c = erlang_c(1000, 950.0)
    assert 0.0 < c < 0.2
    with pytest.raises(ValueError):
        erlang_c(-1, 1.0)
    with pytest.raises(ValueError):
        erlang_b(2, float("nan"))


def test_mean_wait_and_service_level() -> None:
    mu = 1 / 600  # 10 min service
    lam = 1.5 * mu  # R = 1.5
    c = erlang_c(2, 1.5)
    assert mean_wait(2, lam, mu) == pytest.approx(c / (2 * mu - lam))
    assert service_level(2, lam, mu, 0) == pytest.approx(1 - c)
    assert service_level(2, lam, mu, 300) == pytest.approx(1 - c * math.exp(-(2 * mu - lam) * 300))
    # M/M/1: mean wait = rho / (mu - lam)
    assert mean_wait(1, 0.5, 1.0) == pytest.approx(1.0)
    assert mean_wait(1, 1.0, 1.0) == math.inf
    assert service_level(1, 2.0, 1.0, 10) == 0.0
    assert mean_wait(3, 0.0, 1.0) == 0.0 and service_level(3, 0.0, 1.0, 0) == 1.0


def test_windows_needed_is_the_smallest_meeting_the_target() -> None:
    mu = 1 / 600
    for per_hour in (3, 20, 60, 144):
        lam = per_hour / 3600
        c = windows_needed(lam, mu)
        assert service_level(c, lam, mu, 900) >= 0.8
        assert c - 1 <= lam / mu or service_level(c - 1, lam, mu, 900) < 0.8
        cw = windows_needed(lam, mu, target_wait_s=120, target_sl=None)
        assert mean_wait(cw, lam, mu) <= 120 and mean_wait(cw - 1, lam, mu) > 120
        both = windows_needed(lam, mu, target_wait_s=120)
        assert both == max(c, cw)
    assert windows_needed(0.0, mu) == 0
    assert windows_needed(1.5 * mu, mu, target_sl=None) == 2  # the first stable c
    with pytest.raises(ValueError):
        windows_needed(1.0, 0.0)
    with pytest.raises(ValueError):
        windows_needed(1.0, 1.0, target_sl=(1.5, 10))


def test_halfin_whitt_delay() -> None:
    assert halfin_whitt_delay(0) == 1.0
    # alpha decreases with beta; beta ~ 0.5 gives about 50% waiting, 1.0 about 22%
    assert halfin_whitt_delay(0.5) == pytest.approx(0.5, abs=0.03)
    assert halfin_whitt_delay(1.0) == pytest.approx(0.2234, abs=1e-3)
    assert halfin_whitt_delay(2.0) < halfin_whitt_delay(1.0)


def test_square_root_rule_basic() -> None:
    assert square_root_rule(4.0, 1.0, 0.0) == 4  # an exact integer is not rounded up
    assert square_root_rule(4.0, 1.0, 1.0) == 6  # 4 + 1 * 2
    assert square_root_rule(100.0, 1.0, 0.5) == 105
    with pytest.raises(ValueError):
        square_root_rule(1.0, 1.0, -1)


GRID_SERVICE_S = (300, 600, 900, 1200)
GRID_R = [r / 10 for r in range(1, 1000, 7)]


@pytest.mark.parametrize(
    "target_sl,target_wait_s",
    [((0.8, 900), None), ((0.8, 600), None), ((0.8, 300), None), ((0.9, 900), None),
     (None, 60), (None, 300)],
)
def test_square_root_rule_against_exact(target_sl, target_wait_s) -> None:
    """What holds for the hall's targets: the rule with the QED beta is never above the exact
    answer and at most one window below it; equal in most cases."""
    equal = total = 0
    for service_s in GRID_SERVICE_S:
        mu = 1 / service_s
        for r in GRID_R:
            lam = r * mu
            exact = windows_needed(lam, mu, target_sl=target_sl, target_wait_s=target_wait_s)
            beta = beta_for(lam, mu, target_sl=target_sl, target_wait_s=target_wait_s)
            rule = square_root_rule(lam, mu, beta)
            assert rule <= exact <= rule + 1, (service_s, r, rule, exact)
            equal += rule == exact
            total += 1
    assert equal / total >= 0.8


def test_beta_grows_with_a_stricter_target() -> None:
    mu = 1 / 600
    lam = 20 * mu
    assert beta_for(lam, mu, target_sl=(0.9, 900)) > beta_for(lam, mu, target_sl=(0.8, 900))
    assert beta_for(lam, mu, target_sl=(0.8, 300)) > beta_for(lam, mu, target_sl=(0.8, 900))


def test_advise_per_half_hour() -> None:
    forecast = [("08:30", 60.0), ("09:00", 120.0), ("12:00", 0.0)]
    out = advise(forecast, 600)
    json.dumps(out)
    assert [(a["from"], a["to"]) for a in out] == [("08:30", "09:00"), ("09:00", "09:30"), ("12:00", "12:30")]
    mu = 1 / 600
    for a, (_, per_hour) in zip(out, forecast):
        lam = per_hour / 3600
        assert a["windows"] == max(1, windows_needed(lam, mu))
        assert a["service_level"] >= 0.8
        assert a["expected_wait_min"] == pytest.approx(mean_wait(a["windows"], lam, mu) / 60, abs=0.05)
        assert a["offered_load"] == pytest.approx(per_hour / 6)
    assert out[1]["windows"] > out[0]["windows"]
    assert out[2] | {} == {**out[2], "windows": 1, "needed": 0, "expected_wait_min": 0.0,
                           "service_level": 1.0}


def test_advise_capped_hall_and_time_formats() -> None:
    out = advise([("10:00", 200.0)], 600, max_windows=24)
    assert out[0]["needed"] > 24 and out[0]["windows"] == 24
    assert out[0]["expected_wait_min"] is None and out[0]["service_level"] == 0.0
    start = datetime.fromisoformat("2024-05-06T08:30:00+08:00")
    (a,) = advise([(start, 30.0)], 600)
    assert (a["from"], a["to"]) == ("2024-05-06T08:30:00+08:00", "2024-05-06T09:00:00+08:00")
    (b,) = advise([("2024-05-06T11:45:00+08:00", 30.0)], 600)
    assert b["to"] == "2024-05-06T12:15:00+08:00"
    (c,) = advise([(time(16, 30), 30.0)], 600)
    assert (c["from"], c["to"]) == ("16:30", "17:00")
    (d,) = advise([("09:00", 30.0)], 600, target_wait_s=60, target_sl=None)
    assert mean_wait(d["windows"], 30 / 3600, 1 / 600) <= 60
    with pytest.raises(ValueError):
        advise([("09:00", 30.0)], 0)


def _issued(day: str, hhmm_ss: str, n: int) -> Event:
    return Event(n, "ticket.issued", f"{day}T{hhmm_ss}+08:00", {"ticket": f"t{n}", "number": "A001",
                                                                "queue": "a"})


def _history(days: dict[str, list[str]]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for day, times in days.items():
        events = [Event(1, "day.started", f"{day}T00:00:00+08:00", {"day": day, "expired": []})]
        events += [_issued(day, t, i + 2) for i, t in enumerate(times)]
        out[day] = events
    return out


def test_forecast_mean_per_slot_all_days() -> None:
    hist = _history({
        "2024-05-06": ["08:30:00", "08:45:10", "08:59:59", "09:10:00"],
        "2024-05-07": ["08:31:00", "09:40:00"],
    })
    # a transfer is not an arrival
    hist["2024-05-07"].append(Event(9, "ticket.transferred", "2024-05-07T09:41:00+08:00",
                                    {"ticket": "t2", "number": "A001", "queue": "b",
                                     "from_queue": "a", "window": "w1"}))
    fc = forecast_from_history(hist)
    # slot 08:30: (3 + 1) / 2 days = 2 per half hour = 4 per hour; 09:00: 0.5 -> 1; 09:30: 0.5 -> 1
    assert fc == [("08:30", 4.0), ("09:00", 1.0), ("09:30", 1.0)]
    # dict events (the store's form) work too
    as_dicts = {d: [e.to_dict() for e in evs] for d, evs in hist.items()}
    assert forecast_from_history(as_dicts) == fc


def test_forecast_same_weekday_last_n_and_gaps() -> None:
    monday = date(2024, 5, 6)
    days: dict[str, list[str]] = {}
    for week in range(4):  # four Mondays with 1, 2, 3, 4 tickets at 10:00 and one at 11:15
        d = (monday + timedelta(weeks=week)).isoformat()
        days[d] = ["10:00:00"] * (week + 1) + ["11:15:00"]
    days["2024-05-07"] = ["10:00:00"] * 50  # a Tuesday: never used for a Monday
    days["2024-06-03"] = ["10:00:00"] * 99  # the day forecast itself: not history
    hist = _history(days)
    fc = forecast_from_history(hist, for_day="2024-06-03")
    assert fc == [("10:00", (1 + 2 + 3 + 4) / 4 * 2), ("10:30", 0.0), ("11:00", 2.0)]
    fc2 = forecast_from_history(hist, for_day="2024-06-03", last_n=2)
    assert fc2[0] == ("10:00", (3 + 4) / 2 * 2)
    # an empty day counts as a day with no arrivals
    hist2 = _history({"2024-05-06": ["10:00:00", "10:05:00"], "2024-05-13": []})
    assert forecast_from_history(hist2, slot_s=3600) == [("10:00", 1.0)]
    assert forecast_from_history(hist, for_day="2024-05-06") == []  # no earlier Monday
    assert forecast_from_history({}) == []
    with pytest.raises(ValueError):
        forecast_from_history(hist, slot_s=7000)


def test_forecast_feeds_advise() -> None:
    hist = _history({"2024-05-06": ["08:30:00"] * 30 + ["09:00:00"] * 60})
    out = advise(forecast_from_history(hist), 600)
    assert [a["from"] for a in out] == ["08:30", "09:00"]
    assert out[1]["windows"] > out[0]["windows"]
