"""The hall layouts of issue 3 as :class:`HallSpec` builders (one queue per block).

* ``ded29``: the old hall, 29 windows in department blocks (15/3/3/1/4/2/1);
* ``u24``: 24 universal windows (综合受理);
* ``1x``: "1+X", 21 universal windows + 3 police (公安) windows;
* ``prim24``: 24 windows each serving only its primary block (14/2/2/1/3/1/1);
* ``chain2`` / ``chain3``: prim24's windows each also serving the next 1 or 2 blocks of the
  chain 市场监管 → 商务 → 公安 → 卫计 → 投资项目 → 城管运管 → 社会事务 → 市场监管.

A window's ``queues`` lists its primary block first (the core reads the order as preference).
"""

from __future__ import annotations

from typing import Callable, Mapping

from hallctl.central.hours import OpeningHours
from hallctl.central.model import ALL_QUEUES, HallSpec, QueueSpec, WindowSpec
from hallctl.sim.hallsim.scenario import DAY_RESET_HOUR, Scenario

LAYOUTS: tuple[str, ...] = ("ded29", "u24", "1x", "prim24", "chain2", "chain3")
#: layouts an M/G/c network of ciw can express too
CIW_LAYOUTS: tuple[str, ...] = ("ded29", "u24", "1x")

DED29 = {"scjg": 15, "sw": 3, "ga": 3, "wj": 1, "tzxm": 4, "cgyg": 2, "shsw": 1}
PRIM24 = {"scjg": 14, "sw": 2, "ga": 2, "wj": 1, "tzxm": 3, "cgyg": 1, "shsw": 1}
#: the chain order is the scenario's block order
CHAIN = ("scjg", "sw", "ga", "wj", "tzxm", "cgyg", "shsw")


def window_skills(layout: str) -> list[tuple[str, ...]]:
    """The ``queues`` of every window of ``layout``, in window order."""
    if layout == "u24":
        return [(ALL_QUEUES,)] * 24
    if layout == "1x":
        return [(ALL_QUEUES,)] * 21 + [("ga",)] * 3
    if layout == "ded29":
        return [(q,) for q, n in DED29.items() for _ in range(n)]
    extra = {"prim24": 0, "chain2": 1, "chain3": 2}.get(layout)
    if extra is None:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    out = []
    for q, n in PRIM24.items():
        i = CHAIN.index(q)
        skills = tuple(CHAIN[(i + k) % len(CHAIN)] for k in range(extra + 1))
        out.extend([skills] * n)
    return out


def build_hall(
    layout: str,
    scenario: Scenario,
    *,
    policy: str | None = None,
    speeds: Callable[[int, tuple[str, ...]], Mapping[str, float]] | None = None,
) -> HallSpec:
    """The HallSpec of ``layout`` under ``policy`` (None: the core's default policy).

    ``speeds(index, queues)`` may give a window's ``speed`` table (queue -> factor). The hall's
    opening hours are the scenario's periods, so the core refuses tickets outside them as it
    would a kiosk's.
    """
    queues = {b.id: QueueSpec(b.id, b.prefix, b.name) for b in scenario.blocks}
    windows = {}
    for i, skills in enumerate(window_skills(layout), start=1):
        wid = f"w{i:02d}"
        speed = {} if speeds is None else speeds(i, skills)
        windows[wid] = WindowSpec(wid, f"{i}号窗口", skills, speed=speed)
    extra: dict[str, str] = {} if policy is None else {"policy": policy}
    hours = OpeningHours.parse([f"{_hhmm(a)}-{_hhmm(b)}" for a, b in scenario.periods])
    return HallSpec(hall_id=f"sim-{layout}", queues=queues, windows=windows, hours=hours,
                    day_reset_hour=DAY_RESET_HOUR, **extra)  # type: ignore[arg-type]


def _hhmm(minutes: float) -> str:
    return f"{int(minutes) // 60:02d}:{int(minutes) % 60:02d}"
