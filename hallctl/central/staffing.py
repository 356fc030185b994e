"""Staffing advice: how many windows to open, half hour by half hour (pure; no I/O, no clock).

Each half hour is treated as a stationary M/M/c queue at that half hour's forecast arrival rate
(the pointwise-stationary approximation: fine when the load changes slowly against the service
time; it lags a steep morning ramp by about one service time). Rates are per second and times in
seconds throughout, unless a name says otherwise (``arrivals_per_hour``, ``*_min``).

* :func:`erlang_c` - the probability that an arrival waits, P(W > 0), for ``c`` servers and
  offered load ``a = λ/μ``, through the Erlang B recursion ``B(k) = a·B(k-1) / (k + a·B(k-1))``,
  which never forms ``a^c`` or ``c!`` and so stays exact for hundreds of servers;
  ``C = c·B / (c - a·(1 - B))``.
* :func:`mean_wait` = ``C / (cμ - λ)``; :func:`service_level` = P(W <= t) = ``1 - C·e^{-(cμ-λ)t}``.
* :func:`windows_needed` - the exact answer: the smallest ``c`` meeting the target(s).
* :func:`square_root_rule` - ``c = ceil(R + β√R)``, ``R = λ/μ``. In the Halfin-Whitt (QED)
  regime, with ``c = R + β√R``, P(wait) -> ``α(β) = [1 + β·Φ(β)/φ(β)]^-1``
  (:func:`halfin_whitt_delay`) and ``cμ - λ = β√R·μ``, so the service level is about
  ``1 - α(β)·e^{-β√R·μt}``; :func:`beta_for` solves that for the smallest β meeting the target.
  Checked on a grid (tests/test_staffing.py: 80-90% within 5-15 min, mean-wait targets, service
  times 5-20 min, R from 0.1 to 100): the rule with that β is never above the exact answer and at
  most one window below it (exact <= rule + 1; equal in 85-99% of cases), because the
  continuous QED formula slightly overstates the service level of small, discrete halls. The
  exact search is what :func:`advise` uses; the rule is for explaining and sanity-checking it.
* :func:`forecast_from_history` - mean arrivals per half hour from past days' ``ticket.issued``.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any, Iterable, Mapping, Sequence

from hallctl.central.model import Event

#: the hall's default target: 80% of citizens called within 15 minutes
DEFAULT_TARGET_SL: tuple[float, float] = (0.8, 900.0)
#: half an hour
SLOT_S = 1800
#: windows_needed gives up beyond this many (a sign of a bad input, not of a real hall)
MAX_WINDOWS = 10_000


def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability for ``c`` servers and offered load ``a`` (iterative)."""
    _check_c(c)
    if a < 0 or not math.isfinite(a):
        raise ValueError(f"offered load must be a finite number >= 0, not {a!r}")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """P(an arrival waits) in M/M/c with offered load ``a`` = λ/μ; 1.0 when ``a >= c``."""
    _check_c(c)
    if a <= 0:
        return 0.0
    if c == 0 or a >= c:
        return 1.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def mean_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue (seconds when the rates are per second); ``inf`` if ``cμ <= λ``."""
    _check_rates(lam, mu)
    if lam == 0:
        return 0.0
    if c * mu <= lam:
        return math.inf
    return erlang_c(c, lam / mu) / (c * mu - lam)


def service_level(c: int, lam: float, mu: float, t: float) -> float:
    """P(wait <= t) = 1 - C·e^{-(cμ-λ)t}; 0.0 if the queue is unstable."""
    _check_rates(lam, mu)
    if t < 0:
        raise ValueError("t must be >= 0")
    if lam == 0:
        return 1.0
    if c * mu <= lam:
        return 0.0
    return 1.0 - erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t)


def _meets(
    c: int, lam: float, mu: float, target_wait_s: float | None, target_sl: tuple[float, float] | None
) -> bool:
    if target_wait_s is not None and mean_wait(c, lam, mu) > target_wait_s:
        return False
    if target_sl is not None and service_level(c, lam, mu, target_sl[1]) < target_sl[0]:
        return False
    return True


def windows_needed(
    lam: float,
    mu: float,
    *,
    target_wait_s: float | None = None,
    target_sl: tuple[float, float] | None = DEFAULT_TARGET_SL,
) -> int:
    """The smallest number of windows meeting every target given: mean wait at most
    ``target_wait_s`` and/or P(wait <= ``target_sl[1]``) at least ``target_sl[0]``.
    0 when nothing arrives; with no target at all, the smallest stable ``c``."""
    _check_rates(lam, mu)
    _check_targets(target_wait_s, target_sl)
    if lam == 0:
        return 0
    c = math.floor(lam / mu) + 1  # the first stable c
    while not _meets(c, lam, mu, target_wait_s, target_sl):
        c += 1
        if c > MAX_WINDOWS:
            raise ValueError("no staffing up to MAX_WINDOWS meets the target")
    return c


# -- square-root staffing (QED approximation) ---------------------------------------------------


def _phi(x: float) -> float:
    return math.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi)


def _Phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def halfin_whitt_delay(beta: float) -> float:
    """α(β) = [1 + β·Φ(β)/φ(β)]^-1: the QED limit of P(wait) with ``c = R + β√R``."""
    if beta <= 0:
        return 1.0
    return 1.0 / (1.0 + beta * _Phi(beta) / _phi(beta))


def beta_for(
    lam: float,
    mu: float,
    *,
    target_wait_s: float | None = None,
    target_sl: tuple[float, float] | None = DEFAULT_TARGET_SL,
) -> float:
    """The smallest β >= 0 whose QED approximations meet the target(s): service level
    ``1 - α(β)·e^{-β√R·μt} >= sl`` and/or mean wait ``α(β) / (β√R·μ) <= target_wait_s``.
    Depends on R = λ/μ because the target time ``t`` is absolute."""
    _check_rates(lam, mu)
    _check_targets(target_wait_s, target_sl)
    r = lam / mu
    if r == 0:
        return 0.0
    root = math.sqrt(r)

    def ok(beta: float) -> bool:
        if beta <= 0:
            return target_wait_s is None and target_sl is None
        alpha = halfin_whitt_delay(beta)
        if target_sl is not None and 1.0 - alpha * math.exp(-beta * root * mu * target_sl[1]) < target_sl[0]:
            return False
        return target_wait_s is None or alpha / (beta * root * mu) <= target_wait_s

    lo, hi = 0.0, 1.0
    while not ok(hi):  # both approximations improve monotonically with β
        lo, hi = hi, hi * 2.0
        if hi > 1e6:
            raise ValueError("no β meets the target")
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def square_root_rule(lam: float, mu: float, beta: float) -> int:
    """``ceil(R + β√R)`` windows, R = λ/μ (square-root staffing; see :func:`beta_for`)."""
    _check_rates(lam, mu)
    if beta < 0 or not math.isfinite(beta):
        raise ValueError("beta must be a finite number >= 0")
    r = lam / mu
    # the tiny tolerance keeps an exact integer (R = 4, β = 0) from rounding up to 5
    return math.ceil(r + beta * math.sqrt(r) - 1e-9)


# -- advice per half hour -----------------------------------------------------------------------


def advise(
    forecast: Sequence[tuple[Any, float]],
    mean_service_s: float,
    *,
    target_sl: tuple[float, float] | None = DEFAULT_TARGET_SL,
    target_wait_s: float | None = None,
    min_windows: int = 1,
    max_windows: int | None = None,
    slot_s: int = SLOT_S,
) -> list[dict[str, Any]]:
    """Windows to open for each forecast slot, as JSON-able dicts.

    ``forecast``: ``(slot_start, arrivals_per_hour)`` pairs; ``slot_start`` is ``"HH:MM"``, an ISO
    8601 time or datetime string, a :class:`~datetime.time` or a :class:`~datetime.datetime`.
    Each result: ``from``/``to`` (strings in the same form as given), ``windows`` (clamped to
    ``min_windows..max_windows``), ``needed`` (the exact answer before clamping; more than
    ``windows`` means the hall cannot meet the target), ``offered_load`` (R, busy windows on
    average), ``expected_wait_min`` (``None`` if the queue would grow without bound) and
    ``service_level`` (share called within ``target_sl[1]``, or within 15 min if no SL target).
    """
    if not (isinstance(mean_service_s, (int, float)) and mean_service_s > 0):
        raise ValueError("mean_service_s must be > 0")
    mu = 1.0 / float(mean_service_s)
    t = target_sl[1] if target_sl is not None else DEFAULT_TARGET_SL[1]
    out: list[dict[str, Any]] = []
    for start, per_hour in forecast:
        lam = float(per_hour) / 3600.0
        needed = windows_needed(lam, mu, target_wait_s=target_wait_s, target_sl=target_sl)
        c = max(needed, min_windows)
        if max_windows is not None:
            c = min(c, max_windows)
        w = mean_wait(c, lam, mu)
        frm, to = _slot_bounds(start, slot_s)
        out.append(
            {
                "from": frm,
                "to": to,
                "windows": c,
                "needed": needed,
                "offered_load": round(lam / mu, 3),
                "expected_wait_min": None if math.isinf(w) else round(w / 60.0, 1),
                "service_level": round(service_level(c, lam, mu, t), 4),
            }
        )
    return out


def _slot_bounds(start: Any, slot_s: int) -> tuple[str, str]:
    step = timedelta(seconds=slot_s)
    if isinstance(start, datetime):
        return start.isoformat(), (start + step).isoformat()
    if isinstance(start, time):
        return _hhmm(start), _hhmm((datetime.combine(datetime(2000, 1, 1), start) + step).time())
    if isinstance(start, str):
        if "T" in start or len(start) > 8 and start[4] == "-":
            when = datetime.fromisoformat(start)
            return when.isoformat(), (when + step).isoformat()
        tm = time.fromisoformat(start)
        short = len(start) <= 5
        end = (datetime.combine(datetime(2000, 1, 1), tm) + step).time()
        return (_hhmm(tm), _hhmm(end)) if short else (tm.isoformat(), end.isoformat())
    raise ValueError(f"slot start {start!r}: expected 'HH:MM', ISO 8601, time or datetime")


def _hhmm(tm: time) -> str:
    return f"{tm.hour:02d}:{tm.minute:02d}"


# -- forecast ---------------------------------------------------------------------------------


def forecast_from_history(
    events_by_day: Mapping[str, Iterable[Event | Mapping[str, Any]]],
    *,
    for_day: str | None = None,
    last_n: int | None = None,
    slot_s: int = SLOT_S,
) -> list[tuple[str, float]]:
    """Mean arrivals per hour in each slot (``"HH:MM"`` of its start, local wall-clock time of the
    events' ``ts``), counted from ``ticket.issued`` events (a transfer is not a new arrival).

    ``events_by_day`` maps a business day (YYYY-MM-DD) to its events. With ``for_day``, only the
    earlier days of the same weekday are used; ``last_n`` keeps the most recent N of the days used.
    A day given with no arrivals counts as a day with zero. Slots run from the earliest to the
    latest slot with any arrival, with zeros in between. ``[]`` when no day qualifies.
    """
    if slot_s < 60 or 86400 % slot_s:
        raise ValueError("slot_s must divide a day and be at least 60")
    if last_n is not None and last_n < 1:
        raise ValueError("last_n must be at least 1")
    days = sorted(events_by_day)
    if for_day is not None:
        target = datetime.fromisoformat(for_day).date()
        days = [
            d for d in days
            if (dd := datetime.fromisoformat(d).date()) < target and dd.weekday() == target.weekday()
        ]
    if last_n is not None:
        days = days[-last_n:]
    if not days:
        return []
    counts: dict[int, int] = {}
    for d in days:
        for event in events_by_day[d]:
            etype, ts = (
                (event.type, event.ts) if isinstance(event, Event) else (event["type"], event["ts"])
            )
            if etype != "ticket.issued":
                continue
            local = datetime.fromisoformat(ts)
            slot = (local.hour * 3600 + local.minute * 60 + local.second) // slot_s
            counts[slot] = counts.get(slot, 0) + 1
    if not counts:
        return []
    per_hour = 3600.0 / slot_s / len(days)
    return [
        (_hhmm(time(hour=s * slot_s // 3600, minute=s * slot_s % 3600 // 60)),
         counts.get(s, 0) * per_hour)
        for s in range(min(counts), max(counts) + 1)
    ]


# -- checks -----------------------------------------------------------------------------------


def _check_c(c: int) -> None:
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise ValueError(f"number of servers must be an integer >= 0, not {c!r}")


def _check_rates(lam: float, mu: float) -> None:
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"arrival rate must be a finite number >= 0, not {lam!r}")
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"service rate must be a finite number > 0, not {mu!r}")


def _check_targets(target_wait_s: float | None, target_sl: tuple[float, float] | None) -> None:
    if target_wait_s is not None and not target_wait_s > 0:
        raise ValueError("target_wait_s must be > 0")
    if target_sl is not None and not (0 < target_sl[0] < 1 and target_sl[1] >= 0):
        raise ValueError("target_sl must be (share in (0, 1), seconds >= 0)")
