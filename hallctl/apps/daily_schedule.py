"""A level that changes at fixed times of day: a display's brightness (dimmer after hours), and
anything else set the same way (a speaker's volume).

A hall writes it as a list of changes, in any order::

    brightness = [{at = "08:00", level = 15}, {at = "18:00", level = 3}]

Each level holds from its time until the next change, across midnight: with the list above, 3 from
18:00 to 08:00 the next morning. Times are the node's local time of day. The functions are pure;
the app decides when to look.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, Sequence

from hallctl_drivers.schema import SchemaError

#: (time of day, level), sorted by time, times unique
Schedule = tuple[tuple[time, int], ...]

def schedule_schema(value_key: str, lo: int, hi: int, doc: str) -> dict[str, Any]:
    """The JSON Schema of one schedule option (types and ranges; :func:`parse_schedule` checks
    the rest)."""
    return {
        "type": "array", "maxItems": 48, "description": doc,
        "items": {
            "type": "object",
            "properties": {
                "at": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                       "x-pattern-hint": 'a time of day as HH:MM, e.g. "08:00"'},
                value_key: {"type": "integer", "minimum": lo, "maximum": hi},
            },
            "required": ["at", value_key],
            "additionalProperties": False,
        },
    }


def parse_schedule(raw: Sequence[Any] | None, key: str, value_key: str = "level") -> Schedule:
    """The schedule of an option already checked against :func:`schedule_schema`; a time given
    twice raises :class:`SchemaError` naming it (``brightness[2].at``)."""
    out: dict[time, int] = {}
    first: dict[time, int] = {}
    for i, entry in enumerate(raw or ()):
        hour, minute = (int(x) for x in str(entry["at"]).split(":"))
        at = time(hour, minute)
        if at in out:
            raise SchemaError(f"{key}[{i}].at", f"{entry['at']} is given twice (also {key}[{first[at]}])")
        out[at], first[at] = int(entry[value_key]), i
    return tuple(sorted(out.items()))


def level_at(schedule: Schedule, at: time) -> int | None:
    """The level in force at time of day ``at``: the latest change at or before it, else the
    day's last change (still in force since yesterday evening). None for an empty schedule."""
    if not schedule:
        return None
    level = schedule[-1][1]
    for when, value in schedule:
        if when > at:
            break
        level = value
    return level


def seconds_to_next_change(schedule: Schedule, now: datetime) -> float | None:
    """Seconds from ``now`` to the next change (tomorrow's first when today's are past); None
    for an empty schedule."""
    if not schedule:
        return None
    today = now.date()
    for when, _ in schedule:
        at = datetime.combine(today, when, now.tzinfo)
        if at > now:
            return (at - now).total_seconds()
    return (datetime.combine(today + timedelta(days=1), schedule[0][0], now.tzinfo) - now).total_seconds()
