"""The central core's mutable state: what the engine knows, and what a new business day keeps.

Only :class:`~hallctl.central.core.Central` changes a :class:`HallState` (by folding events);
everything else reads it. :func:`checkpoint_doc` is the JSON form of what a new day keeps, stored
at each day start so that a restart replays days, not the hall's whole history. Bookings
(appointments) outlive the day they were made on, so a checkpoint carries them: central's own
store, which holds their events (phone numbers included) anyway; a checkpoint is never published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from hallctl.central.model import Appointment, Ticket, WaitingLines

#: version of the checkpoint document (:meth:`Central.checkpoint`)
CHECKPOINT_V = 1


@dataclass
class WindowRuntime:
    """A window's live state: open/paused/closed, the ticket id at it (called or serving) and
    since when (epoch seconds of its call, or of its start once started: its service began)."""

    state: str = "closed"
    ticket: str | None = None
    since: float | None = None
    clerk: str | None = None  # the clerk signed in (window.open {clerk}); None after close


@dataclass(frozen=True)
class BoardCall:
    ticket: str
    number: str
    window: str
    window_name: str
    at: str


@dataclass
class HallState:
    """Everything the engine knows. Compared with ``==`` to check that a replay is faithful."""

    last_seq: int = 0
    last_ts: str = ""  # ts of the last event: "now" for views that must not read the clock
    day: str | None = None
    counters: dict[str, int] = field(default_factory=dict)  # prefix -> last number issued today
    tickets: dict[str, Ticket] = field(default_factory=dict)  # today's tickets by id
    lines: WaitingLines = field(default_factory=WaitingLines)  # the waiting tickets, sorted
    #: tickets pending their print (ticket id -> epoch issued), in issue order: their deadlines
    pending: dict[str, float] = field(default_factory=dict)
    windows: dict[str, WindowRuntime] = field(default_factory=dict)
    calls: list[BoardCall] = field(default_factory=list)  # newest last, at most board_size
    #: queue -> learned mean service time (seconds at speed 1.0), starting at the queue's prior;
    #: kept across days (it is learned from the whole event log)
    service: dict[str, float] = field(default_factory=dict)
    service_n: dict[str, int] = field(default_factory=dict)  # queue -> services learned from
    #: matter -> learned mean service time, starting at the matter's prior; and its sample count
    matter_service: dict[str, float] = field(default_factory=dict)
    matter_n: dict[str, int] = field(default_factory=dict)
    #: bookings by code: today's, those to come, and those of the last APPOINTMENT_KEEP_DAYS days
    appointments: dict[str, Appointment] = field(default_factory=dict)

    @property
    def waiting(self) -> dict[str, list[tuple[int, str]]]:
        """queue -> [(issue seq, ticket id), ...] in arrival order; queues with nobody waiting are
        left out. A copy, for diagnostics and tests; policies read :attr:`lines`."""
        return {q: [(w.seq, w.ticket) for w in ql.all] for q, ql in self.lines.by_queue.items()}


def survivors(state: HallState) -> HallState:
    """A copy of only what ``day.started`` keeps (the seq, the day until the event says otherwise,
    window states and capacity, the learned service times): folding ``day.started`` into it gives the same state as folding
    it into a deep copy, at a fraction of the cost of copying a whole day's tickets."""
    lines = WaitingLines()
    lines.capacity = dict(state.lines.capacity)
    return HallState(
        last_seq=state.last_seq,
        last_ts=state.last_ts,
        day=state.day,
        lines=lines,
        windows={
            w: WindowRuntime(live.state, live.ticket, live.since, live.clerk)
            for w, live in state.windows.items()
        },
        service=dict(state.service),
        service_n=dict(state.service_n),
        matter_service=dict(state.matter_service),
        matter_n=dict(state.matter_n),
        appointments=dict(state.appointments),  # frozen values: a shallow copy is a copy
    )


def checkpoint_doc(state: HallState) -> dict[str, Any]:
    """What a new day keeps (see :func:`survivors`), as JSON: no tickets; the bookings kept, with
    the phone the booking system gave (for central's store only)."""
    return {
        "v": CHECKPOINT_V,
        "seq": state.last_seq,
        "ts": state.last_ts,
        "day": state.day,
        "windows": {w: [live.state, live.clerk] for w, live in state.windows.items()},
        "service": dict(state.service),
        "service_n": dict(state.service_n),
        "matter_service": dict(state.matter_service),
        "matter_n": dict(state.matter_n),
        "appointments": [_appointment_doc(a) for a in state.appointments.values()],
    }


#: the fields of a booking in a checkpoint, in this order
_APPOINTMENT_FIELDS = ("code", "booking", "queue", "slot", "day", "matter", "phone", "cancelled", "ticket")


def _appointment_doc(a: Appointment) -> list[Any]:
    return [getattr(a, f) for f in _APPOINTMENT_FIELDS]


def restore_checkpoint(state: HallState, doc: Mapping[str, Any]) -> None:
    """Put what a :func:`checkpoint_doc` holds into a fresh ``state`` (capacities are the
    caller's: they depend on the hall's config). Raises ValueError on a document it cannot read."""
    if not isinstance(doc, Mapping) or doc.get("v") != CHECKPOINT_V:
        raise ValueError(f"not a v{CHECKPOINT_V} checkpoint")
    try:
        state.last_seq, state.last_ts, state.day = int(doc["seq"]), str(doc["ts"]), str(doc["day"])
        for w, (st, clerk) in doc["windows"].items():
            state.windows[w] = WindowRuntime(str(st), None, None, clerk)
        for means, counts in (("service", "service_n"), ("matter_service", "matter_n")):
            n = {k: int(v) for k, v in doc[counts].items()}
            getattr(state, counts).update(n)
            # only what was learned: a queue never served takes its prior from today's config
            getattr(state, means).update({k: float(v) for k, v in doc[means].items() if n.get(k, 0) > 0})
        for row in doc.get("appointments", ()):  # a checkpoint from before appointments has none
            a = Appointment(**dict(zip(_APPOINTMENT_FIELDS, row, strict=True)))
            state.appointments[a.code] = a
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable checkpoint: {exc!r}") from None
