"""The central queue engine: a pure, event-sourced state machine.

No I/O and no hidden clock: the caller injects ``clock`` and gets back events to store and publish.
``handle(action, data)`` validates the request, turns it into events, folds them into the state
with :meth:`Central.apply` and returns an :class:`Outcome`. Replaying the stored events into a fresh
``Central`` (same :class:`HallSpec`) rebuilds the same state: that is how central restarts.

Calling order is first-come-first-served (:func:`fifo_next`). Smarter assignment (appointments,
green channel, load balancing) will replace that one function with a policy object; nothing else
here knows how the next ticket is chosen.

Event types and their ``data`` (the event's ``ts`` is when it happened):

* ``day.started``: ``day`` (YYYY-MM-DD), ``expired`` (ids of the tickets left unfinished)
* ``ticket.issued``: ``ticket``, ``number``, ``queue``, ``channel``, ``phone`` (only if given;
  private: :meth:`Central.event_public` turns it into ``phone_masked``)
* ``ticket.called``: ``ticket``, ``number``, ``queue``, ``window``, ``window_name``
* ``ticket.recalled``: as ``ticket.called`` plus ``recalls`` (the count after this recall)
* ``ticket.started`` (called -> serving), ``ticket.completed`` (called|serving -> done),
  ``ticket.no_show`` (called -> no_show): ``ticket``, ``number``, ``queue``, ``window``
* ``window.opened`` / ``window.paused`` / ``window.closed``: ``window``

A business day starts at ``HallSpec.day_reset_hour``: the first command of a new day (or
:meth:`Central.tick`) emits ``day.started``, which restarts numbering at 001, expires every
unfinished ticket of the day before, frees the windows and clears the board. Only the current
day's tickets are kept in memory; history lives in the event store.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from hallctl.central.model import (
    AT_WINDOW,
    ID_RE,
    PHONE_RE,
    Event,
    HallSpec,
    Ticket,
    WindowSpec,
    mask_phone,
)
from hallctl.errors import BadRequest, Conflict, HallctlError, NotFound, UnknownCommand

#: schema version of every public document this module renders
SCHEMA_V = 1
#: a ticket number: prefix letters then digits ("A001"; "A1000" after 999 in one day)
NUMBER_RE = re.compile(r"^([A-Z]+)([0-9]+)$")
#: personal fields in event data -> (public name, masking function)
TO_MASK: dict[str, tuple[str, Callable[[str], str]]] = {"phone": ("phone_masked", mask_phone)}


class ReplayError(HallctlError, ValueError):
    """An event cannot be folded in: out of sequence or of an unknown type."""

    code = "internal"


@dataclass(frozen=True)
class Outcome:
    """What a command produced: the response ``data`` and the ``events`` to store and publish."""

    data: dict[str, Any]
    events: list[Event]


@dataclass
class WindowRuntime:
    """A window's live state: open/paused/closed and the ticket id at it (called or serving)."""

    state: str = "closed"
    ticket: str | None = None


@dataclass(frozen=True)
class BoardCall:
    ticket: str
    number: str
    window: str
    window_name: str
    at: str


#: entry of a waiting line: (seq of the ticket.issued event, ticket id). Issue order is FIFO order:
#: the same as issued_at order while the clock runs forward, and an NTP step back cannot let a
#: later ticket jump the line.
WaitKey = tuple[int, str]


@dataclass
class HallState:
    """Everything the engine knows. Compared with ``==`` to check that a replay is faithful."""

    last_seq: int = 0
    day: str | None = None
    counters: dict[str, int] = field(default_factory=dict)  # prefix -> last number issued today
    tickets: dict[str, Ticket] = field(default_factory=dict)  # today's tickets by id
    waiting: dict[str, list[WaitKey]] = field(default_factory=dict)  # queue -> FIFO; never empty
    windows: dict[str, WindowRuntime] = field(default_factory=dict)
    calls: list[BoardCall] = field(default_factory=list)  # newest last, at most board_size


def fifo_next(waiting: Mapping[str, list[WaitKey]], window: WindowSpec) -> str | None:
    """The id of the first-issued waiting ticket among the queues ``window`` serves, or None."""
    queues = waiting.keys() if window.universal else window.queues
    heads = [waiting[q][0] for q in queues if waiting.get(q)]
    return min(heads)[1] if heads else None


# ---------------------------------------------------------------------------------------------
# request validation (pure; depends on the HallSpec only)


def _check_fields(data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise BadRequest("data must be a JSON object")
    for key in data:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadRequest(f"{key}: unknown field (allowed: {known})", field=str(key))


def _string(data: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name}: required", field=name)
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}: must be a non-empty string", field=name)
    return value


def _window_arg(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(data, ("window",))
    window = _string(data, "window", required=True)
    if window not in hall.windows:
        raise NotFound(f"window: no window {window!r} in hall {hall.hall_id}", field="window")
    return {"window": window}


def _issue_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(data, ("queue", "phone", "channel"))
    queue = _string(data, "queue", required=True)
    if queue not in hall.queues:
        raise NotFound(f"queue: no queue {queue!r} in hall {hall.hall_id}", field="queue")
    phone = data.get("phone")
    if phone is not None and (not isinstance(phone, str) or not PHONE_RE.match(phone)):
        # never echo the value: it is personal data and error messages end up in logs
        raise BadRequest("phone: must be an 11-digit mainland mobile number (1[3-9]…)", field="phone")
    channel = _string(data, "channel", required=False) or "kiosk"
    if not ID_RE.match(channel):
        raise BadRequest("channel: must match [a-z0-9-]{1,64}", field="channel")
    return {"queue": queue, "phone": phone, "channel": channel}


def _no_args(hall: HallSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(data, ())
    return {}


# ---------------------------------------------------------------------------------------------


class _Batch:
    """Events of one command: numbered, stamped with one ``ts`` and folded in as they are made."""

    def __init__(self, central: "Central", state: HallState, ts: str) -> None:
        self.central, self.state, self.ts = central, state, ts
        self.events: list[Event] = []

    def emit(self, type_: str, data: dict[str, Any]) -> Event:
        event = Event(seq=self.state.last_seq + 1, type=type_, ts=self.ts, data=data)
        self.central._fold(self.state, event)
        self.events.append(event)
        return event


class Central:
    """The hall's queue engine. Not thread-safe: one caller at a time (the central's shell)."""

    #: action -> (argument parser, command method name); queue.status is the only read-only one
    _COMMANDS: dict[str, tuple[Callable[[HallSpec, Mapping[str, Any]], dict[str, Any]], str]] = {
        "ticket.issue": (_issue_args, "_cmd_issue"),
        "window.call_next": (_window_arg, "_cmd_call_next"),
        "window.recall": (_window_arg, "_cmd_recall"),
        "window.start": (_window_arg, "_cmd_start"),
        "window.complete": (_window_arg, "_cmd_complete"),
        "window.no_show": (_window_arg, "_cmd_no_show"),
        "window.open": (_window_arg, "_cmd_open"),
        "window.pause": (_window_arg, "_cmd_pause"),
        "window.close": (_window_arg, "_cmd_close"),
        "queue.status": (_no_args, "_cmd_status"),
    }
    READ_ONLY = frozenset({"queue.status"})
    ACTIONS: tuple[str, ...] = tuple(_COMMANDS)

    def __init__(self, hall: HallSpec, clock: Callable[[], datetime]) -> None:
        self._hall = hall
        self._clock = clock
        self._state = HallState(windows={w: WindowRuntime() for w in hall.windows})
        self._folders: dict[str, Callable[[HallState, Event], None]] = {
            "day.started": self._on_day_started,
            "ticket.issued": self._on_issued,
            "ticket.called": self._on_called,
            "ticket.recalled": self._on_recalled,
            "ticket.started": self._on_started,
            "ticket.completed": self._on_finished,
            "ticket.no_show": self._on_finished,
            "window.opened": self._on_window,
            "window.paused": self._on_window,
            "window.closed": self._on_window,
        }

    # -- reading ------------------------------------------------------------------------------

    @property
    def hall(self) -> HallSpec:
        return self._hall

    @property
    def state(self) -> HallState:
        """The live state, for comparisons and diagnostics. Do not modify it."""
        return self._state

    @property
    def last_seq(self) -> int:
        return self._state.last_seq

    @property
    def day(self) -> str | None:
        """The current business day (YYYY-MM-DD), None before the first event."""
        return self._state.day

    @property
    def tickets(self) -> Mapping[str, Ticket]:
        """Today's tickets by id (read-only)."""
        return MappingProxyType(self._state.tickets)

    def ticket(self, ticket_id: str) -> Ticket | None:
        return self._state.tickets.get(ticket_id)

    def ahead(self, ticket_id: str) -> int | None:
        """How many waiting tickets of the same queue will be called first; None if not waiting."""
        return self._ahead(self._state, ticket_id)

    def window_state(self, window_id: str) -> dict[str, Any]:
        """Document for the retained ``window/<id>/state`` topic."""
        return self._window_state(self._state, window_id)

    def board_state(self) -> dict[str, Any]:
        """Document for the retained ``board/state`` topic: latest calls (newest last), waiting."""
        return {
            "v": SCHEMA_V,
            "calls": [
                {"number": c.number, "window": c.window, "window_name": c.window_name, "at": c.at}
                for c in self._state.calls
            ],
            "waiting": self._waiting_counts(self._state),
        }

    def queue_status(self) -> dict[str, Any]:
        return self._status(self._state)

    @staticmethod
    def ticket_view(t: Ticket) -> dict[str, Any]:
        """A ticket as anyone may see it: the phone only masked."""
        return {
            "id": t.id,
            "number": t.number,
            "queue": t.queue,
            "status": t.status,
            "issued_at": t.issued_at,
            "window": t.window,
            "called_at": t.called_at,
            "recalls": t.recalls,
            "channel": t.channel,
            "phone_masked": mask_phone(t.phone) if t.phone else None,
        }

    @staticmethod
    def event_public(event: Event) -> dict[str, Any]:
        """An event as published on MQTT: personal fields masked."""
        return {
            "v": SCHEMA_V,
            "seq": event.seq,
            "type": event.type,
            "ts": event.ts,
            "data": _masked(event.data),
        }

    # -- commands -----------------------------------------------------------------------------

    def handle(self, action: str, data: Mapping[str, Any]) -> Outcome:
        """Validate ``data``, run ``action`` and return its response and events.

        Raises BadRequest / NotFound / Conflict / UnknownCommand; on any error the state is unchanged
        and no events are produced.
        """
        try:
            parse, method = self._COMMANDS[action]
        except (KeyError, TypeError):
            raise UnknownCommand(
                f"unknown action {action!r}; known: {', '.join(self.ACTIONS)}", action=str(action)
            ) from None
        args = parse(self._hall, data)
        if action in self.READ_ONLY:
            return Outcome(getattr(self, method)(self._state, None, **args), [])
        batch = self._begin()
        result = getattr(self, method)(batch.state, batch, **args)
        self._state = batch.state  # commit only after the command succeeded
        return Outcome(result, batch.events)

    def tick(self) -> Outcome:
        """Start the new business day if it is due. Call it now and then (e.g. every minute) so the
        board clears and old tickets expire at the reset hour even when nobody acts."""
        batch = self._begin()
        self._state = batch.state
        return Outcome({"day": self._state.day}, batch.events)

    def apply(self, event: Event) -> None:
        """Fold one stored event into the state (replay). Events must come in ``seq`` order."""
        self._fold(self._state, event)

    def replay(self, events: Iterable[Event]) -> int:
        """Apply every event in order; returns how many."""
        n = 0
        for event in events:
            self._fold(self._state, event)
            n += 1
        return n

    # -- command implementations: check everything first, then emit --------------------------

    def _begin(self) -> _Batch:
        """A batch on the live state, or on a copy that has already rolled into a new day.

        The copy keeps a later error from leaving a half-applied day change behind.
        """
        now = self._clock()
        ts = self._hall.local(now).isoformat(timespec="milliseconds")
        today = self._hall.business_day(now)
        state = self._state
        if state.day is not None and today <= state.day:  # the clock going back never un-rolls
            return _Batch(self, state, ts)
        batch = _Batch(self, copy.deepcopy(state), ts)
        unfinished = sorted(
            t.id for t in state.tickets.values() if t.status == "waiting" or t.status in AT_WINDOW
        )
        batch.emit("day.started", {"day": today, "expired": unfinished})
        return batch

    def _cmd_issue(
        self, state: HallState, batch: _Batch, *, queue: str, phone: str | None, channel: str
    ) -> dict[str, Any]:
        prefix = self._hall.queues[queue].prefix
        number = f"{prefix}{state.counters.get(prefix, 0) + 1:03d}"
        data: dict[str, Any] = {
            "ticket": f"{state.day}-{number}",
            "number": number,
            "queue": queue,
            "channel": channel,
        }
        if phone is not None:
            data["phone"] = phone
        batch.emit("ticket.issued", data)
        ticket = state.tickets[data["ticket"]]
        return {"ticket": self.ticket_view(ticket), "ahead": self._ahead(state, ticket.id)}

    def _cmd_call_next(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        live = state.windows[window]
        if live.state != "open":
            raise Conflict(f"window {window} is {live.state}; open it first", window=window)
        self._require_free(state, window)
        ticket_id = fifo_next(state.waiting, self._hall.windows[window])
        if ticket_id is None:
            return {"ticket": None}
        t = state.tickets[ticket_id]
        batch.emit("ticket.called", {**self._ref(t, window), "window_name": self._window_name(window)})
        return {"ticket": self.ticket_view(state.tickets[ticket_id])}

    def _cmd_recall(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", action="recall")
        if t.recalls >= self._hall.recall_limit:
            raise Conflict(
                f"{t.number} was already recalled {t.recalls} times (limit {self._hall.recall_limit}); "
                "mark it no-show or complete it",
                window=window,
            )
        batch.emit(
            "ticket.recalled",
            {**self._ref(t, window), "window_name": self._window_name(window), "recalls": t.recalls + 1},
        )
        return {"ticket": self.ticket_view(state.tickets[t.id])}

    def _cmd_start(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", action="start")
        batch.emit("ticket.started", self._ref(t, window))
        return {"ticket": self.ticket_view(state.tickets[t.id])}

    def _cmd_complete(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", "serving", action="complete")
        batch.emit("ticket.completed", self._ref(t, window))
        return {"ticket": self.ticket_view(state.tickets[t.id])}

    def _cmd_no_show(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", action="no-show")
        batch.emit("ticket.no_show", self._ref(t, window))
        return {"ticket": self.ticket_view(state.tickets[t.id])}

    def _cmd_open(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        return self._set_window(state, batch, window, "open", "window.opened")

    def _cmd_pause(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        # pausing with a ticket at the window is fine: it is served to the end, then no new calls
        return self._set_window(state, batch, window, "paused", "window.paused")

    def _cmd_close(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        self._require_free(state, window)
        return self._set_window(state, batch, window, "closed", "window.closed")

    def _cmd_status(self, state: HallState, batch: _Batch | None) -> dict[str, Any]:
        return self._status(state)

    # -- command helpers ----------------------------------------------------------------------

    def _set_window(
        self, state: HallState, batch: _Batch, window: str, target: str, event_type: str
    ) -> dict[str, Any]:
        if state.windows[window].state != target:  # already there: nothing happens, no event
            batch.emit(event_type, {"window": window})
        return {"window": self._window_state(state, window)}

    def _require_free(self, state: HallState, window: str) -> None:
        current = state.windows[window].ticket
        if current is not None:
            t = state.tickets[current]
            raise Conflict(
                f"{t.number} is still at window {window}; complete or no-show it first",
                window=window,
                ticket=t.number,
            )

    def _current(self, state: HallState, window: str, *statuses: str, action: str) -> Ticket:
        current = state.windows[window].ticket
        if current is None:
            raise Conflict(f"nothing to {action}: no ticket at window {window}", window=window)
        t = state.tickets[current]
        if t.status not in statuses:
            raise Conflict(
                f"cannot {action} {t.number} at window {window}: it is {t.status}",
                window=window,
                ticket=t.number,
            )
        return t

    @staticmethod
    def _ref(t: Ticket, window: str) -> dict[str, Any]:
        return {"ticket": t.id, "number": t.number, "queue": t.queue, "window": window}

    def _window_name(self, window: str) -> str:
        spec = self._hall.windows.get(window)
        return spec.name if spec else window

    # -- views on a given state ---------------------------------------------------------------

    def _window_state(self, state: HallState, window_id: str) -> dict[str, Any]:
        spec = self._hall.windows.get(window_id)
        if spec is None:
            raise NotFound(
                f"window: no window {window_id!r} in hall {self._hall.hall_id}", field="window"
            )
        live = state.windows.get(window_id) or WindowRuntime()
        ticket = None
        if live.ticket is not None:
            t = state.tickets[live.ticket]
            ticket = {
                "number": t.number,
                "queue": t.queue,
                "status": t.status,
                "called_at": t.called_at,
                "recalls": t.recalls,
            }
        return {
            "v": SCHEMA_V,
            "window": window_id,
            "name": spec.name,
            "state": live.state,
            "ticket": ticket,
        }

    def _waiting_counts(self, state: HallState) -> dict[str, int]:
        return {q: len(state.waiting.get(q, ())) for q in self._hall.queues}

    def _status(self, state: HallState) -> dict[str, Any]:
        windows = {}
        for w in self._hall.windows:
            doc = self._window_state(state, w)
            del doc["v"]
            windows[w] = doc
        return {"day": state.day, "waiting": self._waiting_counts(state), "windows": windows}

    @staticmethod
    def _ahead(state: HallState, ticket_id: str) -> int | None:
        t = state.tickets.get(ticket_id)
        if t is None or t.status != "waiting":
            return None
        for i, (_, tid) in enumerate(state.waiting.get(t.queue, ())):
            if tid == ticket_id:
                return i
        return None  # unreachable while the state is consistent

    # -- folding events into a state (the only code that changes a HallState) -----------------

    def _fold(self, state: HallState, event: Event) -> None:
        if event.seq != state.last_seq + 1:
            raise ReplayError(f"event seq {event.seq} does not follow {state.last_seq}", seq=event.seq)
        folder = self._folders.get(event.type)
        if folder is None:
            raise ReplayError(
                f"unknown event type {event.type!r} (written by a newer hallctl?)", seq=event.seq
            )
        try:
            folder(state, event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReplayError(
                f"event {event.seq} ({event.type}) does not fit the state: {exc!r}", seq=event.seq
            ) from exc
        state.last_seq = event.seq

    def _on_day_started(self, state: HallState, event: Event) -> None:
        state.day = event.data["day"]
        state.counters.clear()
        state.tickets.clear()  # unfinished ones are listed as expired in the event
        state.waiting.clear()
        state.calls.clear()
        for live in state.windows.values():
            live.ticket = None

    def _on_issued(self, state: HallState, event: Event) -> None:
        d = event.data
        m = NUMBER_RE.match(d["number"])
        if m is None:
            raise ValueError(f"bad ticket number {d['number']!r}")
        prefix, n = m.group(1), int(m.group(2))
        state.counters[prefix] = max(state.counters.get(prefix, 0), n)
        state.tickets[d["ticket"]] = Ticket(
            id=d["ticket"],
            number=d["number"],
            queue=d["queue"],
            issued_at=event.ts,
            phone=d.get("phone"),
            channel=d.get("channel", "kiosk"),
        )
        state.waiting.setdefault(d["queue"], []).append((event.seq, d["ticket"]))  # seq only grows

    def _on_called(self, state: HallState, event: Event) -> None:
        d = event.data
        t = state.tickets[d["ticket"]]
        self._leave_line(state, t)
        state.tickets[t.id] = replace(t, status="called", window=d["window"], called_at=event.ts)
        state.windows.setdefault(d["window"], WindowRuntime()).ticket = t.id
        self._board_call(state, t, event)

    def _on_recalled(self, state: HallState, event: Event) -> None:
        d = event.data
        t = state.tickets[d["ticket"]]
        state.tickets[t.id] = replace(t, recalls=int(d["recalls"]))
        self._board_call(state, t, event)

    def _on_started(self, state: HallState, event: Event) -> None:
        t = state.tickets[event.data["ticket"]]
        state.tickets[t.id] = replace(t, status="serving")

    def _on_finished(self, state: HallState, event: Event) -> None:
        t = state.tickets[event.data["ticket"]]
        status = "done" if event.type == "ticket.completed" else "no_show"
        state.tickets[t.id] = replace(t, status=status)
        live = state.windows.get(event.data["window"])
        if live is not None and live.ticket == t.id:
            live.ticket = None

    def _on_window(self, state: HallState, event: Event) -> None:
        target = _WINDOW_STATE_AFTER[event.type]
        state.windows.setdefault(event.data["window"], WindowRuntime()).state = target

    @staticmethod
    def _leave_line(state: HallState, t: Ticket) -> None:
        line = state.waiting.get(t.queue, [])
        line[:] = [k for k in line if k[1] != t.id]
        if not line:
            state.waiting.pop(t.queue, None)

    def _board_call(self, state: HallState, t: Ticket, event: Event) -> None:
        """Add a (re)call to the board, newest last; a recall moves the ticket's line to the end."""
        d = event.data
        calls = [c for c in state.calls if c.ticket != t.id]
        calls.append(BoardCall(t.id, t.number, d["window"], d.get("window_name", d["window"]), event.ts))
        state.calls = calls[-self._hall.board_size :]


_WINDOW_STATE_AFTER = {"window.opened": "open", "window.paused": "paused", "window.closed": "closed"}


def _masked(value: Any) -> Any:
    """A deep copy of ``value`` with every personal field replaced by its masked form."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in TO_MASK and isinstance(v, str):
                public, mask = TO_MASK[k]
                out[public] = mask(v)
            elif k in TO_MASK:
                continue  # a personal field of an unexpected type: drop it rather than leak it
            else:
                out[k] = _masked(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value
