"""Wait statistics accumulated over replicated days, mergeable across worker processes.

Waits are ``called - issued`` (minutes) of the tickets that were served; no-shows are counted
apart. Percentiles come from a histogram with 3-second bins (exact enough for p90/p95 in minutes,
and small to ship between processes). ``utilisation`` is the time windows spent on citizens over
(windows x opening minutes): serving past a period's close counts as busy time, so an overloaded
layout can exceed what its opening hours alone suggest.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from hallctl.sim.hallsim.engine import DayResult

BIN_MIN = 0.05  # 3 s
CLASSES = ("walkin", "appointment", "green")


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student t quantile (table for small df, normal beyond)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
             9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042,
             40: 2.021, 60: 2.000, 120: 1.980}
    if df <= 0:
        return math.inf
    for k in sorted(table):
        if df <= k:
            return table[k]
    return 1.960


def mean_ci(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% confidence interval) of independent replications."""
    if not values:
        return math.nan, math.nan
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.inf
    return m, t_quantile_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


class WaitStats:
    """Everything the benchmark reports for one (layout, policy, mix), over many days."""

    def __init__(self) -> None:
        self.days = 0
        self.n = 0
        self.sum = 0.0
        self.max = 0.0
        self.hist: Counter[int] = Counter()
        self.within_15 = 0
        self.over_30 = 0
        self.no_shows = 0
        self.cls_sum: Counter[str] = Counter()
        self.cls_n: Counter[str] = Counter()
        self.blk_sum: Counter[str] = Counter()
        self.blk_n: Counter[str] = Counter()
        self.busy = 0.0
        self.capacity = 0.0
        self.appt_n = 0
        self.appt_ok = 0
        self.pred_abs = 0.0
        self.pred_n = 0
        self.day_means: list[float] = []

    def add_day(self, day: DayResult, open_minutes: float) -> None:
        self.days += 1
        self.busy += sum(day.busy_min.values())
        self.capacity += day.windows * open_minutes
        day_sum, day_n = 0.0, 0
        for r in day.records:
            if r.no_show:
                self.no_shows += 1
                continue
            w = r.called - r.issued  # type: ignore[operator]
            day_sum += w
            day_n += 1
            self.hist[int(w / BIN_MIN)] += 1
            if w > self.max:
                self.max = w
            if w <= 15.0:
                self.within_15 += 1
            if w > 30.0:
                self.over_30 += 1
            self.cls_sum[r.cls] += w
            self.cls_n[r.cls] += 1
            self.blk_sum[r.queue] += w
            self.blk_n[r.queue] += 1
            if r.slot is not None:
                self.appt_n += 1
                if r.called <= max(r.slot, r.issued) + 5.0:  # type: ignore[operator]
                    self.appt_ok += 1
            if r.predicted_min is not None:
                self.pred_abs += abs(r.predicted_min - w)
                self.pred_n += 1
        self.n += day_n
        self.sum += day_sum
        self.day_means.append(day_sum / day_n if day_n else 0.0)

    def merge(self, other: "WaitStats") -> None:
        for name in ("days", "n", "sum", "within_15", "over_30", "no_shows", "busy", "capacity",
                     "appt_n", "appt_ok", "pred_abs", "pred_n"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max = max(self.max, other.max)
        for name in ("hist", "cls_sum", "cls_n", "blk_sum", "blk_n"):
            getattr(self, name).update(getattr(other, name))
        self.day_means.extend(other.day_means)

    def percentile(self, p: float) -> float:
        """The p-quantile (0..1) of the waits, interpolated inside its 3-second bin."""
        if self.n == 0:
            return math.nan
        target = p * self.n
        seen = 0
        for k in sorted(self.hist):
            c = self.hist[k]
            if seen + c >= target:
                return (k + (target - seen) / c) * BIN_MIN
            seen += c
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    def summary(self) -> dict[str, Any]:
        """The issue's result fields (minutes and shares, rounded for the report)."""
        m, half = mean_ci(self.day_means)
        out: dict[str, Any] = {
            "tickets": self.n + self.no_shows,
            "mean_wait_min": round(self.mean, 3),
            "mean_wait_ci95_min": round(half, 3),
            "p90_wait_min": round(self.percentile(0.90), 2),
            "p95_wait_min": round(self.percentile(0.95), 2),
            "max_wait_min": round(self.max, 2),
            "served_within_15_min": round(self.within_15 / self.n, 4) if self.n else None,
            "waited_over_30_min": round(self.over_30 / self.n, 4) if self.n else None,
            "class_mean_wait_min": {
                c: round(self.cls_sum[c] / self.cls_n[c], 3) for c in CLASSES if self.cls_n[c]
            },
            "block_mean_wait_min": {
                b: round(self.blk_sum[b] / self.blk_n[b], 3) for b in self.blk_n
            },
            "utilisation": round(self.busy / self.capacity, 4) if self.capacity else None,
            "appointments_within_5_min": round(self.appt_ok / self.appt_n, 4) if self.appt_n else None,
            "prediction_mae_min": round(self.pred_abs / self.pred_n, 3) if self.pred_n else None,
        }
        if self.no_shows:
            out["no_show_share"] = round(self.no_shows / (self.n + self.no_shows), 4)
        return out
