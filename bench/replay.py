"""Benchmark: how long central takes to start, and to reload its config, as its event log grows.

Central is event-sourced: a start replays the whole stored log into the core, the KPIs and the
staffing history, and a reload (SIGHUP) replays it into a candidate core under the new config.
Both block central's event loop, so the figure that matters is how long they take with a year's
log.

What it does, with the real parts:

* simulates ``--days`` consecutive business days of scenario xiaoshan-base on u24 / default
  policy (the hall simulator driving the real core; about 680 tickets a day), and stitches each
  day's events into one log with contiguous seqs, stored in a real SQLite store
  (:class:`hallctl.central.store.Store`) the way central stores them;
  with the day checkpoints a live central writes (one core folds the stitched log);
* for logs of 1 day (the baseline), and of each size in ``--sizes`` days: builds a
  :class:`~hallctl.central.service.CentralService` on a copy of that store (the start-up: the
  core from the newest checkpoint plus today's events, the KPIs and staffing history from their
  last 35 days; it does not connect anywhere), then times ``check_reload`` with a changed config
  (a new window and the fifo policy). Median of ``--runs``. ``--no-checkpoints`` stores none:
  the whole log replays, as before checkpoints existed (the comparison).

Human-readable lines first; the LAST line of stdout is one JSON object:
``{"events_per_day", "sizes": [{"days", "events", "start_s", "reload_s", "start_vs_1_day"}],
"checkpoints"}``.

    .venv/bin/python bench/replay.py [--days 250] [--sizes 30,120,250] [--runs 3] [--no-checkpoints]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from hallctl.central.core import Central
from hallctl.central.model import Event, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.central.store import Store
from hallctl.sim.hallsim.engine import HallDay, SimOptions
from hallctl.sim.hallsim.layouts import build_hall
from hallctl.sim.hallsim.scenario import XIAOSHAN_BASE as XS, generate_day

FIRST_DAY = date(2025, 1, 6)  # a Monday


def simulate_log(days: int, store_dir: Path, sizes: list[int], *, checkpoints: bool = True) -> dict[int, Path]:
    """Store files with the first n days of one continuous log, for each n in ``sizes``."""
    hall = build_hall("u24", XS, policy="default")
    wanted = sorted(set(sizes))
    out: dict[int, Path] = {}
    path = store_dir / "central.db"
    store = Store(str(path))
    # one core folds the stitched log, so each day's checkpoint is what a live central stores
    core = Central(hall, lambda: datetime.now(hall.zone))
    seq = 0
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        sim = HallDay(hall, generate_day(XS, 7, d), day=day, open_at=XS.periods[0][0], scenario=XS,
                      options=SimOptions(mix="priority"), keep_events=True)
        result = sim.run()
        events = [Event(seq + i + 1, e.type, e.ts, e.data) for i, e in enumerate(result.log)]
        seq += len(events)
        core.replay(events)
        store.commit(events, None, None, checkpoint=core.checkpoint(events) if checkpoints else None)
        if d + 1 in wanted:
            store.close()
            copy = store_dir / f"central-{d + 1}d.db"
            shutil.copy(path, copy)
            for suffix in ("-wal", "-shm"):
                if Path(str(path) + suffix).exists():
                    shutil.copy(str(path) + suffix, str(copy) + suffix)
            out[d + 1] = copy
            store = Store(str(path))
    store.close()
    return out


def measure(path: Path, runs: int) -> tuple[int, float, float]:
    hall = build_hall("u24", XS, policy="default")
    changed = dataclasses.replace(
        hall, windows={**hall.windows, "w25": WindowSpec("w25", "25号窗口")}, policy="fifo"
    )
    starts, reloads, events = [], [], 0
    with Store(str(path)) as store:  # "now" is the last simulated day, as for a live central
        last_ts = list(store.load_events(after=store.last_seq() - 1))[-1].ts
    now = datetime.fromisoformat(last_ts)
    for _ in range(runs):
        work = path.with_name(path.stem + "-run.db")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                shutil.copy(src, str(work) + suffix)
        t0 = time.perf_counter()
        svc = CentralService(hall, str(work), MqttSettings(port=1), clock=lambda: now)
        svc.open()  # what start() does, off the event loop
        starts.append(time.perf_counter() - t0)
        events = svc.core.last_seq
        t0 = time.perf_counter()
        svc.check_reload(changed)
        reloads.append(time.perf_counter() - t0)
        svc.store.close()
        svc.outbox.close()
    return events, statistics.median(starts), statistics.median(reloads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=250, help="business days to simulate (a year)")
    ap.add_argument("--sizes", default="30,120,250", help="log sizes to time, in days")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-checkpoints", action="store_true", help="store no checkpoints (whole-log replay)")
    args = ap.parse_args()
    sizes = sorted({1, *(int(s) for s in args.sizes.split(",") if s)})
    if max(sizes) > args.days:
        ap.error("--sizes must not exceed --days")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stores = simulate_log(args.days, Path(tmp), sizes, checkpoints=not args.no_checkpoints)
        print(f"simulated {args.days} days in {time.perf_counter() - t0:.1f} s", flush=True)
        rows = []
        for n in sizes:
            events, start_s, reload_s = measure(stores[n], args.runs)
            rows.append({"days": n, "events": events, "start_s": round(start_s, 3), "reload_s": round(reload_s, 3)})
            print(f"{n:4d} days {events:8d} events: start {start_s:7.3f} s, reload {reload_s:7.3f} s", flush=True)
    base = rows[0]
    for r in rows:
        r["start_vs_1_day"] = round(r["start_s"] / base["start_s"], 1)
    last = rows[-1]
    per_day = round(last["events"] / last["days"])
    print(json.dumps({
        "events_per_day": per_day,
        "sizes": rows,
        "checkpoints": not args.no_checkpoints,
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
