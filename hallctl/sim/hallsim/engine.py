"""A small discrete-event loop that drives the real central core on simulated time.

One :class:`HallDay` is one business day of one hall: a heap of ``(time, seq, kind, payload)``
events, a simulated clock injected into :class:`hallctl.central.core.Central`, and clerks who
behave like real ones:

* every window opens at the first opening time (``window.open``);
* a citizen arrives and takes a ticket (``ticket.issue``, with ``priority`` and, for an
  appointment, its ``slot`` as an ISO datetime); the free windows that may serve its queue under the core's policy, longest
  idle first, press "next" (``window.call_next``) until the new ticket has been called (a policy
  may hand them another ticket, or none);
* a called citizen who is present is served at once (``window.start`` if asked for) for the
  ticket's service time, divided by the window's speed for that queue (``WindowSpec.speed_for``),
  then ``window.complete``; the window presses "next" again, or stays idle;
* an absent citizen (no-show, or walked out after running out of patience) is called, recalled
  ``recalls`` times ``call_wait_min`` apart, then marked ``window.no_show``;
* a free window whose "next" gave nothing while a ticket it could serve is waiting (a policy that
  holds tickets back, e.g. for a slot) presses again every ``repoll_min``.

The hall stops issuing at each period's close (12:00, 17:00); everyone already waiting is served,
into the lunch break or after hours if need be. Times are minutes after local midnight of
``date``; a day must end before the next midnight (the core would start a new business day).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date as Date, datetime, timedelta
from typing import Any, Sequence

from hallctl.central.core import Central
from hallctl.central.model import FINAL, Event, HallSpec, WindowSpec
from hallctl.sim.hallsim.scenario import DAY_RESET_HOUR, Arrival, Scenario

_ARRIVE, _DONE, _POLL, _RECALL = 0, 1, 2, 3
DAY_MIN = (24 + DAY_RESET_HOUR) * 60.0  # the business day ends at the next reset


class SimError(RuntimeError):
    """The simulation broke one of its own invariants (a bug, never bad luck)."""


@dataclass(frozen=True)
class SimOptions:
    """How the citizens and clerks behave (everything off = the issue's base case)."""

    mix: str = "walkin"  # "walkin" | "priority" (appointments and green channel)
    with_start: bool = False  # send window.start before serving (one more command per ticket)
    noshow_p: float = 0.0  # share of citizens absent when called
    patience_mean_min: float | None = None  # mean of exponential patience; None = nobody walks out
    call_wait_min: float = 1.0  # a window waits this long for an absent citizen per (re)call
    recalls: int = 1  # recalls before no-show (capped by HallSpec.recall_limit)
    repoll_min: float = 1.0  # an idle window that got nothing but sees work asks again after this


@dataclass(slots=True)
class TicketRecord:
    """What happened to one ticket, in minutes after midnight."""

    arrival: int  # index into the day's arrivals
    id: str
    number: str
    queue: str
    cls: str  # walkin | appointment | green
    issued: float
    slot: float | None = None
    called: float | None = None
    done: float | None = None
    window: str | None = None
    no_show: bool = False
    predicted_min: float | None = None  # wait the core predicted at issue (None: no estimate)


@dataclass
class DayResult:
    records: list[TicketRecord]
    busy_min: dict[str, float]  # window -> minutes at the window (service + waiting for absentees)
    windows: int
    end: float  # time of the last event
    commands: int  # commands sent to the core
    events: int  # events the core produced
    clock_reads: int = 0
    empty_calls: int = 0  # call_next that gave nothing
    repolls: int = 0  # of those, the ones where the sim saw servable work (policy held it back)
    issued_numbers: dict[str, list[str]] = field(default_factory=dict)  # prefix -> numbers in order
    log: list[Event] = field(default_factory=list)  # the core's events (only with keep_events)


class HallDay:
    """One simulated business day. ``run()`` once; it returns the :class:`DayResult`."""

    def __init__(
        self,
        hall: HallSpec,
        arrivals: Sequence[Arrival],
        *,
        day: Date,
        open_at: float,
        scenario: Scenario | None = None,
        options: SimOptions = SimOptions(),
        keep_events: bool = False,
    ) -> None:
        if options.mix != "walkin" and scenario is None:
            raise ValueError("mix 'priority' needs the scenario (shares, slots)")
        self.hall, self.arrivals, self.scenario, self.opt = hall, arrivals, scenario, options
        self.open_at = open_at
        self.now = open_at
        self._midnight = datetime(day.year, day.month, day.day, tzinfo=hall.zone)
        self._last_clock = -1.0
        self._clock_reads = 0
        self.central = Central(hall, self._clock)
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._records: list[TicketRecord] = []
        self._by_id: dict[str, TicketRecord] = {}
        self._waiting: dict[str, int] = {q: 0 for q in hall.queues}
        self._total_waiting = 0
        self._idle: dict[str, float] = {}  # free windows, longest idle first (insertion order)
        self._current: dict[str, TicketRecord] = {}  # window -> ticket at it
        self._polling: set[str] = set()
        self._busy = {w: 0.0 for w in hall.windows}
        self._skills = {w: self._skill_set(spec) for w, spec in hall.windows.items()}
        self._speed = {w: self._speeds(spec) for w, spec in hall.windows.items()}
        self._commands = 0
        self._events = 0
        self._numbers: dict[str, list[str]] = {}
        self._recall_cap = min(options.recalls, hall.recall_limit)
        self._log: list[Event] | None = [] if keep_events else None
        self._empty_calls = 0
        self._repolls = 0

    # -- clock and core ---------------------------------------------------------------------

    def _clock(self) -> datetime:
        now = self.now
        if now < self._last_clock:
            raise SimError(f"simulated clock went back from {self._last_clock} to {now}")
        if now >= DAY_MIN:
            raise SimError("the simulated day ran past the next day's reset hour; the core would start a new day")
        self._last_clock = now
        self._clock_reads += 1
        return self._midnight + timedelta(minutes=now)

    def _cmd(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        out = self.central.handle(action, data)
        self._commands += 1
        self._events += len(out.events)
        if self._log is not None:
            self._log.extend(out.events)
        return out.data

    def _skill_set(self, spec: WindowSpec) -> frozenset[str] | None:
        """The queues a window may call under the core's policy (None: every queue). A policy
        may narrow the spec (per-department FIFO calls the primary queues only)."""
        serves = self.central.policy.serves
        queues = {q for q in self.hall.queues if serves(spec, q)}
        return None if queues == set(self.hall.queues) else frozenset(queues)

    def _speeds(self, spec: WindowSpec) -> dict[str, float]:
        """queue -> the window's speed factor for it (service time is divided by it)."""
        return {q: spec.speed_for(q) for q in self.hall.queues}

    def _push(self, t: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> DayResult:
        for w in self.hall.windows:
            self._cmd("window.open", {"window": w})
            self._idle[w] = self.now
        if self.arrivals:
            self._push(self.arrivals[0].t, _ARRIVE, 0)
        heap = self._heap
        while heap:
            t, _, kind, payload = heapq.heappop(heap)
            if t < self.now:
                raise SimError(f"event at {t} is before the clock {self.now}")
            self.now = t
            if kind == _DONE:
                self._on_done(payload)
            elif kind == _ARRIVE:
                self._on_arrive(payload)
            elif kind == _POLL:
                self._polling.discard(payload)
                if payload in self._idle:
                    self._call(payload)
            else:
                self._on_recall(*payload)
        self._check_end()
        return DayResult(
            records=self._records,
            busy_min=self._busy,
            windows=len(self.hall.windows),
            end=self.now,
            commands=self._commands,
            events=self._events,
            clock_reads=self._clock_reads,
            empty_calls=self._empty_calls,
            repolls=self._repolls,
            issued_numbers=self._numbers,
            log=self._log or [],
        )

    def _on_arrive(self, i: int) -> None:
        a = self.arrivals[i]
        if i + 1 < len(self.arrivals):
            self._push(self.arrivals[i + 1].t, _ARRIVE, i + 1)
        cls = "walkin" if self.opt.mix == "walkin" else a.ticket_class(self.opt.mix, self.scenario)  # type: ignore[arg-type]
        data: dict[str, Any] = {"queue": a.queue}
        slot = None
        if cls == "appointment":
            slot = a.slot(self.scenario)  # type: ignore[arg-type]
        if cls != "walkin":
            data["priority"] = cls
            if slot is not None:
                when = self._midnight + timedelta(minutes=slot)
                data["slot"] = when.isoformat(timespec="seconds")
        res = self._cmd("ticket.issue", data)
        ticket = res["ticket"]
        rec = TicketRecord(i, ticket["id"], ticket["number"], a.queue, cls, self.now, slot)
        wait = res["predicted_wait_min"]
        rec.predicted_min = None if wait is None else float(wait)
        if rec.id in self._by_id:
            raise SimError(f"the core issued {rec.id} twice")
        self._by_id[rec.id] = rec
        self._records.append(rec)
        prefix = rec.number.rstrip("0123456789")
        self._numbers.setdefault(prefix, []).append(rec.number)
        self._waiting[a.queue] += 1
        self._total_waiting += 1
        for w in list(self._idle):
            if rec.called is not None:
                break
            skills = self._skills[w]
            if w in self._idle and (skills is None or a.queue in skills):
                self._call(w)

    def _can_serve_waiting(self, w: str) -> bool:
        skills = self._skills[w]
        if skills is None:
            return self._total_waiting > 0
        return any(self._waiting[q] for q in skills)

    def _call(self, w: str) -> None:
        """Window ``w`` (free) presses "next"."""
        ticket = self._cmd("window.call_next", {"window": w})["ticket"]
        if ticket is None:
            self._empty_calls += 1
            if w not in self._idle:
                self._idle[w] = self.now
            if w not in self._polling and self._can_serve_waiting(w):
                self._repolls += 1
                self._polling.add(w)  # the policy held the work back: ask again a bit later
                self._push(self.now + self.opt.repoll_min, _POLL, w)
            return
        self._idle.pop(w, None)
        rec = self._by_id.get(ticket["id"])
        if rec is None or rec.called is not None:
            raise SimError(f"call_next gave {ticket['id']}, which is unknown or already called")
        rec.called, rec.window = self.now, w
        self._waiting[rec.queue] -= 1
        self._total_waiting -= 1
        self._current[w] = rec
        if self._absent(rec):
            self._push(self.now + self.opt.call_wait_min, _RECALL, (w, 0))
            return
        if self.opt.with_start:
            self._cmd("window.start", {"window": w})
        a = self.arrivals[rec.arrival]
        service = a.service / self._speed[w][rec.queue]
        self._busy[w] += service
        self._push(self.now + service, _DONE, w)

    def _absent(self, rec: TicketRecord) -> bool:
        if self.opt.noshow_p <= 0 and self.opt.patience_mean_min is None:
            return False
        a = self.arrivals[rec.arrival]
        if a.u_noshow < self.opt.noshow_p:
            return True
        patience = self.opt.patience_mean_min
        return patience is not None and rec.called - rec.issued > a.patience * patience  # type: ignore[operator]

    def _on_recall(self, w: str, n: int) -> None:
        self._busy[w] += self.opt.call_wait_min
        if n < self._recall_cap:
            self._cmd("window.recall", {"window": w})
            self._push(self.now + self.opt.call_wait_min, _RECALL, (w, n + 1))
            return
        self._cmd("window.no_show", {"window": w})
        rec = self._current.pop(w)
        rec.no_show, rec.done = True, self.now
        self._call(w)

    def _on_done(self, w: str) -> None:
        self._cmd("window.complete", {"window": w})
        self._current.pop(w).done = self.now
        self._call(w)

    def _check_end(self) -> None:
        if len(self._records) != len(self.arrivals):
            raise SimError(f"{len(self.arrivals)} arrivals but {len(self._records)} tickets issued")
        open_ = [r.number for r in self._records if r.done is None]
        if open_ or self._current or self._total_waiting:
            raise SimError(f"tickets left unfinished at the end of the day: {open_[:5]}")
        unfinished = [t.number for t in self.central.tickets.values() if t.status not in FINAL]
        if unfinished:
            raise SimError(f"the core still holds unfinished tickets: {unfinished[:5]}")
