"""What the benchmarks share: percentiles, rounding, a daemon run as a task. Imported by the
scripts in this folder (run as ``python bench/<script>.py``, which puts this folder on the path)."""

from __future__ import annotations

import asyncio
from typing import Any


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def r(x: float, nd: int = 1) -> float:
    return round(x, nd)


class Running:
    """A daemon (central, a node) running as a task of this loop; ``stop()`` ends it cleanly."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.task = asyncio.create_task(daemon.run())

    async def stop(self) -> None:
        try:
            await self.daemon.stop()
        finally:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
