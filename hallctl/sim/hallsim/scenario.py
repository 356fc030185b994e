"""The simulated demand: who comes when, for what, and how long the service takes.

Scenario "xiaoshan-base" (issue 3) is calibrated on the Xiaoshan district hall (DOMAIN.md, seed
000): 14,340 acceptances a month over 21 working days, grouped into 7 blocks of departments, each
with a lognormal service time (CV 1.0). Arrivals are a non-homogeneous Poisson process, constant
within each half hour of the two opening periods (08:30-12:00, 13:30-17:00) and scaled by the
issue's half-hour multipliers (they average exactly 1.0, so the daily volume is the monthly
volume / 21).

Common random numbers: :func:`generate_day` draws every random quantity of a ticket (arrival
time, block, service time, class, slot offset, patience, no-show) once, from one stream per
(seed, day). Every layout, policy and mix then replays the very same list, so their differences
are due to the hall, not to luck.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

Mix = Literal["walkin", "priority"]
MIXES: tuple[str, ...] = ("walkin", "priority")


@dataclass(frozen=True)
class Block:
    """A group of departments served as one queue (one ticket class, one prefix)."""

    id: str
    prefix: str
    name: str
    departments: dict[str, int]  # department -> monthly acceptances (DOMAIN.md)
    mean_min: float  # mean service time, minutes

    @property
    def monthly(self) -> int:
        return sum(self.departments.values())


@dataclass(frozen=True)
class Scenario:
    """Demand of one hall: blocks, opening periods and the arrival profile.

    ``periods`` are (open, close) in minutes after local midnight; ``multipliers`` has one entry per
    ``slot_min`` slice of every period, in order. Tickets are issued only inside a period; tickets
    waiting at its close are still served (windows keep calling until the queue is empty, into the
    lunch break or past 17:00 if need be).
    """

    name: str
    blocks: tuple[Block, ...]
    days_per_month: int = 21
    periods: tuple[tuple[float, float], ...] = ((510.0, 720.0), (810.0, 1020.0))
    slot_min: float = 30.0
    multipliers: tuple[float, ...] = (
        0.78, 1.26, 1.40, 1.31, 1.11, 0.87, 0.58,
        0.87, 1.26, 1.31, 1.16, 0.97, 0.68, 0.44,
    )
    cv: float = 1.0
    appointment_share: float = 0.20  # of all tickets, mix "priority"
    green_share: float = 0.05  # of all tickets, mix "priority"
    slot_grid_min: float = 5.0  # appointment slots are on this grid
    slot_offset_min: tuple[float, float] = (-5.0, 15.0)  # slot - arrival: up to 15 min early, 5 late
    block_weights: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        slices = sum(round((b - a) / self.slot_min) for a, b in self.periods)
        if slices != len(self.multipliers):
            raise ValueError(f"{len(self.multipliers)} multipliers for {slices} slices")
        total = sum(b.monthly for b in self.blocks)
        object.__setattr__(self, "block_weights", tuple(b.monthly / total for b in self.blocks))

    @property
    def daily_volume(self) -> float:
        """Expected tickets per day."""
        return sum(b.monthly for b in self.blocks) / self.days_per_month

    @property
    def open_minutes(self) -> float:
        return sum(b - a for a, b in self.periods)

    def block(self, queue_id: str) -> Block:
        for b in self.blocks:
            if b.id == queue_id:
                return b
        raise KeyError(queue_id)

    def slices(self) -> list[tuple[float, float, float]]:
        """(start, end, tickets per minute) of every constant-rate slice of the day."""
        base = self.daily_volume / sum(  # rate per minute when the multiplier is 1
            (b - a) for a, b in self.periods
        )
        mean_mult = sum(self.multipliers) / len(self.multipliers)
        out, i = [], 0
        for a, b in self.periods:
            t = a
            while t < b - 1e-9:
                out.append((t, min(t + self.slot_min, b), base * self.multipliers[i] / mean_mult))
                t += self.slot_min
                i += 1
        return out

    def period_of(self, t: float) -> tuple[float, float]:
        for a, b in self.periods:
            if a <= t < b:
                return a, b
        raise ValueError(f"{t} is outside the opening periods")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One citizen of one simulated day, with all their random draws (minutes after midnight)."""

    t: float  # arrival = ticket issue time
    queue: str  # block id
    service: float  # service time at a window of speed 1.0, minutes
    u_class: float  # U(0,1): class under mix "priority" (see ticket_class)
    slot_offset: float  # appointment slot - arrival, minutes (before snapping to the grid)
    patience: float  # minutes the citizen is willing to wait (Exp(1); scaled by the option)
    u_noshow: float  # U(0,1): compared with the no-show probability

    def ticket_class(self, mix: str, scenario: Scenario) -> str:
        """"walkin", "appointment" or "green" (the core's ``priority`` names)."""
        if mix == "walkin":
            return "walkin"
        if self.u_class < scenario.green_share:
            return "green"
        if self.u_class < scenario.green_share + scenario.appointment_share:
            return "appointment"
        return "walkin"

    def slot(self, scenario: Scenario) -> float:
        """The appointment slot (minutes after midnight), on the grid, inside the arrival's period."""
        grid = scenario.slot_grid_min
        a, b = scenario.period_of(self.t)
        s = round((self.t + self.slot_offset) / grid) * grid
        return min(max(s, math.ceil(a / grid) * grid), b - grid)


#: arrivals stop this many minutes before a slice ends (0.1 µs * 60: below any real draw)
END_MARGIN_MIN = 1e-7
#: a simulated business day begins at 04:00, so a day whose last services run past midnight
#: stays one business day for the core (a real hall sets its own day_reset_hour the same way)
DAY_RESET_HOUR = 4
#: no service lasts longer than a clerk's working day; the lognormal's far tail (about 2 in
#: 100,000 tickets over 7 hours at a 20-minute mean) is cut here, without changing the draws
MAX_SERVICE_MIN = 480.0


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the normal whose exponential has this mean and coefficient of variation."""
    sigma2 = math.log(1.0 + cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def generate_day(scenario: Scenario, seed: int | str, day: int) -> list[Arrival]:
    """The arrivals of day ``day`` (sorted by time), reproducible from (seed, day)."""
    rng = random.Random(f"{scenario.name}/{seed}/{day}")
    params = {b.id: lognormal_params(b.mean_min, scenario.cv) for b in scenario.blocks}
    ids = [b.id for b in scenario.blocks]
    cum = []
    acc = 0.0
    for w in scenario.block_weights:
        acc += w
        cum.append(acc)
    lo, hi = scenario.slot_offset_min
    out: list[Arrival] = []
    for start, end, rate in scenario.slices():
        if rate <= 0:
            continue
        t = start
        while True:  # exponential gaps restart exactly at a slice boundary (memoryless)
            t += rng.expovariate(rate)
            # 6 µs short of the end: the core's clock is whole microseconds, and an arrival that
            # rounds to 12:00:00.000000 would find the hall closed
            if t >= end - END_MARGIN_MIN:
                break
            u = rng.random()
            k = next((i for i, c in enumerate(cum) if u < c), len(ids) - 1)
            q = ids[k]
            mu, sigma = params[q]
            out.append(
                Arrival(
                    t=t,
                    queue=q,
                    service=min(rng.lognormvariate(mu, sigma), MAX_SERVICE_MIN),
                    u_class=rng.random(),
                    slot_offset=rng.uniform(lo, hi),
                    patience=rng.expovariate(1.0),
                    u_noshow=rng.random(),
                )
            )
    return out


def _block(id_: str, prefix: str, name: str, mean: float, **departments: int) -> Block:
    return Block(id_, prefix, name, dict(departments), mean)


#: DOMAIN.md "Numbers to calibrate against" (monthly acceptances per department), in 7 blocks
XIAOSHAN_BASE = Scenario(
    name="xiaoshan-base",
    blocks=(
        _block("scjg", "A", "市场监管", 15.0, 市场监管=6869),
        _block("sw", "B", "商务", 6.0, 商务=2683),
        _block("ga", "C", "公安", 8.0, 公安=2191),
        _block("wj", "D", "卫计", 12.0, 卫计=445),
        _block(
            "tzxm", "E", "投资项目", 20.0,
            发改=66, 规划=123, 国土=43, 住建=315, 环保=206, 人防=14,
            消防=269, 气象=5, 经信=64, 安监=17, 交通=1, 农水=10,
        ),
        _block("cgyg", "F", "城管运管", 12.0, 城管=275, 运管=237),
        _block(
            "shsw", "G", "社会事务", 10.0,
            农业=24, 文广新=148, 民政=28, 人社=37, 教育=79, 烟草=167, 招商=19, 司法=1, 民宗=4,
        ),
    ),
)

SCENARIOS: dict[str, Scenario] = {XIAOSHAN_BASE.name: XIAOSHAN_BASE}
