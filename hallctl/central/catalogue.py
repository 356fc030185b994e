"""The hall's catalogue: what a kiosk needs to build its menu with no configuration of its own.

Retained on ``central/catalogue`` (docs/topics.md, "Catalogue"): the hall, its sections (queues),
departments and matters (事项) with their Chinese names in the config's order, the ticket classes it
offers, whether tickets are issued now and its opening hours, and per queue the people waiting and
the predicted wait (the board's figures). Pure: the caller gives the core and the time.

It changes with the hall's events (the figures), a reload (the names) and the clock (opening and
closing): :func:`next_change` says when the clock changes it next, so the publisher wakes then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hallctl.central.core import SCHEMA_V, Central


def catalogue_document(core: Central, now: datetime) -> dict[str, Any]:
    """The ``central/catalogue`` document as of ``now`` (the figures as of the last event)."""
    hall = core.hall
    hours = None if hall.hours is None else hall.hours.status(hall.local(now))
    return {
        "v": SCHEMA_V,
        "hall": {"id": hall.hall_id, "name": hall.name},
        "open": hours is None or hours["open"],
        "hours": hours,
        "classes": list(hall.classes),
        "queues": [{"id": q.id, "prefix": q.prefix, "name": q.name} for q in hall.queues.values()],
        "departments": [{"id": d.id, "name": d.name} for d in hall.departments.values()],
        "matters": [{"id": m.id, "name": m.name, "queue": m.queue, "department": m.department}
                    for m in hall.matters.values()],
        "print_confirm_s": hall.print_confirm_s,
        **core.queue_figures(),
    }


def next_change(core: Central, now: datetime) -> datetime | None:
    """The next time the clock alone changes the catalogue: the hall opening or closing (None:
    no opening hours, or none within the hours' look-ahead)."""
    hours = core.hall.hours
    if hours is None:
        return None
    local = core.hall.local(now)
    moments = [m for m in (hours.next_open(local), hours.closes_at(local)) if m is not None]
    return min(moments, default=None)
