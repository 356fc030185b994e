"""Hall KPIs folded from the central event stream: pure, no I/O, no clock.

The hall manager's figures (waits, service times, window utilisation, counts per queue, class,
matter, department, window and clerk) are derived from the stored events alone: they need no
storage of their own, and a restarted central rebuilds them by replaying the log. :class:`Kpis`
folds events in ``seq`` order (:meth:`Kpis.apply` / :meth:`Kpis.from_events`), per business day,
keeping the newest ``keep_days`` (default: all); a fold that starts mid-log (central starting from a day checkpoint) gets the
windows' states from :meth:`Kpis.seed_windows`. It takes :class:`~hallctl.central.model.Event`
objects or their ``to_dict()`` form, ignores event types it does not know and skips (and counts)
events about tickets it never saw issued, so it never stops the caller.

Definitions (all times in seconds, from the events' ``ts``):

* **wait** of a ticket: time spent waiting for a call. The first spell runs from issue to the
  first call, for an appointment from the later of its slot and its issue (someone who comes early
  is not waiting before the slot; docs/assignment.md). A transferred ticket waits again, from the
  transfer to its next call; ``wait_s`` is the sum of the spells, ``first_wait_s`` the first one.
  Each spell is one sample of the queue it waited in (per-queue mean/p90).
* **service**: from ``ticket.started`` at the window that completed it (or that window's call,
  if it was never started) to ``ticket.completed``.
* **total** (取号到办结 as far as the hall sees it): ``ticket.issued`` -> ``ticket.completed``.
* A window is **busy** while a ticket occupies it (called -> completed / no_show / transferred: a
  called citizen who has not arrived yet blocks the window too). Its **open time** is the time in
  state ``open``; **utilisation** = busy time while open / open time.
* A ticket issued pending its print (``confirm: "print"``) is **pending** until confirmed (then it
  waits, counted from its issue) or **voided** (its print failed or was never confirmed: counted as
  voided, never as a no-show; it has no wait). ``issued`` counts every number handed out, voided
  ones included.
* At ``day.started`` every unfinished ticket of the old day is **expired**, the old day's windows
  are counted up to its last event (the hall cannot see when they really stopped), and windows
  not closed carry their state and clerk into the new day, as in the core.
* **Per clerk** (积分制): a ticket event is credited to its ``clerk``, else to the clerk signed in
  at the window (``window.opened`` with ``clerk``, until ``window.closed``), else to the window;
  entries say which (``"keyed_by"``). 首办 (``first_handled``) goes to whoever made a ticket's
  first call.

Percentiles are nearest-rank (an observed value). :meth:`Kpis.summary` is JSON-able and holds no
personal data: no phone, only ticket ids and numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Iterable, Mapping

from hallctl.central.model import Event

#: schema version of :meth:`Kpis.summary`
SCHEMA_V = 1
#: thresholds reported as shares (the hall's targets, issue 3)
WITHIN_S = 15 * 60
OVER_S = 30 * 60
APPOINTMENT_ON_TIME_S = 5 * 60

EventLike = Event | Mapping[str, Any]


@dataclass
class TicketKpi:
    """What the hall saw of one ticket. No personal data."""

    id: str
    number: str
    queue: str  # the current (last) queue
    first_queue: str
    priority: str
    issued: float
    since: float  # start of the first waiting spell (the later of issue and slot)
    slot: float | None = None
    status: str = "waiting"  # pending | waiting | called | serving | done | no_show | void | expired
    window: str | None = None
    first_call: float | None = None
    first_window: str | None = None
    service_from: float | None = None
    completed: float | None = None
    wait_s: float = 0.0
    first_wait_s: float | None = None
    service_s: float | None = None
    transfers: int = 0
    recalls: int = 0
    waiting_since: float | None = None
    matter: str | None = None  # the current (last) matter, when the kiosk asked
    missed_slot: bool = False  # came for an appointment too late and queued as a walk-in
    department: str | None = None  # that matter's department at the time

    @property
    def total_s(self) -> float | None:
        return None if self.completed is None else self.completed - self.issued

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.id,
            "number": self.number,
            "queue": self.queue,
            "first_queue": self.first_queue,
            "priority": self.priority,
            "status": self.status,
            "first_window": self.first_window,
            "window": self.window,
            "wait_s": _r(self.wait_s) if self.first_call is not None else None,
            "first_wait_s": _r(self.first_wait_s),
            "service_s": _r(self.service_s),
            "total_s": _r(self.total_s),
            "transfers": self.transfers,
            "recalls": self.recalls,
            "matter": self.matter,
            "department": self.department,
        }


@dataclass
class WindowKpi:
    """One window's day: state, occupancy and the time accumulated up to ``last``."""

    state: str = "closed"
    ticket: str | None = None
    clerk: str | None = None  # signed in by a window.opened with a ``clerk``
    last: float | None = None
    open_s: float = 0.0
    busy_s: float = 0.0  # occupied, whatever the state
    busy_open_s: float = 0.0  # occupied while open (for utilisation)
    called: int = 0
    completed: int = 0
    no_show: int = 0
    transferred: int = 0

    def advance(self, t: float) -> None:
        """Accumulate time up to ``t`` with the current state (a clock set back adds nothing)."""
        if self.last is not None and t > self.last:
            dt = t - self.last
            if self.state == "open":
                self.open_s += dt
            if self.ticket is not None:
                self.busy_s += dt
                if self.state == "open":
                    self.busy_open_s += dt
        if self.last is None or t > self.last:
            self.last = t


@dataclass
class ClerkKpi:
    keyed_by: str  # "clerk" or "window"
    called: int = 0
    completed: int = 0
    no_show: int = 0
    transferred: int = 0
    first_handled: int = 0
    service_s: float = 0.0


@dataclass
class DayKpi:
    day: str
    start: float | None = None
    last: float | None = None
    last_ts: str = ""
    tickets: dict[str, TicketKpi] = field(default_factory=dict)
    windows: dict[str, WindowKpi] = field(default_factory=dict)
    clerks: dict[str, ClerkKpi] = field(default_factory=dict)
    #: queue -> waiting spells ended by a call (seconds)
    queue_waits: dict[str, list[float]] = field(default_factory=dict)
    closed: bool = False


class Kpis:
    """KPIs folded from the event stream, per business day.

    ``keep_days`` bounds memory on a long log: only the newest ``keep_days`` days are kept
    (``None``: all of them).
    """

    def __init__(self, *, keep_days: int | None = None) -> None:
        if keep_days is not None and keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        self._keep = keep_days
        #: the hall's service target (share, seconds): ``served_within_target`` reports against it
        self.target: tuple[float, float] = (0.8, float(WITHIN_S))
        self._days: dict[str, DayKpi] = {}
        self._current: DayKpi | None = None
        self._ts_cache: tuple[str, float] = ("", 0.0)
        self.skipped = 0  # events about tickets never seen issued
        #: window -> (state, clerk) the first day folded starts with (see :meth:`seed_windows`)
        self._seed: dict[str, tuple[str, str | None]] = {}

    def seed_windows(self, windows: Mapping[str, tuple[str, str | None]]) -> None:
        """The windows' states when the first folded day starts, for a fold that begins in the
        middle of the log (central's start from a day checkpoint): a window opened weeks ago and
        never closed is still open, and its clerk still signed in."""
        self._seed = dict(windows)

    @classmethod
    def from_events(cls, events: Iterable[EventLike], **kwargs: Any) -> "Kpis":
        kpis = cls(**kwargs)
        for event in events:
            kpis.apply(event)
        return kpis

    # -- folding ----------------------------------------------------------------------------

    def apply(self, event: EventLike) -> None:
        """Fold one event. Unknown types are ignored; inconsistent ones are skipped."""
        if isinstance(event, Event):
            etype, ts, data = event.type, event.ts, event.data
        else:
            etype, ts, data = str(event["type"]), str(event["ts"]), event.get("data") or {}
        if etype.startswith("appointment."):
            return  # a booking system's booking, made at any hour: no fact about the hall's day
        t = self._epoch(ts)
        if etype == "day.started":
            self._start_day(str(data.get("day") or ts[:10]), t, ts)
            return
        day = self._current
        if day is None:  # a log that does not begin with day.started: the ts date
            day = self._start_day(ts[:10], t, ts)
        day.last, day.last_ts = t, ts
        handler = _HANDLERS.get(etype)
        if handler is None:
            return
        if handler(self, day, t, data) is False:
            self.skipped += 1

    def _start_day(self, name: str, t: float, ts: str) -> DayKpi:
        old = self._current
        carried: dict[str, WindowKpi] = {}
        if old is None:
            carried = {w: WindowKpi(state=st, clerk=clerk, last=t)
                       for w, (st, clerk) in self._seed.items() if st != "closed"}
        else:
            end = old.last if old.last is not None else t
            for wid, w in old.windows.items():
                w.advance(end)
                if w.state != "closed":  # a closed window shows up again when it opens
                    carried[wid] = WindowKpi(state=w.state, clerk=w.clerk, last=t)
            for tk in old.tickets.values():
                if tk.status in ("pending", "waiting", "called", "serving"):
                    tk.status = "expired"
            old.closed = True
        day = self._days.get(name)
        if day is None:
            day = DayKpi(day=name, start=t, last=t, last_ts=ts, windows=carried)
            self._days[name] = day
        self._current = day
        if self._keep is not None:
            while len(self._days) > self._keep:
                del self._days[next(iter(self._days))]
        return day

    def _issued(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        tid = d.get("ticket")
        if not isinstance(tid, str) or tid in day.tickets:
            return False
        slot = self._epoch(d["slot"]) if isinstance(d.get("slot"), str) else None
        since = t if slot is None else max(t, slot)
        q = str(d.get("queue", ""))
        day.tickets[tid] = TicketKpi(
            id=tid,
            number=str(d.get("number", "")),
            queue=q,
            first_queue=q,
            priority=str(d.get("priority", "walkin")),
            issued=t,
            since=since,
            slot=slot,
            waiting_since=since,
            matter=_opt_str(d.get("matter")),
            department=_opt_str(d.get("department")),
            missed_slot="missed_slot" in d,
            status="pending" if d.get("confirm") else "waiting",
        )
        return True

    def _pending_ends(self, day: DayKpi, t: float, d: Mapping[str, Any], status: str) -> bool:
        """A pending ticket confirmed (it waits, since its issue) or voided."""
        tk = day.tickets.get(str(d.get("ticket")))
        if tk is None or tk.status != "pending":
            return False
        tk.status = status
        return True

    def _called(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        tk, w = self._ticket_window(day, t, d)
        if tk is None or w is None or tk.status != "waiting" or tk.waiting_since is None:
            return False
        spell = max(0.0, t - tk.waiting_since)
        tk.wait_s += spell
        day.queue_waits.setdefault(tk.queue, []).append(spell)
        first = tk.first_call is None
        if first:
            tk.first_call, tk.first_wait_s, tk.first_window = t, spell, d["window"]
        tk.status, tk.window, tk.waiting_since, tk.service_from = "called", d["window"], None, t
        w.ticket = tk.id
        w.called += 1
        c = self._clerk(day, w, d)
        c.called += 1
        if first:
            c.first_handled += 1
        return True

    def _recalled(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        tk = day.tickets.get(str(d.get("ticket")))
        if tk is None:
            return False
        tk.recalls += 1
        return True

    def _started(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        tk = day.tickets.get(str(d.get("ticket")))
        if tk is None or tk.status != "called":
            return False
        tk.status, tk.service_from = "serving", t
        return True

    def _finished(self, day: DayKpi, t: float, d: Mapping[str, Any], done: bool) -> bool:
        tk, w = self._ticket_window(day, t, d)
        if tk is None or w is None or tk.status not in ("called", "serving"):
            return False
        c = self._clerk(day, w, d)
        if done:
            tk.status, tk.completed = "done", t
            tk.service_s = max(0.0, t - (tk.service_from if tk.service_from is not None else t))
            w.completed += 1
            c.completed += 1
            c.service_s += tk.service_s
        else:
            tk.status = "no_show"
            w.no_show += 1
            c.no_show += 1
        if w.ticket == tk.id:
            w.ticket = None
        return True

    def _completed(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        return self._finished(day, t, d, True)

    def _no_show(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        return self._finished(day, t, d, False)

    def _transferred(self, day: DayKpi, t: float, d: Mapping[str, Any]) -> bool:
        tk, w = self._ticket_window(day, t, d)
        if tk is None or w is None or tk.status not in ("called", "serving"):
            return False
        tk.status, tk.window, tk.service_from = "waiting", None, None
        tk.queue = str(d.get("queue", tk.queue))
        tk.matter, tk.department = _opt_str(d.get("matter")), _opt_str(d.get("department"))
        tk.waiting_since = t  # the citizen waits again from now
        tk.transfers += 1
        w.transferred += 1
        self._clerk(day, w, d).transferred += 1
        if w.ticket == tk.id:
            w.ticket = None
        return True

    def _window(self, day: DayKpi, t: float, d: Mapping[str, Any], state: str) -> bool:
        wid = d.get("window")
        if not isinstance(wid, str):
            return False
        w = day.windows.setdefault(wid, WindowKpi(last=t))
        w.advance(t)
        w.state = state
        if state == "open" and isinstance(d.get("clerk"), str):
            w.clerk = d["clerk"]
        elif state == "closed":
            w.clerk = None  # the clerk signs out with the window
        return True

    def _ticket_window(
        self, day: DayKpi, t: float, d: Mapping[str, Any]
    ) -> tuple[TicketKpi | None, WindowKpi | None]:
        tk = day.tickets.get(str(d.get("ticket")))
        wid = d.get("window")
        if tk is None or not isinstance(wid, str):
            return None, None
        w = day.windows.setdefault(wid, WindowKpi(last=t))
        w.advance(t)
        return tk, w

    @staticmethod
    def _clerk(day: DayKpi, w: WindowKpi, d: Mapping[str, Any]) -> ClerkKpi:
        """The clerk credited for a ticket event: its ``clerk`` field, else the clerk signed in at
        the window, else the window itself (see the module docstring)."""
        clerk = d.get("clerk") if isinstance(d.get("clerk"), str) else w.clerk
        if clerk is not None:
            return day.clerks.setdefault(f"clerk:{clerk}", ClerkKpi("clerk"))
        return day.clerks.setdefault(f"window:{d['window']}", ClerkKpi("window"))

    def _epoch(self, ts: str) -> float:
        cached, epoch = self._ts_cache
        if ts != cached:
            when = datetime.fromisoformat(ts)
            if when.utcoffset() is None:
                raise ValueError(f"time {ts!r} has no UTC offset")
            epoch = when.timestamp()
            self._ts_cache = (ts, epoch)
        return epoch

    # -- queries ----------------------------------------------------------------------------

    @property
    def days(self) -> list[str]:
        """The business days kept, oldest first."""
        return list(self._days)

    @property
    def day(self) -> str | None:
        """The current business day."""
        return None if self._current is None else self._current.day

    def ticket(self, ticket_id: str, day: str | None = None) -> dict[str, Any] | None:
        """One ticket's KPIs (``wait_s`` is ``None`` until it is called)."""
        d = self._day(day)
        tk = None if d is None else d.tickets.get(ticket_id)
        return None if tk is None else tk.to_dict()

    def summary(self, day: str | None = None, *, with_tickets: bool = False) -> dict[str, Any]:
        """The KPIs of ``day`` (default: the current day) as a JSON-able dict.

        Times are as of the day's last event (nothing here reads a clock); open windows and tickets
        still at a window count up to then.
        """
        d = self._day(day)
        if d is None:
            return {"schema": SCHEMA_V, "day": day, "as_of": None, "tickets": {"issued": 0}}
        end = d.last if d.last is not None else 0.0
        tickets = list(d.tickets.values())
        waits = [tk.wait_s for tk in tickets if tk.first_call is not None]
        services = [tk.service_s for tk in tickets if tk.service_s is not None]
        totals = [tk.total_s for tk in tickets if tk.total_s is not None]
        out: dict[str, Any] = {
            "schema": SCHEMA_V,
            "day": d.day,
            "as_of": d.last_ts,
            "tickets": _counts(tickets),
            "wait_s": _stats(waits),
            "service_s": _stats(services),
            "total_s": _stats(totals),
            "served_within_15_min": _share(waits, lambda w: w <= WITHIN_S),
            "served_within_target": _share(waits, lambda w: w <= self.target[1]),
            "target": {"share": self.target[0], "within_s": self.target[1]},
            "waited_over_30_min": _share(waits, lambda w: w > OVER_S),
            "appointments_within_5_min": _share(
                [tk.first_wait_s for tk in tickets if tk.priority == "appointment"
                 and tk.first_wait_s is not None],
                lambda w: w <= APPOINTMENT_ON_TIME_S,
            ),
            "by_queue": self._by_queue(d, tickets),
            "by_class": {
                p: {
                    **_counts(group),
                    "wait_s": _stats([tk.wait_s for tk in group if tk.first_call is not None]),
                }
                for p, group in _group(tickets, lambda tk: tk.priority).items()
            },
            "by_matter": _by_attr(tickets, "matter"),
            "by_department": _by_attr(tickets, "department"),
            "by_window": {wid: _window_view(w, end) for wid, w in sorted(d.windows.items())},
            "by_clerk": {
                key: {
                    "keyed_by": c.keyed_by,
                    "called": c.called,
                    "completed": c.completed,
                    "no_show": c.no_show,
                    "transferred": c.transferred,
                    "first_handled": c.first_handled,
                    "mean_service_s": _r(c.service_s / c.completed) if c.completed else None,
                }
                for key, c in sorted(d.clerks.items())
            },
        }
        if self.skipped:
            out["skipped_events"] = self.skipped
        if with_tickets:
            out["ticket_list"] = [tk.to_dict() for tk in tickets]
        return out

    def _day(self, day: str | None) -> DayKpi | None:
        return self._current if day is None else self._days.get(day)

    @staticmethod
    def _by_queue(d: DayKpi, tickets: list[TicketKpi]) -> dict[str, Any]:
        queues = sorted(
            {tk.first_queue for tk in tickets} | {tk.queue for tk in tickets} | set(d.queue_waits)
        )
        out: dict[str, Any] = {}
        for q in queues:
            issued = [tk for tk in tickets if tk.first_queue == q]
            ended = [tk for tk in tickets if tk.queue == q]
            out[q] = {
                "issued": len(issued),
                "transferred_in": sum(1 for tk in ended if tk.first_queue != q),
                "transferred_out": sum(1 for tk in issued if tk.queue != q),
                "completed": sum(1 for tk in ended if tk.status == "done"),
                "no_show": sum(1 for tk in ended if tk.status == "no_show"),
                "waiting": sum(1 for tk in ended if tk.status == "waiting"),
                "wait_s": _stats(d.queue_waits.get(q, [])),
                "service_s": _stats([tk.service_s for tk in ended if tk.service_s is not None]),
            }
        return out


_HANDLERS = {
    "ticket.issued": Kpis._issued,
    "ticket.confirmed": lambda self, day, t, d: self._pending_ends(day, t, d, "waiting"),
    "ticket.voided": lambda self, day, t, d: self._pending_ends(day, t, d, "void"),
    "ticket.called": Kpis._called,
    "ticket.recalled": Kpis._recalled,
    "ticket.started": Kpis._started,
    "ticket.completed": Kpis._completed,
    "ticket.no_show": Kpis._no_show,
    "ticket.transferred": Kpis._transferred,
    "window.opened": lambda self, day, t, d: self._window(day, t, d, "open"),
    "window.paused": lambda self, day, t, d: self._window(day, t, d, "paused"),
    "window.closed": lambda self, day, t, d: self._window(day, t, d, "closed"),
}


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _by_attr(tickets: list[TicketKpi], attr: str) -> dict[str, Any]:
    """Counts, waits and service times per matter (or department) of the tickets that name one:
    how long each 事项 really takes, for the hall manager and the matter's prior."""
    groups = _group([tk for tk in tickets if getattr(tk, attr) is not None], attrgetter(attr))
    return {
        key: {
            **_counts(group),
            "wait_s": _stats([tk.wait_s for tk in group if tk.first_call is not None]),
            "service_s": _stats([tk.service_s for tk in group if tk.service_s is not None]),
        }
        for key, group in sorted(groups.items())
    }


def _window_view(w: WindowKpi, end: float) -> dict[str, Any]:
    """A window's KPIs with its running intervals counted up to ``end`` (without folding them)."""
    probe = WindowKpi(state=w.state, ticket=w.ticket, last=w.last)
    probe.advance(end)
    open_s = w.open_s + probe.open_s
    busy_s = w.busy_s + probe.busy_s
    busy_open_s = w.busy_open_s + probe.busy_open_s
    return {
        "state": w.state,
        "open_s": _r(open_s),
        "busy_s": _r(busy_s),
        "utilisation": round(busy_open_s / open_s, 4) if open_s > 0 else None,
        "called": w.called,
        "completed": w.completed,
        "no_show": w.no_show,
        "transferred": w.transferred,
    }


def _counts(tickets: list[TicketKpi]) -> dict[str, int]:
    status = {"pending": 0, "waiting": 0, "called": 0, "serving": 0, "done": 0, "no_show": 0, "void": 0,
              "expired": 0}
    for tk in tickets:
        status[tk.status] = status.get(tk.status, 0) + 1
    return {
        "issued": len(tickets),
        "completed": status["done"],
        "no_show": status["no_show"],
        "waiting": status["waiting"],
        "at_window": status["called"] + status["serving"],
        "expired": status["expired"],
        "pending": status["pending"],
        "voided": status["void"],
        "transferred": sum(1 for tk in tickets if tk.transfers),
        "recalls": sum(tk.recalls for tk in tickets),
        "missed_slot": sum(1 for tk in tickets if tk.missed_slot),
    }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100): the smallest value with at least p% of the
    values at or below it. ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p90": None, "max": None}
    return {
        "n": len(values),
        "mean": _r(sum(values) / len(values)),
        "p90": _r(percentile(values, 90)),
        "max": _r(max(values)),
    }


def _share(values: list[float], pred: Any) -> float | None:
    return round(sum(1 for v in values if pred(v)) / len(values), 4) if values else None


def _group(items: list[TicketKpi], key: Any) -> dict[str, list[TicketKpi]]:
    out: dict[str, list[TicketKpi]] = {}
    for it in items:
        out.setdefault(key(it), []).append(it)
    return dict(sorted(out.items()))


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
