"""Is the simulator right? Two independent references.

1. **Erlang C** (M/M/c, exact): one queue, ``c`` universal windows, stationary Poisson arrivals
   and exponential service, a long day with a warm-up cut. The simulator's mean wait, averaged
   over replications, must match the formula.
2. **ciw** (an independent discrete-event library, optional dependency): the same ded29, u24
   and 1x halls (same arrival rates by half hour, lunch break, lognormal services, FIFO) built as
   ciw networks. ded29 is 7 independent nodes; u24 one node with 24 servers and 7 customer
   classes; 1x the same node where servers 22-24 take police tickets only (a small ciw Node
   subclass: a free server takes the first waiting ticket it may serve; an arriving ticket goes to
   the longest-idle server that may serve it, as the simulator's clerks do).

Only the hallsim side touches hallctl's core; ciw is imported lazily.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
from datetime import date
from typing import Any, Sequence

from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
from hallctl.sim.hallsim.engine import HallDay
from hallctl.sim.hallsim.layouts import DED29, window_skills
from hallctl.sim.hallsim.metrics import mean_ci
from hallctl.sim.hallsim.scenario import SCENARIOS, Arrival, Scenario, lognormal_params

# -- Erlang C -------------------------------------------------------------------------------------


def erlang_c_probability(c: int, a: float) -> float:
    """P(an arrival waits) in M/M/c with offered load ``a`` = lambda/mu (< c)."""
    if not 0 <= a < c:
        raise ValueError("needs 0 <= a < c")
    b = 1.0  # Erlang B by the stable recurrence
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Exact mean wait in queue of M/M/c (same time unit as 1/lam)."""
    return erlang_c_probability(c, lam / mu) / (c * mu - lam)


def priority_class_waits(c: int, lams: Sequence[float], mean_service: float, cv2: float = 1.0) -> list[float]:
    """Mean wait in queue of each class of an M/G/c queue with NON-PREEMPTIVE priority classes.

    ``lams`` are the arrival rates, highest priority first; every class has the same service
    distribution (mean ``mean_service``, squared coefficient of variation ``cv2``). Cobham's
    formula (A. Cobham, "Priority assignment in waiting line problems", J. Oper. Res. Soc. Am. 2
    (1954) 70-76; for c servers see e.g. Kleinrock, *Queueing Systems* vol. II, 1976, sec. 3.6,
    or Gross & Harris, *Fundamentals of Queueing Theory*, sec. 3.4.2)::

        W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k)),   sigma_k = rho_1 + ... + rho_k,
        rho_i = lambda_i * E[S] / c,   W0 = C(c, a) / (c * mu),   a = lambda * E[S],

    with C(c, a) the Erlang-C probability of waiting on the TOTAL load. Exact for exponential
    service (cv2 = 1). For general service the M/G/c approximation scales W0 by (1 + cv2) / 2
    (Lee & Longton 1959; exact for c = 1 by Pollaczek-Khinchine). One class gives Erlang C's mean
    wait; the load-weighted mean over the classes equals the FCFS wait (Kleinrock's conservation
    law), see :func:`fcfs_wait_mgc`. Same time unit as ``mean_service``.
    """
    if mean_service <= 0 or any(x < 0 for x in lams):
        raise ValueError("needs mean_service > 0 and rates >= 0")
    mu = 1.0 / mean_service
    a = sum(lams) * mean_service
    w0 = erlang_c_probability(c, a) / (c * mu) * (1.0 + cv2) / 2.0
    out, sigma = [], 0.0
    for lam in lams:
        prev = sigma
        sigma += lam * mean_service / c
        out.append(w0 / ((1.0 - prev) * (1.0 - sigma)))
    return out


def fcfs_wait_mgc(c: int, lam: float, mean_service: float, cv2: float = 1.0) -> float:
    """Mean wait of M/G/c under FCFS, Erlang C scaled by (1 + cv2) / 2 (exact for cv2 = 1)."""
    return erlang_c_wait(c, lam, 1.0 / mean_service) * (1.0 + cv2) / 2.0


def scenario_priority_formula(
    scenario: Scenario, c: int, classes: Sequence[tuple[str, float]] | None = None
) -> dict[str, Any]:
    """Cobham's stationary figures for a hall of ``c`` universal windows at the scenario's
    day-average load: total arrival rate averaged over the opening hours, the overall mean
    service time and its CV (the mixture of the blocks' lognormals). ``classes`` are (name,
    share) highest priority first; default green, appointment (treated as a priority class),
    walk-in. The hall's arrivals are non-stationary (half-hour peaks up to 1.4x), so absolute
    waits are only an approximation; the walk-in / FCFS ratio is the fairer comparison."""
    if classes is None:
        g, ap = scenario.green_share, scenario.appointment_share
        classes = (("green", g), ("appointment", ap), ("walkin", 1.0 - g - ap))
    lam = scenario.daily_volume / scenario.open_minutes
    w = scenario.block_weights
    mean = sum(wi * b.mean_min for wi, b in zip(w, scenario.blocks))
    second = sum(wi * (1.0 + scenario.cv ** 2) * b.mean_min ** 2 for wi, b in zip(w, scenario.blocks))
    cv2 = second / (mean * mean) - 1.0
    waits = priority_class_waits(c, [lam * s for _, s in classes], mean, cv2)
    fcfs = fcfs_wait_mgc(c, lam, mean, cv2)
    return {
        "c": c, "lambda_per_min": round(lam, 4), "mean_service_min": round(mean, 3),
        "cv2": round(cv2, 4), "rho": round(lam * mean / c, 4),
        "class_share": {n: s for n, s in classes},
        "class_wait_min": {n: round(x, 3) for (n, _), x in zip(classes, waits)},
        "fcfs_wait_min": round(fcfs, 3),
        "walkin_over_fcfs": round(waits[-1] / fcfs, 4),
    }


def mmc_hall(c: int) -> HallSpec:
    """One queue, ``c`` universal windows, FIFO."""
    return HallSpec(
        hall_id="sim-mmc",
        queues={"q": QueueSpec("q", "A", "排队")},
        windows={f"w{i:02d}": WindowSpec(f"w{i:02d}", f"{i}号窗口") for i in range(1, c + 1)},
        policy="fifo",
    )


def mmc_arrivals(lam: float, mu: float, start: float, end: float, rng: random.Random) -> list[Arrival]:
    out, t = [], start
    while True:
        t += rng.expovariate(lam)
        if t >= end:
            return out
        out.append(Arrival(t, "q", rng.expovariate(mu), 1.0, 0.0, 1.0, 1.0))


def mmc_replication(args: tuple[int, float, float, float, float, float, int | str, int]) -> tuple[float, int]:
    """(mean wait of the tickets issued after the warm-up, their number) for one long day."""
    c, lam, mu, start, end, warmup, seed, rep = args
    rng = random.Random(f"mmc/{seed}/{rep}")
    arrivals = mmc_arrivals(lam, mu, start, end, rng)
    result = HallDay(mmc_hall(c), arrivals, day=date(2024, 3, 4), open_at=start).run()
    waits = [r.called - r.issued for r in result.records if r.issued >= start + warmup]  # type: ignore[operator]
    return sum(waits) / len(waits), len(waits)


def erlang_c_check(
    *,
    c: int = 10,
    rho: float = 0.85,
    mu: float = 1.0,
    reps: int = 24,
    start: float = 30.0,
    end: float = 1380.0,
    warmup: float = 60.0,
    seed: int | str = 1,
    workers: int = 1,
) -> dict[str, Any]:
    """Simulated vs exact M/M/c mean wait. Defaults: 10 windows, rho 0.85, mean service 1 min,
    24 replications of a 22.5 h day (about 11,500 tickets each), the first hour cut."""
    lam = rho * c * mu
    jobs = [(c, lam, mu, start, end, warmup, seed, r) for r in range(reps)]
    reps_out = _pool_map(mmc_replication, jobs, workers)
    means = [m for m, _ in reps_out]
    sim, half = mean_ci(means)
    exact = erlang_c_wait(c, lam, mu)
    return {
        "c": c, "rho": rho, "mu_per_min": mu, "reps": reps,
        "tickets_counted": sum(n for _, n in reps_out),
        "sim": round(sim, 4), "ci95": round(half, 4), "exact": round(exact, 4),
        "rel_err": round((sim - exact) / exact, 4),
    }


def _pool_map(fn: Any, jobs: Sequence[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(workers) as pool:
        return pool.map(fn, jobs)


# -- ciw ------------------------------------------------------------------------------------------


def _intervals(scenario: Scenario) -> tuple[float, list[tuple[float, float]]]:
    """(origin, [(end, rate per minute)]) covering the day from the first opening, lunch = 0."""
    slices = scenario.slices()
    origin = slices[0][0]
    out, last = [], origin
    for a, b, rate in slices:
        if a > last + 1e-9:
            out.append((a - origin, 0.0))
        out.append((b - origin, rate))
        last = b
    return origin, out


def _eligible_node_class(ciw: Any, police_only: set[int], police_class: str) -> Any:
    class EligibleNode(ciw.Node):  # type: ignore[misc, name-defined]
        """Servers in ``police_only`` serve ``police_class`` only; longest-idle server first."""

        def _may(self, server: Any, ind: Any) -> bool:
            return server.id_number not in police_only or ind.customer_class == police_class

        def find_free_server(self, ind: Any) -> Any:
            free = [s for s in self.servers if not s.busy and self._may(s, ind)]
            return min(free, key=lambda s: (getattr(s, "idle_since", 0.0), s.id_number), default=None)

        def _start(self, ind: Any, server: Any) -> None:
            self.attach_server(server, ind)
            ind.service_start_date = self.now
            self.give_individual_a_service_time(ind)
            ind.service_end_date = self.now + ind.service_time
            self.number_in_service += 1
            self.reset_class_change(ind)
            server.next_end_service_date = ind.service_end_date

        def begin_service_if_possible_accept(self, next_individual: Any) -> None:
            next_individual.arrival_date = self.now
            self.decide_class_change(next_individual)
            server = self.find_free_server(next_individual)
            if server is not None:
                self._start(next_individual, server)

        def begin_service_if_possible_release(self, next_individual: Any, newly_free_server: Any) -> None:
            server = newly_free_server
            if server is None or server not in self.servers:
                return
            server.idle_since = self.now
            for group in self.individuals:
                for ind in group:
                    if not ind.server and self._may(server, ind):
                        self._start(ind, server)
                        return

    return EligibleNode


def ciw_day(args: tuple[str, str, int]) -> tuple[float, int]:
    """(mean wait in minutes, tickets) of one day of ``layout`` simulated by ciw, FIFO."""
    import ciw  # optional dependency: only the cross-check needs it

    layout, scenario_name, seed = args
    scenario = SCENARIOS[scenario_name]
    ciw.seed(seed)
    _, ivals = _intervals(scenario)
    ends = [e for e, _ in ivals]

    def arrivals(share: float) -> Any:
        return ciw.dists.PoissonIntervals([r * share for _, r in ivals], ends, ends[-1])

    def service(block_mean: float) -> Any:
        mu, sigma = lognormal_params(block_mean, scenario.cv)
        return ciw.dists.Lognormal(mu, sigma)

    blocks = scenario.blocks
    shares = scenario.block_weights
    node_class = None
    if layout == "ded29":
        n = len(blocks)
        network = ciw.create_network(
            arrival_distributions=[arrivals(s) for s in shares],
            service_distributions=[service(b.mean_min) for b in blocks],
            number_of_servers=[DED29[b.id] for b in blocks],
            routing=[[0.0] * n for _ in range(n)],
        )
    elif layout in ("u24", "1x"):
        names = {b.id: f"Class {k}" for k, b in enumerate(blocks)}
        network = ciw.create_network(
            arrival_distributions={names[b.id]: [arrivals(s)] for b, s in zip(blocks, shares)},
            service_distributions={names[b.id]: [service(b.mean_min)] for b in blocks},
            number_of_servers=[len(window_skills(layout))],
            routing={names[b.id]: [[0.0]] for b in blocks},
        )
        if layout == "1x":
            skills = window_skills("1x")
            police_only = {i for i, s in enumerate(skills, start=1) if s == ("ga",)}
            node_class = _eligible_node_class(ciw, police_only, names["ga"])
    else:
        raise ValueError(f"ciw cannot express layout {layout!r}")
    sim = ciw.Simulation(network, node_class=node_class)
    sim.simulate_until_max_time(24 * 60.0 - ends[-1])
    records = sim.get_all_records()
    waits = [r.waiting_time for r in records]
    return sum(waits) / len(waits), len(waits)


def ciw_compare(
    layout: str,
    ours_day_means: Sequence[float],
    *,
    days: int,
    scenario_name: str = "xiaoshan-base",
    seed: int = 1,
    workers: int = 1,
) -> dict[str, Any]:
    """Mean wait, ours vs ciw, each with its 95% CI; ``agree`` when the difference is within the
    combined half-width sqrt(h_ours^2 + h_ciw^2)."""
    jobs = [(layout, scenario_name, seed * 100_003 + d) for d in range(days)]
    ciw_means = [m for m, _ in _pool_map(ciw_day, jobs, workers)]
    ours, h1 = mean_ci(list(ours_day_means))
    theirs, h2 = mean_ci(ciw_means)
    combined = math.sqrt(h1 * h1 + h2 * h2)
    return {
        "ours": round(ours, 3), "ours_ci95": round(h1, 3),
        "ciw": round(theirs, 3), "ciw_ci95": round(h2, 3),
        "days_ours": len(ours_day_means), "days_ciw": days,
        "diff": round(ours - theirs, 3), "combined_ci95": round(combined, 3),
        "agree": abs(ours - theirs) <= combined,
    }
