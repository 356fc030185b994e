"""The hall's opening hours: periods of the day (a lunch break between them), working weekdays,
and the calendar's exceptions (China's public holidays close the hall; a 调休 Saturday opens it).

Pure and clock-free: every question takes a hall-local, timezone-aware datetime. Central refuses
to issue tickets outside these hours (error ``hall_closed`` with when it opens next); the windows
keep working, so everyone already waiting at 12:00 is still served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable

from hallctl.errors import ConfigError

#: "08:30-12:00"
PERIOD_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
#: how far ahead :meth:`OpeningHours.next_open` looks (covers the Spring Festival week)
LOOKAHEAD_DAYS = 31


@dataclass(frozen=True)
class OpeningHours:
    """``periods``: (start, end) local times, sorted, not overlapping, end exclusive.
    ``weekdays``: ISO weekdays (1 = Monday) the hall opens. ``closed_dates`` and ``open_dates``
    override the weekdays for single dates (a holiday; a make-up working day)."""

    periods: tuple[tuple[time, time], ...]
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5, 6, 7})
    closed_dates: frozenset[date] = frozenset()
    open_dates: frozenset[date] = frozenset()

    @classmethod
    def parse(
        cls,
        periods: Iterable[str],
        weekdays: Iterable[int] = (1, 2, 3, 4, 5, 6, 7),
        closed_dates: Iterable[Any] = (),
        open_dates: Iterable[Any] = (),
    ) -> "OpeningHours":
        """From config values; every problem is a ConfigError naming the key. Periods that touch
        ("08:00-12:00", "12:00-13:00") are one period; dates may be "YYYY-MM-DD" or TOML dates."""
        parsed: list[tuple[time, time]] = []
        for i, text in enumerate(periods):
            m = PERIOD_RE.match(text) if isinstance(text, str) else None
            if m is None:
                raise ConfigError(f'{text!r} is not a period "HH:MM-HH:MM"', key=f"hours[{i}]")
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            if h2 == 24 and m2 != 0:
                raise ConfigError(f"{text!r}: 24:00 is the latest end", key=f"hours[{i}]")
            start = time(h1, m1)
            end = time.max if h2 == 24 else time(h2, m2)
            if end <= start:
                raise ConfigError(f"{text!r} ends before it starts", key=f"hours[{i}]")
            parsed.append((start, end))
        if not parsed:
            raise ConfigError("at least one period is needed", key="hours")
        parsed.sort()
        merged = [parsed[0]]
        for start, end in parsed[1:]:
            if start < merged[-1][1]:
                raise ConfigError("periods overlap", key="hours")
            if start == merged[-1][1]:  # touching: open straight through
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        days = list(weekdays)
        if not days or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days):
            raise ConfigError("must list ISO weekdays 1 (Monday) .. 7 (Sunday)", key="weekdays")
        closed, opened = _dates(closed_dates, "closed_dates"), _dates(open_dates, "open_dates")
        both = sorted(closed & opened)
        if both:
            raise ConfigError(f"{both[0].isoformat()} is also in closed_dates", key="open_dates")
        return cls(tuple(merged), frozenset(days), closed, opened)

    def works_on(self, day: date) -> bool:
        """Whether the hall opens at all on ``day``."""
        if day in self.closed_dates:
            return False
        return day in self.open_dates or day.isoweekday() in self.weekdays

    def is_open(self, local: datetime) -> bool:
        if not self.works_on(local.date()):
            return False
        now = local.timetz().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.periods)

    def next_open(self, local: datetime) -> datetime | None:
        """The next start of a period after ``local`` (hall-local), None if none within
        :data:`LOOKAHEAD_DAYS` (a hall closed for a month: say nothing rather than guess)."""
        now = local.timetz().replace(tzinfo=None)
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            if not self.works_on(day):
                continue
            for start, _ in self.periods:
                if offset > 0 or start > now:
                    # from the wall-clock time: a DST change in between keeps "08:30"
                    return _at(day, start, local.tzinfo)
        return None

    def closes_at(self, local: datetime) -> datetime | None:
        """When the current period ends, None when the hall is closed now."""
        if not self.works_on(local.date()):
            return None
        now = local.timetz().replace(tzinfo=None)
        for start, end in self.periods:
            if start <= now < end:
                if end == time.max:
                    return _at(local.date() + timedelta(days=1), time(0), local.tzinfo)
                return _at(local.date(), end, local.tzinfo, fold=local.fold)
        return None

    def status(self, local: datetime) -> dict[str, Any]:
        """Whether tickets are issued at ``local`` and the periods, when the current one closes
        and the next opens (``queue.status``'s and the catalogue's ``hours``)."""
        opens, closes = self.next_open(local), self.closes_at(local)
        return {
            "open": closes is not None,
            "periods": self.describe(),
            "closes_at": closes.isoformat(timespec="seconds") if closes else None,
            "opens_at": opens.isoformat(timespec="seconds") if opens else None,
        }

    def describe(self) -> list[str]:
        """The periods as configured, "08:30-12:00" (for status documents)."""
        return [f"{s:%H:%M}-{'24:00' if e == time.max else format(e, '%H:%M')}" for s, e in self.periods]


def _at(day: date, wall: time, zone: tzinfo | None, *, fold: int = 0) -> datetime:
    """``wall`` on ``day`` in ``zone`` as a real instant: a wall time that a DST change skips
    becomes the first time after the gap (normalised through UTC)."""
    naive = datetime.combine(day, wall).replace(fold=fold)
    if zone is None:
        return naive
    return naive.replace(tzinfo=zone).astimezone(timezone.utc).astimezone(zone)


def _dates(values: Iterable[Any], key: str) -> frozenset[date]:
    out = set()
    for i, value in enumerate(values):
        if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date
            out.add(value)
            continue
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError
            out.add(date.fromisoformat(value))
        except ValueError:
            raise ConfigError(f"{value!r} is not a date YYYY-MM-DD", key=f"{key}[{i}]") from None
    return frozenset(out)
