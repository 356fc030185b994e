"""Replicated days over (layout, policy, mix) combinations, with common random numbers.

Day ``d`` has one list of arrivals (:func:`generate_day`), replayed by every combination, so
layouts and policies are compared on the same citizens with the same service times. Days are
independent replications (each starts with an empty hall), split over worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Iterable, Sequence

from hallctl.central.model import POLICY_NAMES
from hallctl.sim.hallsim.engine import HallDay, SimOptions
from hallctl.sim.hallsim.layouts import LAYOUTS, build_hall
from hallctl.sim.hallsim.metrics import WaitStats
from hallctl.sim.hallsim.scenario import MIXES, SCENARIOS, generate_day

FIRST_DAY = date(2024, 3, 4)


@dataclass(frozen=True, order=True)
class Combo:
    layout: str
    policy: str
    mix: str


@dataclass
class RunResult:
    stats: dict[Combo, WaitStats]
    tickets: int = 0  # tickets simulated, over all combos
    days: int = 0  # replicated days (each run by every combo)
    hall_days: int = 0  # days x combos
    sim_seconds: float = 0.0  # CPU-side time spent inside the simulations, summed over workers
    wall_seconds: float = 0.0
    commands: int = 0
    workers: int = 1
    extra: dict[str, float] = field(default_factory=dict)


def all_combos(
    layouts: Iterable[str] = LAYOUTS,
    policies: Iterable[str] | None = None,
    mixes: Iterable[str] = MIXES,
) -> list[Combo]:
    """Every combination of ``layouts``, ``policies`` (default: every policy the core has; names it
    does not know are left out) and ``mixes``."""
    chosen = [p for p in (policies or POLICY_NAMES) if p in POLICY_NAMES]
    return [Combo(l, p, m) for l in layouts for p in chosen for m in mixes]


def sim_date(day: int) -> date:
    """The calendar date of replication ``day`` (only the ticket ids show it)."""
    return FIRST_DAY + timedelta(days=day)


def run_days(
    scenario_name: str,
    combos: Sequence[Combo],
    days: Sequence[int],
    seed: int | str,
    options: SimOptions = SimOptions(),
) -> RunResult:
    """Run ``days`` for every combo in this process."""
    scenario = SCENARIOS[scenario_name]
    halls = {}
    for c in combos:
        if (c.layout, c.policy) not in halls:
            halls[(c.layout, c.policy)] = build_hall(c.layout, scenario, policy=c.policy)
    out = RunResult(stats={c: WaitStats() for c in combos})
    open_at = scenario.periods[0][0]
    t0 = time.perf_counter()
    for d in days:
        arrivals = generate_day(scenario, seed, d)
        for c in combos:
            opts = options if options.mix == c.mix else replace(options, mix=c.mix)
            result = HallDay(
                halls[(c.layout, c.policy)], arrivals, day=sim_date(d), open_at=open_at,
                scenario=scenario, options=opts,
            ).run()
            out.stats[c].add_day(result, scenario.open_minutes)
            out.tickets += len(result.records)
            out.commands += result.commands
            out.hall_days += 1
        out.days += 1
    out.sim_seconds = time.perf_counter() - t0
    return out


def _run_chunk(args: tuple) -> RunResult:
    return run_days(*args)


def merge(results: Iterable[RunResult]) -> RunResult:
    total: RunResult | None = None
    for r in results:
        if total is None:
            total = r
            continue
        for c, s in r.stats.items():
            total.stats[c].merge(s)
        total.tickets += r.tickets
        total.days += r.days
        total.hall_days += r.hall_days
        total.sim_seconds += r.sim_seconds
        total.commands += r.commands
    if total is None:
        raise ValueError("nothing to merge")
    return total


def run_replications(
    combos: Sequence[Combo],
    n_days: int,
    *,
    scenario_name: str = "xiaoshan-base",
    seed: int | str = 1,
    workers: int | None = None,
    chunk_days: int | None = None,
    options: SimOptions = SimOptions(),
) -> RunResult:
    """``n_days`` replicated days of every combo, over ``workers`` processes (default: CPUs)."""
    workers = max(1, workers or os.cpu_count() or 1)
    if chunk_days is None:  # a few chunks per worker balances the load without much overhead
        chunk_days = max(1, min(50, n_days // (4 * workers) or 1))
    chunks = [list(range(i, min(i + chunk_days, n_days))) for i in range(0, n_days, chunk_days)]
    jobs = [(scenario_name, list(combos), ch, seed, options) for ch in chunks]
    t0 = time.perf_counter()
    if workers == 1 or len(jobs) == 1:
        result = merge(_run_chunk(j) for j in jobs)
    else:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(workers) as pool:
            result = merge(pool.imap_unordered(_run_chunk, jobs))
    result.wall_seconds = time.perf_counter() - t0
    result.workers = workers
    return result
