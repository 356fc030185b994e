"""The calls waiting to be said, and whether each is still true. Pure: no I/O, no clock of its own.

A call enters with its queue event (``ticket.called``, ``ticket.recalled``; events are at least
once, so one seen before is dropped) and leaves when it is said or when it is no longer true:

* a later event says the ticket left that window's call: ``ticket.started``, ``completed``,
  ``no_show``, ``transferred``, the ticket called or recalled at another window, another ticket
  called at the same window, the window paused or closed, a new business day;
* the window's retained state says so when its turn comes: the ticket is being served already, or
  another ticket was called there after it (the state and the events travel apart, so a state that
  merely lags behind a new call never drops it);
* it is older than ``max_age_s`` when its turn comes (by the event's own time: a node that was
  away and gets the events it missed does not read out the morning's calls).

A call for a ticket that is already waiting to be said at the same window is not queued twice.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

#: events that end a ticket's call at its window
_ENDS = ("ticket.started", "ticket.completed", "ticket.no_show", "ticket.transferred")
#: how many events are remembered to drop repeats (at-least-once delivery)
SEEN = 4096


@dataclass(frozen=True)
class Call:
    seq: int
    ticket: str
    number: str
    window: str
    window_name: str | None
    at: datetime
    recalls: int = 0

    @property
    def label(self) -> str:
        """Names the announcement in logs and WAV files: A012-w5, A012-w5-r1."""
        return f"{self.number}-w{self.window}" + (f"-r{self.recalls}" if self.recalls else "")


@dataclass(frozen=True)
class Dropped:
    call: Call
    reason: str


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


class CallQueue:
    """Calls in the order central made them. ``windows``: the windows this speaker follows (None:
    all); events of the others still cancel calls (a ticket called elsewhere)."""

    def __init__(self, windows: Iterable[str] | None = None, max_age_s: float = 60.0, limit: int = 1000) -> None:
        self.windows = frozenset(windows) if windows else None
        self.max_age_s = max_age_s
        self.limit = limit
        self.pending: list[Call] = []
        self.states: dict[str, Mapping[str, Any]] = {}
        self._seen: collections.OrderedDict[tuple[Any, ...], None] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self.pending)

    def follows(self, window: str) -> bool:
        return self.windows is None or window in self.windows

    # -- what the hall says ----------------------------------------------------------------------

    def on_event(self, doc: Mapping[str, Any]) -> list[Dropped]:
        """A queue event (the whole document); returns the calls it made untrue."""
        data = doc.get("data")
        seq, type_ = doc.get("seq"), doc.get("type")
        if not isinstance(data, Mapping) or not isinstance(seq, int) or not isinstance(type_, str):
            return []
        key = (seq, type_, data.get("ticket"), data.get("window"), data.get("recalls"))
        if key in self._seen:
            return []
        self._seen[key] = None
        while len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        ticket, window = data.get("ticket"), data.get("window")
        if type_ == "day.started":
            return self._drop(lambda c: True, "a new business day started")
        if type_ in _ENDS:
            return self._drop(lambda c: c.ticket == ticket and c.seq < seq,
                              f"{type_.split('.')[1].replace('_', '-')} before its turn")
        if type_ in ("window.paused", "window.closed"):
            return self._drop(lambda c: c.window == window and c.seq < seq, f"window {type_.split('.')[1]}")
        if type_ not in ("ticket.called", "ticket.recalled"):
            return []
        dropped = self._drop(lambda c: c.seq < seq and ((c.ticket == ticket) != (c.window == window)),
                             "called again elsewhere, or the window called another ticket")
        call = _call_of(seq, data, doc.get("ts"))
        if call is None or not self.follows(call.window):
            return dropped
        if any(c.ticket == call.ticket and c.window == call.window for c in self.pending):
            return dropped  # said once, soon: a recall pressed meanwhile needs no second saying
        self.pending.append(call)
        self.pending.sort(key=lambda c: c.seq)  # a redelivered older event keeps central's order
        if len(self.pending) > self.limit:
            dropped.append(Dropped(self.pending.pop(0), f"more than {self.limit} calls waiting"))
        return dropped

    def put_back(self, call: Call) -> None:
        """A call taken but not said (the device was down): first again, in central's order."""
        bisect.insort(self.pending, call, key=lambda c: c.seq)

    def on_window_state(self, window: str, doc: Mapping[str, Any]) -> None:
        self.states[window] = doc

    # -- the next one to say -----------------------------------------------------------------------

    def take(self, now: datetime) -> tuple[Call | None, list[Dropped]]:
        """The next call that is still true at ``now`` (an aware time), and those dropped on the way."""
        dropped: list[Dropped] = []
        while self.pending:
            call = self.pending.pop(0)
            reason = self.untrue(call, now)
            if reason is None:
                return call, dropped
            dropped.append(Dropped(call, reason))
        return None, dropped

    def untrue(self, call: Call, now: datetime) -> str | None:
        """Why ``call`` should not be said at ``now``, or None."""
        age = (now - call.at).total_seconds()
        if age > self.max_age_s:
            return f"{age:.0f} s old, over max_age_s {self.max_age_s:g}"
        ticket = (self.states.get(call.window) or {}).get("ticket")
        if not isinstance(ticket, Mapping):
            return None  # free, or a state from before the call: the events say when it ends
        if ticket.get("number") == call.number:
            return "already being served" if ticket.get("status") == "serving" else None
        called_at = parse_time(ticket.get("called_at"))
        if called_at is not None and called_at > call.at:
            return f"window {call.window} has called {ticket.get('number')} since"
        return None

    def _drop(self, which: Any, reason: str) -> list[Dropped]:
        gone = [c for c in self.pending if which(c)]
        if gone:
            self.pending = [c for c in self.pending if not which(c)]
        return [Dropped(c, reason) for c in gone]


def _call_of(seq: int, data: Mapping[str, Any], ts: Any) -> Call | None:
    number, window, ticket = data.get("number"), data.get("window"), data.get("ticket")
    at = parse_time(ts)
    if not (isinstance(number, str) and number and isinstance(window, str) and window
            and isinstance(ticket, str) and at is not None):
        return None
    name = data.get("window_name")
    recalls = data.get("recalls")
    return Call(seq, ticket, number, window, name if isinstance(name, str) and name else None, at,
                recalls if isinstance(recalls, int) and not isinstance(recalls, bool) else 0)
