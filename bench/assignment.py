"""Benchmark: window assignment on the simulated Xiaoshan hall (issue 3), and the simulator's validity.

Runs ``--days`` replicated days of scenario "xiaoshan-base" for every hall layout (ded29, u24,
1x, prim24, chain2, chain3), every calling policy of the central core (``POLICY_NAMES``:
default, dedicated, fifo, sew) and both mixes (walkin; priority = 20% appointments + 5% green channel). Every combination replays
the same citizens (common random numbers), so differences come from the hall and the policy.

Then it checks the simulator itself:

* ``erlang_c``: M/M/10 at rho 0.85 (one queue, universal windows, exponential service) against
  the exact Erlang-C mean wait (``rel_err``, with the 95% CI of the simulated mean);
* ``ciw``: ded29, u24 and 1x under FIFO, walk-ins only, against the same halls in ciw; ``agree``
  when the mean waits differ by less than the combined 95% CI half-width.

``--profile`` adds a cProfile run (in this process, ``--profile-days`` days of u24) and prints
where the time goes, with the central core's functions apart.

Human-readable lines first; the LAST line of stdout is one JSON object:
``{"days", "sim_tickets_per_s", "results": [...], "pooling_gain": {"chain2", "chain3"},
"ciw": {layout: {"ours", "ciw", "agree", ...}}, "erlang_c": {"sim", "exact", "rel_err", ...},
"priority_formula": {...}, "timing": {...}, "checks": {...}}``.

* ``priority_formula``: u24 / default / priority against Cobham's non-preemptive priority formula
  (M/G/24 at the day-average load); check ``walkin_vs_priority_formula`` on the walk-in penalty
  ratio (simulated walk-in / overall mean vs the formula's walk-in / FCFS, + 0.05).

    /tmp/venv/bin/python bench/assignment.py [--days 200] [--workers 2] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import sys
import time
from typing import Any

from hallctl.central.model import POLICY_NAMES
from hallctl.sim.hallsim.crosscheck import ciw_compare, erlang_c_check, scenario_priority_formula
from hallctl.sim.hallsim.layouts import CIW_LAYOUTS, LAYOUTS
from hallctl.sim.hallsim.run import Combo, RunResult, all_combos, run_days, run_replications
from hallctl.sim.hallsim.scenario import MIXES, XIAOSHAN_BASE

SPEED_TARGET_DAYS, SPEED_TARGET_S = 2000, 120.0
PRIORITY_ABS_TOLERANCE = 0.10  # sim walk-in wait vs Cobham's stationary figure (informative only)
PRIORITY_RATIO_SLACK = 0.05  # sim walk-in/overall may exceed Cobham's walk-in/FCFS by this much


def say(line: str) -> None:
    print(line, flush=True)


def mean_of(run: RunResult, layout: str, policy: str, mix: str = "walkin") -> float | None:
    s = run.stats.get(Combo(layout, policy, mix))
    return s.mean if s else None


def pooling_gain(run: RunResult, policy: str) -> dict[str, float | None]:
    """(W_prim24 - W) / (W_prim24 - W_u24) for chain2 and chain3, walk-ins, all under ``policy``."""
    prim, full = mean_of(run, "prim24", policy), mean_of(run, "u24", policy)
    out: dict[str, float | None] = {}
    for layout in ("chain2", "chain3"):
        w = mean_of(run, layout, policy)
        ok = None not in (prim, full, w) and prim != full
        out[layout] = round((prim - w) / (prim - full), 4) if ok else None  # type: ignore[operator]
    return out


def priority_formula(results: dict[Combo, dict[str, Any]]) -> dict[str, Any] | None:
    """u24 / default / priority against Cobham's non-preemptive priority formula (M/G/24 at the
    day-average load; classes green, appointment, walk-in). The arrivals are non-stationary, so
    the absolute walk-in wait is only indicative; the check is on the walk-in penalty: simulated
    walk-in / overall mean wait at most the formula's walk-in / FCFS wait + PRIORITY_RATIO_SLACK."""
    p = results.get(Combo("u24", "default", "priority"))
    if not p or "walkin" not in p["class_mean_wait_min"] or not p["mean_wait_min"]:
        return None
    f = scenario_priority_formula(XIAOSHAN_BASE, 24)
    sim_walkin, sim_all = p["class_mean_wait_min"]["walkin"], p["mean_wait_min"]
    sim_ratio = sim_walkin / sim_all
    return {
        "formula": f,
        "sim_walkin_wait_min": sim_walkin, "sim_mean_wait_min": sim_all,
        "sim_walkin_over_mean": round(sim_ratio, 4),
        "formula_walkin_over_fcfs": f["walkin_over_fcfs"],
        "ratio_slack": PRIORITY_RATIO_SLACK,
        "abs_tolerance": PRIORITY_ABS_TOLERANCE,
        "walkin_abs_within_tolerance": sim_walkin <= f["class_wait_min"]["walkin"] * (1 + PRIORITY_ABS_TOLERANCE),
        "pass": sim_ratio <= f["walkin_over_fcfs"] + PRIORITY_RATIO_SLACK,
    }


def checks(run: RunResult, results: dict[Combo, dict[str, Any]], gain: dict[str, Any],
           ciw: dict[str, Any], erlang: dict[str, Any], hall_days_per_s: float,
           prio: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issue's "done when" figures that this benchmark can decide (None: policy missing)."""
    def r(layout: str, policy: str, mix: str = "walkin") -> dict[str, Any] | None:
        return results.get(Combo(layout, policy, mix))

    out: dict[str, Any] = {}
    u, d = r("u24", "default"), r("ded29", "dedicated")
    out["u24_default_vs_ded29_dedicated"] = None if not (u and d) else (
        u["mean_wait_min"] <= d["mean_wait_min"] and u["waited_over_30_min"] <= 0.005
        and u["max_wait_min"] <= 60.0)
    f = r("u24", "fifo")
    out["default_within_3pct_of_fifo_on_u24"] = None if not (u and f) else (
        u["mean_wait_min"] <= 1.03 * f["mean_wait_min"])
    c3 = r("chain3", "default")
    out["chain3_gain_and_balance"] = None if not c3 or gain.get("chain3") is None else (
        gain["chain3"] >= 0.85
        and max(c3["block_mean_wait_min"].values()) <= 2 * c3["mean_wait_min"])
    p = r("u24", "default", "priority")
    out["priority_green_and_appointments"] = None if not p or "green" not in p["class_mean_wait_min"] else (
        p["class_mean_wait_min"]["green"] <= 1.0 and (p["appointments_within_5_min"] or 0) >= 0.9)
    out["walkin_vs_priority_formula"] = prio["pass"] if prio else None
    mae = (u or {}).get("prediction_mae_min")
    out["prediction_mae_u24"] = None if mae is None else mae <= 5.0
    out["ciw_agree"] = all(v["agree"] for v in ciw.values()) if ciw else None
    out["erlang_c_within_3pct"] = abs(erlang["rel_err"]) <= 0.03 if erlang else None
    out["speed_2000_days_s"] = round(SPEED_TARGET_DAYS / hall_days_per_s, 1)
    out["speed_ok"] = SPEED_TARGET_DAYS / hall_days_per_s <= SPEED_TARGET_S
    return out


def profile(days: int, layout: str = "u24", top: int = 14) -> dict[str, Any]:
    """cProfile of ``days`` days of ``layout`` (default policy, walk-ins) in-process."""
    policy = "default"
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = run_days(XIAOSHAN_BASE.name, [Combo(layout, policy, "walkin")], list(range(days)), 7)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((path, line, name, nc, tt, ct))
    short = lambda p: p.split("/hallctl/")[-1] if "/hallctl/" in p else os.path.basename(p)  # noqa: E731
    say(f"profile: {days} days of {layout}/{policy}, {res.tickets} tickets, {res.commands} commands, "
        f"{wall:.2f} s under cProfile (total {total:.2f} s profiled)")
    say("  top by own time (tottime):")
    for path, line, name, nc, tt, ct in sorted(rows, key=lambda r: -r[4])[:top]:
        say(f"    {tt / total:6.1%} own {ct / total:6.1%} cum  {nc:>9} calls  {short(path)}:{line} {name}")
    core = [r for r in rows if r[0].endswith("hallctl/central/core.py") or r[0].endswith("hallctl/central/model.py")]
    say("  central core (core.py / model.py) by cumulative time:")
    for path, line, name, nc, tt, ct in sorted(core, key=lambda r: -r[5])[:top]:
        say(f"    {ct / total:6.1%} cum {tt / total:6.1%} own  {nc:>9} calls  {short(path)}:{line} {name}")
    core_own = sum(r[4] for r in core)
    say(f"  own time inside core.py/model.py: {core_own / total:.1%} of the run")
    return {
        "layout": layout, "policy": policy, "days": days, "tickets": res.tickets,
        "core_own_share": round(core_own / total, 3),
        "core_cum": {f"{short(p)}:{n}": round(ct / total, 3)
                     for p, _l, n, _nc, _tt, ct in sorted(core, key=lambda r: -r[5])[:top]},
        "core_own": {f"{short(p)}:{n}": round(tt / total, 3)
                     for p, _l, n, _nc, tt, _ct in sorted(core, key=lambda r: -r[4])[:top]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=200, help="replicated days per combination")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--policies", default="", help=f"comma list; default: all ({','.join(POLICY_NAMES)})")
    ap.add_argument("--mixes", default=",".join(MIXES))
    ap.add_argument("--ciw-days", type=int, default=None, help="ciw days per layout (default --days)")
    ap.add_argument("--no-ciw", action="store_true")
    ap.add_argument("--erlang-reps", type=int, default=300, help="M/M/10 replications (~11,500 tickets each)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-days", type=int, default=20)
    a = ap.parse_args(argv)

    layouts = [x for x in a.layouts.split(",") if x]
    mixes = [x for x in a.mixes.split(",") if x]
    wanted = [x for x in a.policies.split(",") if x] or None
    unknown = [p for p in wanted or () if p not in POLICY_NAMES]
    if unknown:
        ap.error(f"unknown policies {unknown}; the core has {', '.join(POLICY_NAMES)}")
    combos = all_combos(layouts, wanted, mixes)
    do_ciw = not a.no_ciw
    if do_ciw:  # the ciw comparison needs FIFO walk-ins on its layouts
        for layout in CIW_LAYOUTS:
            c = Combo(layout, "fifo", "walkin")
            if c not in combos:
                combos.append(c)
    say(f"running {len(combos)} combinations x {a.days} days on {a.workers} worker(s) ...")
    run = run_replications(combos, a.days, seed=a.seed, workers=a.workers)
    tickets_per_s = run.tickets / run.wall_seconds
    hall_days_per_s = run.hall_days / run.wall_seconds
    say(f"simulated {run.hall_days} hall-days, {run.tickets} tickets, {run.commands} core commands "
        f"in {run.wall_seconds:.1f} s: {tickets_per_s:,.0f} tickets/s, {hall_days_per_s:.1f} hall-days/s "
        f"({run.sim_seconds / run.hall_days * 1000:.1f} ms CPU per hall-day)")

    results: dict[Combo, dict[str, Any]] = {}
    say(f"{'layout':8} {'policy':10} {'mix':9} {'mean':>6} {'±95%':>5} {'p90':>6} {'p95':>6} {'max':>6} "
        f"{'≤15':>6} {'>30':>6} {'util':>5}  classes")
    for c in sorted(run.stats):
        s = run.stats[c].summary()
        results[c] = s
        say(f"{c.layout:8} {c.policy:10} {c.mix:9} {s['mean_wait_min']:6.2f} {s['mean_wait_ci95_min']:5.2f} "
            f"{s['p90_wait_min']:6.1f} {s['p95_wait_min']:6.1f} {s['max_wait_min']:6.1f} "
            f"{s['served_within_15_min']:6.3f} {s['waited_over_30_min']:6.4f} {s['utilisation']:5.3f}  "
            f"{s['class_mean_wait_min']}")

    gain_policy = "default"
    gain = pooling_gain(run, gain_policy)
    say(f"pooling gain under {gain_policy}: {gain}")

    ciw: dict[str, Any] = {}
    if do_ciw:
        if importlib.util.find_spec("ciw") is None:
            say("NOTE: ciw is not installed; no cross-check (pip install ciw==3.2.7)")
        else:
            ciw_days = a.ciw_days or a.days
            for layout in CIW_LAYOUTS:
                ours = run.stats[Combo(layout, "fifo", "walkin")].day_means
                ciw[layout] = ciw_compare(layout, ours, days=ciw_days, seed=a.seed, workers=a.workers)
                v = ciw[layout]
                say(f"ciw {layout:6}: ours {v['ours']:.3f} ± {v['ours_ci95']:.3f}, ciw {v['ciw']:.3f} ± "
                    f"{v['ciw_ci95']:.3f} -> {'agree' if v['agree'] else 'DISAGREE'}")

    erlang: dict[str, Any] = {}
    if a.erlang_reps > 0:
        t0 = time.perf_counter()
        erlang = erlang_c_check(reps=a.erlang_reps, seed=a.seed, workers=a.workers)
        erlang["seconds"] = round(time.perf_counter() - t0, 1)
        say(f"Erlang C M/M/{erlang['c']} rho {erlang['rho']}: sim {erlang['sim']:.4f} ± {erlang['ci95']:.4f} min, "
            f"exact {erlang['exact']:.4f} min, rel_err {erlang['rel_err']:+.2%} ({erlang['reps']} reps, "
            f"{erlang['seconds']} s)")

    prof = profile(a.profile_days) if a.profile else None
    prio = priority_formula(results)
    if prio:
        f = prio["formula"]
        say(f"priority formula (Cobham, M/G/{f['c']} rho {f['rho']}, cv2 {f['cv2']}): walk-in "
            f"{f['class_wait_min']['walkin']:.3f} min, FCFS {f['fcfs_wait_min']:.3f} min, ratio "
            f"{f['walkin_over_fcfs']:.3f}; sim walk-in {prio['sim_walkin_wait_min']:.3f} / mean "
            f"{prio['sim_mean_wait_min']:.3f} = {prio['sim_walkin_over_mean']:.3f}")
    chk = checks(run, results, gain, ciw, erlang, hall_days_per_s, prio)
    for name, ok in chk.items():
        say(f"check {name}: {ok}")

    doc: dict[str, Any] = {
        "days": a.days,
        "sim_tickets_per_s": round(tickets_per_s),
        "results": [{"layout": c.layout, "policy": c.policy, "mix": c.mix, **results[c]} for c in sorted(results)],
        "pooling_gain": gain,
        "pooling_gain_policy": gain_policy,
        "ciw": ciw,
        "erlang_c": erlang,
        "priority_formula": prio,
        "timing": {
            "workers": run.workers, "wall_s": round(run.wall_seconds, 2), "hall_days": run.hall_days,
            "hall_days_per_s": round(hall_days_per_s, 2), "tickets": run.tickets,
            "commands": run.commands,
        },
        "checks": chk,
    }
    if prof:
        doc["profile"] = prof
    print(json.dumps(doc, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
