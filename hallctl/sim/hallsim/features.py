"""What the central core on this checkout supports, found by asking it (not by version numbers).

The simulator drives whatever core is installed: with the first core (global FIFO only) it runs
FIFO; once the core grows ``HallSpec.policy``, ticket ``priority``/``slot`` and
``WindowSpec.speed``, the simulator passes them. Probing is cheap and done once per process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from hallctl.central.core import Central
from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
from hallctl.errors import HallctlError

#: every policy the issue names, in the order the benchmark reports them
POLICIES: tuple[str, ...] = ("dedicated", "fifo", "sew", "default")
#: the policy of a core without ``HallSpec.policy``: first-issued ticket first, over all queues
BUILTIN_POLICY = "fifo"


@dataclass(frozen=True)
class CoreFeatures:
    has_policy: bool  # HallSpec has a ``policy`` field
    policies: tuple[str, ...]  # policy names the core accepts (("fifo",) without the field)
    priority: bool  # ticket.issue takes ``priority``
    slot_format: str | None  # "iso" (full ISO datetime) or "hhmm" ("09:05"), None if no slot
    speed: bool  # WindowSpec has a ``speed`` field


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _tiny_hall(**extra: object) -> HallSpec:
    return HallSpec(
        hall_id="probe",
        queues={"q": QueueSpec("q", "A", "q")},
        windows={"w": WindowSpec("w", "w")},
        **extra,  # type: ignore[arg-type]
    )


def _issue_ok(data: dict[str, object]) -> bool:
    hall = _tiny_hall()
    when = datetime(2024, 1, 2, 9, 0, tzinfo=hall.zone)
    central = Central(hall, lambda: when)
    try:
        central.handle("ticket.issue", data)
    except HallctlError:
        return False
    return True


@lru_cache(maxsize=1)
def probe_core() -> CoreFeatures:
    """Ask the installed core what it can do."""
    has_policy = "policy" in _field_names(HallSpec)
    policies: tuple[str, ...] = (BUILTIN_POLICY,)
    if has_policy:
        accepted = []
        for name in POLICIES:
            try:
                _tiny_hall(policy=name)
            except (HallctlError, ValueError, TypeError):
                continue
            accepted.append(name)
        policies = tuple(accepted)
    priority = _issue_ok({"queue": "q", "priority": "green"})
    slot_format = None
    if priority:
        if _issue_ok({"queue": "q", "priority": "appointment", "slot": "2024-01-02T09:05:00+08:00"}):
            slot_format = "iso"
        elif _issue_ok({"queue": "q", "priority": "appointment", "slot": "09:05"}):
            slot_format = "hhmm"
    speed = "speed" in _field_names(WindowSpec)
    return CoreFeatures(has_policy, policies, priority, slot_format, speed)
