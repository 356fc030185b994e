"""The hall simulator (hallctl.sim.hallsim) driving the real central core.

What is checked is what the core publishes (its events, numbers and statuses) and what the
scenario promises (volumes, service means), on a few simulated days at most.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime

import pytest

from hallctl.central.model import POLICY_NAMES, HallSpec, QueueSpec, WindowSpec
from hallctl.errors import HallClosed
from hallctl.sim.hallsim.crosscheck import (
    erlang_c_check,
    erlang_c_probability,
    erlang_c_wait,
    fcfs_wait_mgc,
    priority_class_waits,
    scenario_priority_formula,
)
from hallctl.sim.hallsim.engine import DayResult, HallDay, SimError, SimOptions
from hallctl.sim.hallsim.layouts import LAYOUTS, build_hall, window_skills
from hallctl.sim.hallsim.metrics import WaitStats
from hallctl.sim.hallsim.run import Combo, run_replications
from hallctl.sim.hallsim.scenario import XIAOSHAN_BASE as XS, Arrival, generate_day

DAY = date(2024, 3, 4)
OPEN = XS.periods[0][0]


def simulate(layout: str, day: int = 0, **opts: object) -> tuple[list[Arrival], DayResult, HallDay]:
    arrivals = generate_day(XS, 11, day)
    hall = build_hall(layout, XS, policy="fifo")
    sim = HallDay(hall, arrivals, day=DAY, open_at=OPEN, scenario=XS,
                  options=SimOptions(**opts), keep_events=True)  # type: ignore[arg-type]
    return arrivals, sim.run(), sim


def run_day(layout: str, day: int = 0, **opts: object) -> tuple[list[Arrival], DayResult]:
    arrivals, result, _ = simulate(layout, day, **opts)
    return arrivals, result


def ts_minutes(ts: str) -> float:
    t = datetime.fromisoformat(ts)
    return t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6


# -- the scenario -----------------------------------------------------------------------------


def test_xiaoshan_volumes_are_the_domain_figures():
    assert sum(b.monthly for b in XS.blocks) == 14_340
    assert {b.name: b.monthly for b in XS.blocks} == {
        "市场监管": 6869, "商务": 2683, "公安": 2191, "卫计": 445,
        "投资项目": 1133, "城管运管": 512, "社会事务": 507,
    }
    assert [b.mean_min for b in XS.blocks] == [15, 6, 8, 12, 20, 12, 10]
    assert XS.daily_volume == pytest.approx(14_340 / 21)
    rates = XS.slices()
    assert len(rates) == 14 and rates[0][:2] == (510.0, 540.0) and rates[-1][:2] == (990.0, 1020.0)
    assert sum((b - a) * r for a, b, r in rates) == pytest.approx(14_340 / 21)


def test_daily_volume_averages_14340_over_21_days():
    """Poisson daily counts: the mean of n days is within 4 standard errors of 14,340 / 21."""
    n = 150
    counts = [len(generate_day(XS, "volume", d)) for d in range(n)]
    expected = 14_340 / 21
    assert abs(statistics.fmean(counts) - expected) <= 4 * math.sqrt(expected / n)
    # Poisson: the variance of a day's count equals its mean (within sampling error)
    assert 0.6 * expected < statistics.variance(counts) < 1.5 * expected


def test_arrivals_blocks_and_service_times_follow_the_scenario():
    arrivals = [a for d in range(40) for a in generate_day(XS, "mix", d)]
    n = len(arrivals)
    by_block = Counter(a.queue for a in arrivals)
    for block, share in zip(XS.blocks, XS.block_weights):
        sd = math.sqrt(share * (1 - share) / n)
        assert abs(by_block[block.id] / n - share) <= 4 * sd, block.name
        services = [a.service for a in arrivals if a.queue == block.id]
        # lognormal with CV 1: the mean of k draws has standard error mean / sqrt(k)
        assert abs(statistics.fmean(services) - block.mean_min) <= 5 * block.mean_min / math.sqrt(len(services))
    for a in arrivals:
        assert any(lo <= a.t < hi for lo, hi in XS.periods)
    # more people in the 10:00 half hour (x1.40) than in the last one (x0.44)
    peak = sum(1 for a in arrivals if 570 <= a.t < 600)
    last = sum(1 for a in arrivals if 990 <= a.t < 1020)
    assert peak > 2.5 * last


def test_same_day_same_citizens_whatever_the_layout():
    """Common random numbers: a day's arrivals do not depend on the layout or the run."""
    assert generate_day(XS, 5, 3) == generate_day(XS, 5, 3)
    assert generate_day(XS, 5, 3) != generate_day(XS, 5, 4)
    _, a = run_day("u24", day=2)
    _, b = run_day("ded29", day=2)
    assert [(r.issued, r.queue, r.arrival) for r in a.records] == [(r.issued, r.queue, r.arrival) for r in b.records]


# -- the layouts ------------------------------------------------------------------------------


def test_layouts_have_the_issue_window_counts_and_chains():
    counts = {layout: len(window_skills(layout)) for layout in LAYOUTS}
    assert counts == {"ded29": 29, "u24": 24, "1x": 24, "prim24": 24, "chain2": 24, "chain3": 24}
    ded = Counter(s[0] for s in window_skills("ded29"))
    assert ded == {"scjg": 15, "sw": 3, "ga": 3, "wj": 1, "tzxm": 4, "cgyg": 2, "shsw": 1}
    prim = Counter(s for s in window_skills("prim24"))
    assert prim == {("scjg",): 14, ("sw",): 2, ("ga",): 2, ("wj",): 1, ("tzxm",): 3, ("cgyg",): 1, ("shsw",): 1}
    assert set(window_skills("chain2")) >= {("scjg", "sw"), ("shsw", "scjg")}
    assert set(window_skills("chain3")) >= {("tzxm", "cgyg", "shsw"), ("shsw", "scjg", "sw")}
    assert Counter(window_skills("1x")) == {("*",): 21, ("ga",): 3}
    for layout in LAYOUTS:
        hall = build_hall(layout, XS, policy="default")
        assert isinstance(hall, HallSpec) and len(hall.queues) == 7


# -- one simulated day through the core ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["ded29", "u24", "chain3"])
def test_a_day_issues_every_arrival_once_and_finishes_every_ticket(layout):
    arrivals, result, sim = simulate(layout, with_start=True)
    events = result.log
    # the clock never goes back: event times never decrease, seq is contiguous
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    times = [ts_minutes(e.ts) for e in events]
    assert all(a <= b for a, b in zip(times, times[1:]))
    assert times[0] == OPEN
    by_type = defaultdict(list)
    for e in events:
        by_type[e.type].append(e)
    issued = [e.data["ticket"] for e in by_type["ticket.issued"]]
    assert len(issued) == len(set(issued)) == len(arrivals)
    # every ticket: issued once, called once, started once, completed once, in that order
    for kind in ("ticket.called", "ticket.started", "ticket.completed"):
        assert sorted(e.data["ticket"] for e in by_type[kind]) == sorted(issued)
    assert not by_type["ticket.no_show"]
    # issue times are the arrival times (to the millisecond of the event stamp)
    for e, a in zip(by_type["ticket.issued"], arrivals):
        assert ts_minutes(e.ts) == pytest.approx(a.t, abs=1e-4)
        assert e.data["queue"] == a.queue
    # nobody is issued after a period's close; everyone waiting then is still served
    assert all(any(lo <= ts_minutes(e.ts) < hi for lo, hi in XS.periods) for e in by_type["ticket.issued"])
    # the core's own view at the end of the day: every ticket done, every window free
    assert len(sim.central.tickets) == len(arrivals)
    assert all(t.status == "done" for t in sim.central.tickets.values())
    assert all(w["ticket"] is None and w["state"] == "open"
               for w in sim.central.queue_status()["windows"].values())
    served_by = {e.data["ticket"]: e.data["window"] for e in by_type["ticket.called"]}
    hall = build_hall(layout, XS, policy="fifo")
    for e in by_type["ticket.issued"]:
        assert hall.windows[served_by[e.data["ticket"]]].serves(e.data["queue"])


def test_numbers_are_the_cores_per_prefix_sequence():
    _, result = run_day("u24", day=1)
    numbers = [e.data["number"] for e in result.log if e.type == "ticket.issued"]
    per_prefix = defaultdict(list)
    for n in numbers:
        per_prefix[n.rstrip("0123456789")].append(n)
    assert set(per_prefix) == {b.prefix for b in XS.blocks}
    for prefix, seq in per_prefix.items():
        assert seq == [f"{prefix}{i:03d}" for i in range(1, len(seq) + 1)]  # A001, A002, ...
    assert result.issued_numbers == dict(per_prefix)
    assert [r.number for r in result.records] == numbers
    assert all(r.id == f"{DAY.isoformat()}-{r.number}" for r in result.records)


def test_waits_in_the_records_are_the_cores_call_times():
    _, result = run_day("1x", day=3)
    called = {e.data["ticket"]: ts_minutes(e.ts) for e in result.log if e.type == "ticket.called"}
    for r in result.records:
        assert r.called == pytest.approx(called[r.id], abs=1e-4)
        assert r.called >= r.issued and r.done > r.called


def test_no_shows_and_walk_outs_end_as_no_show_in_the_core():
    arrivals, result = run_day("u24", day=4, noshow_p=0.1, patience_mean_min=8.0, recalls=2)
    statuses = Counter(e.type for e in result.log)
    no_shows = [r for r in result.records if r.no_show]
    assert statuses["ticket.no_show"] == len(no_shows) > 0
    assert statuses["ticket.completed"] == len(arrivals) - len(no_shows)
    assert statuses["ticket.recalled"] == 2 * len(no_shows)  # recalled twice, then no-show
    expected_absent = sum(1 for a in arrivals if a.u_noshow < 0.1)
    assert len(no_shows) >= expected_absent


def test_priority_mix_marks_classes_and_appointment_slots():
    arrivals, result = run_day("u24", day=5, mix="priority")
    classes = Counter(r.cls for r in result.records)
    n = len(arrivals)
    assert abs(classes["green"] / n - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    assert abs(classes["appointment"] / n - 0.20) < 4 * math.sqrt(0.2 * 0.8 / n)
    for r in result.records:
        assert (r.slot is not None) == (r.cls == "appointment")
        if r.slot is not None:
            assert r.slot % 5 == 0 and any(lo <= r.slot < hi for lo, hi in XS.periods)
            assert -7.5 <= r.slot - r.issued <= 17.5  # up to 15 min early, 5 late, on a 5-min grid
    # the core got each ticket's class, and each appointment's slot as an ISO datetime
    issued = {e.data["ticket"]: e.data for e in result.log if e.type == "ticket.issued"}
    green = [r for r in result.records if r.cls == "green"]
    assert green and all(issued[r.id].get("priority") == "green" for r in green)
    assert all("priority" not in issued[r.id] for r in result.records if r.cls == "walkin")
    slotted = [r for r in result.records if "slot" in issued[r.id]]
    assert slotted and all(r.cls == "appointment" for r in slotted)
    for r in slotted:
        assert issued[r.id]["priority"] == "appointment"
        assert ts_minutes(issued[r.id]["slot"]) == pytest.approx(r.slot)


def test_window_speed_divides_service_time():
    hall = HallSpec(hall_id="speed", queues={"q": QueueSpec("q", "A", "q")},
                    windows={"w1": WindowSpec("w1", "1号窗口", ("q",), speed={"q": 2.0})})
    arrivals = [Arrival(600.0 + 10 * i, "q", 4.0, 1.0, 0.0, 1.0, 1.0) for i in range(5)]
    result = HallDay(hall, arrivals, day=DAY, open_at=OPEN).run()
    assert result.busy_min["w1"] == pytest.approx(10.0)  # 5 x 4 min at double speed
    assert [r.done - r.called for r in result.records] == pytest.approx([2.0] * 5)


def test_a_simulated_day_may_run_past_midnight_but_not_past_the_reset_hour():
    # a hall that issues at any hour (the scenario's opening hours would refuse a 23:50 ticket)
    hall = dataclasses.replace(build_hall("u24", XS, policy="fifo"), hours=None)
    assert hall.day_reset_hour == 4
    # a citizen served from 23:50 to 00:10 is still today's business day
    ok = HallDay(hall, [Arrival(1430.0, "scjg", 20.0, 1.0, 0.0, 1.0, 1.0)], day=DAY, open_at=1420.0).run()
    assert len(ok.records) == 1 and ok.end > 24 * 60, "served past midnight, same business day"
    late = [Arrival(1670.0, "scjg", 20.0, 1.0, 0.0, 1.0, 1.0)]  # served until 04:10 the next morning
    with pytest.raises(SimError, match="reset hour"):
        HallDay(hall, late, day=DAY, open_at=1660.0).run()


def test_the_simulated_hall_issues_through_the_cores_opening_hours():
    """The layouts carry the scenario's periods as the hall's hours, so every simulated ticket
    passes the same gate as a kiosk's; a citizen at 12:10 is refused."""
    hall = build_hall("u24", XS, policy="default")
    assert hall.hours is not None and hall.hours.describe() == ["08:30-12:00", "13:30-17:00"]
    arrivals, result = run_day("u24", day=2)
    assert len(result.records) == len(arrivals) > 500
    lunch = [Arrival(730.0, "scjg", 5.0, 1.0, 0.0, 1.0, 1.0)]
    with pytest.raises(HallClosed):
        HallDay(hall, lunch, day=DAY, open_at=725.0).run()


def test_no_service_lasts_longer_than_a_working_day():
    from hallctl.sim.hallsim.scenario import MAX_SERVICE_MIN

    arrivals = generate_day(XS, seed=11, day=0)
    assert arrivals and max(a.service for a in arrivals) <= MAX_SERVICE_MIN


# -- validity -----------------------------------------------------------------------------------


def test_erlang_c_formula_known_values():
    # M/M/1: P(wait) = rho, Wq = rho / (mu - lambda)
    assert erlang_c_probability(1, 0.5) == pytest.approx(0.5)
    assert erlang_c_wait(1, 0.5, 1.0) == pytest.approx(1.0)
    # M/M/2 with a = 1: C = 1/3, Wq = C / (2 mu - lambda) = 1/3
    assert erlang_c_probability(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c_wait(2, 1.0, 1.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize("c,lam,mean", [(1, 0.5, 1.0), (4, 3.0, 1.0), (24, 1.6, 12.0)])
def test_priority_formula_with_one_class_is_erlang_c(c, lam, mean):
    (w,) = priority_class_waits(c, [lam], mean)
    assert w == pytest.approx(erlang_c_wait(c, lam, 1.0 / mean))


def test_priority_formula_known_two_class_mm1_values():
    # M/M/1, lambda 0.25 + 0.25, mu 1: W0 = rho / mu = 0.5; W1 = 0.5 / 0.75, W2 = 0.5 / (0.75 * 0.5)
    w1, w2 = priority_class_waits(1, [0.25, 0.25], 1.0)
    assert (w1, w2) == (pytest.approx(2 / 3), pytest.approx(4 / 3))
    # deterministic service (cv2 0) halves the M/M/1 waits (Pollaczek-Khinchine, exact for c = 1)
    assert priority_class_waits(1, [0.25, 0.25], 1.0, cv2=0.0) == [pytest.approx(1 / 3), pytest.approx(2 / 3)]


@pytest.mark.parametrize("c,lams,mean,cv2", [
    (1, [0.3, 0.5], 1.0, 1.0), (10, [2.0, 6.5], 1.0, 1.0), (24, [0.4, 1.2], 12.0, 1.25),
    (24, [0.08, 0.33, 1.22], 12.26, 1.25),
])
def test_priority_formula_conservation_law(c, lams, mean, cv2):
    """Equal service times: the arrival- (= load-) weighted mean wait equals the FCFS wait, and
    the higher class never waits longer."""
    waits = priority_class_waits(c, lams, mean, cv2)
    avg = sum(l * w for l, w in zip(lams, waits)) / sum(lams)
    assert avg == pytest.approx(fcfs_wait_mgc(c, sum(lams), mean, cv2))
    assert waits == sorted(waits)


def test_priority_formula_for_the_xiaoshan_u24_hall():
    f = scenario_priority_formula(XS, 24)
    assert f["rho"] == pytest.approx(XS.daily_volume / XS.open_minutes * f["mean_service_min"] / 24, rel=1e-3)
    w = f["class_wait_min"]
    assert w["green"] <= w["appointment"] <= f["fcfs_wait_min"] <= w["walkin"]
    assert f["walkin_over_fcfs"] == pytest.approx(w["walkin"] / f["fcfs_wait_min"], rel=1e-2)
    assert f["cv2"] > 1.0  # a mixture of CV-1 lognormals with different means


def test_simulator_agrees_with_erlang_c_on_a_small_case():
    """M/M/4 at rho 0.75: ~10,000 tickets; the exact value must lie in a loose band around the
    simulated mean (the full 3% check with ~1.4M tickets is in bench/assignment.py)."""
    r = erlang_c_check(c=4, rho=0.75, reps=6, start=30, end=630, warmup=30, seed=1)
    assert abs(r["sim"] - r["exact"]) <= max(2 * r["ci95"], 0.25 * r["exact"]), r
    assert abs(r["rel_err"]) < 0.25, r


def test_replications_merge_over_workers_like_one_process():
    combos = [Combo("u24", "fifo", "walkin"), Combo("ded29", "fifo", "walkin")]
    one = run_replications(combos, 4, seed=3, workers=1)
    two = run_replications(combos, 4, seed=3, workers=2, chunk_days=2)
    for c in combos:
        a, b = one.stats[c], two.stats[c]
        assert a.n == b.n and a.mean == pytest.approx(b.mean) and a.max == b.max
        assert sorted(a.day_means) == pytest.approx(sorted(b.day_means))
    s = one.stats[combos[0]].summary()
    assert 0 < s["utilisation"] < 1 and 0 <= s["served_within_15_min"] <= 1
    assert s["p90_wait_min"] <= s["p95_wait_min"] <= s["max_wait_min"]


def test_percentiles_from_the_histogram():
    stats = WaitStats()
    stats.n = 100
    for w in range(100):  # waits 0.0 .. 9.9 min
        stats.hist[int(w / 10 / 0.05)] += 1
    stats.max = 9.9
    assert stats.percentile(0.9) == pytest.approx(9.0, abs=0.06)
    assert stats.percentile(0.5) == pytest.approx(5.0, abs=0.06)


def test_ciw_agrees_on_u24_over_a_few_days():
    import ciw  # a test dependency (pyproject's test extras): when missing, this fails

    from hallctl.sim.hallsim.crosscheck import ciw_compare, ciw_day

    assert ciw.__version__.startswith("3.")  # the major version crosscheck's ciw Node subclass is for

    mean, n = ciw_day(("1x", XS.name, 5))
    assert 500 < n < 900 and 0 <= mean < 60
    run = run_replications([Combo("u24", "fifo", "walkin")], 30, seed=2, workers=1)
    cmp = ciw_compare("u24", run.stats[Combo("u24", "fifo", "walkin")].day_means, days=30, seed=2)
    assert cmp["agree"], cmp


def test_the_hall_config_accepts_exactly_the_four_policies():
    """The no-idle test below runs over POLICY_NAMES: a policy dropped from it must fail here."""
    assert sorted(POLICY_NAMES) == ["dedicated", "default", "fifo", "sew"]
    for policy in POLICY_NAMES:
        assert build_hall("u24", XS, policy=policy).policy == policy


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_no_window_idles_while_work_it_may_serve_waits(policy):
    """Every policy hands a free window a ticket whenever one it may serve waits: the simulator
    never had to ask again later (repolls), on a busy chain3 day with appointments and green."""
    arrivals = generate_day(XS, 11, 6)
    hall = build_hall("chain3", XS, policy=policy)
    result = HallDay(hall, arrivals, day=DAY, open_at=OPEN, scenario=XS,
                     options=SimOptions(mix="priority")).run()
    assert result.repolls == 0
    assert len(result.records) == len(arrivals) and all(r.done is not None for r in result.records)


def test_no_simulated_arrival_rounds_onto_a_closing_time():
    """The core's clock has whole microseconds: an arrival 5 ns before 12:00 would be issued at
    12:00:00.000000 and refused. The generator stops a margin short of every slice's end."""
    from hallctl.sim.hallsim.scenario import END_MARGIN_MIN

    hall = build_hall("u24", XS, policy="default")
    with pytest.raises(HallClosed):
        HallDay(hall, [Arrival(720.0 - 5e-9, "scjg", 5.0, 1.0, 0.0, 1.0, 1.0)], day=DAY, open_at=719.0).run()
    ends = {b for _, b in XS.periods}
    for day in range(30):
        for a in generate_day(XS, 11, day):
            assert all(not (e - END_MARGIN_MIN <= a.t < e) for e in ends)
