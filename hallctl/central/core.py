"""The central queue engine: a pure, event-sourced state machine.

No I/O and no hidden clock: the caller injects ``clock`` and gets back events to store and publish.
``handle(action, data)`` validates the request, turns it into events, folds them into the state
with :meth:`Central.apply` and returns an :class:`Outcome`. Replaying the stored events into a fresh
``Central`` (same :class:`HallSpec`) rebuilds the same state; so does :meth:`Central.from_checkpoint`
(the state a business day started from) plus the events after it: that is how central restarts.

Which ticket a window calls next is the business of a :class:`~hallctl.central.policies.Policy`
(``HallSpec.policy``; docs/assignment.md); the core keeps the waiting lines it reads
(:class:`~hallctl.central.model.WaitingLines`) and nothing else here knows how the choice is made.

Event types and their ``data`` (the event's ``ts`` is when it happened):

* ``day.started``: ``day`` (YYYY-MM-DD), ``expired`` (ids of the tickets left unfinished)
* ``ticket.issued``: ``ticket``, ``number``, ``queue``, ``channel``, ``phone`` (only if given;
  private: :meth:`Central.event_public` turns it into ``phone_masked``), ``token`` (private: never
  published), ``priority`` (only if not ``walkin``), ``slot`` (appointments only), ``missed_slot``
  (an appointment too late for its slot, issued as a walk-in), ``matter`` and its ``department``
  (when the ticket names a matter), ``confirm: "print"`` (the ticket is ``pending`` until
  confirmed), ``appointment`` (the booking's code, secret: never published) and ``booking`` (its
  public number) for a ticket issued for a booking, ``online_code`` (private: only the window
  that calls it is told) for an online application. A birth date given at issue is never stored:
  only the class derived from it.
* ``appointment.booked``: ``appointment`` (the code, secret), ``booking`` (its public number: the
  seq of the event that first booked the code), ``queue``, ``matter``/``department``, ``slot``,
  ``day`` (the slot's business day), ``phone`` (private). Again for a code already booked: the
  booking system moved it (same ``booking``).
* ``appointment.cancelled``: ``appointment``, ``booking``. A booking is kept until
  ``APPOINTMENT_KEEP_DAYS`` after its day; a ticket issued for it uses it, a void one frees it.
* ``ticket.confirmed`` (pending -> waiting, in its place in arrival order: by issue),
  ``ticket.voided`` (pending -> void, with ``reason``; the number is never reused):
  ``ticket``, ``number``, ``queue`` (:mod:`hallctl.central.pending`)
* ``ticket.called``: ``ticket``, ``number``, ``queue``, ``window``, ``window_name``. The first
  call of a ticket makes that window its ``first_window`` (首办).
* ``ticket.recalled``: as ``ticket.called`` plus ``recalls`` (the count after this recall)
* ``ticket.started`` (called -> serving), ``ticket.completed`` (called|serving -> done),
  ``ticket.no_show`` (called -> no_show): ``ticket``, ``number``, ``queue``, ``window``;
  ``no_show`` has ``reason: "recall_limit"`` when ``window.call_next`` passed a ticket that was
  already recalled ``recall_limit`` times (``HallSpec.auto_no_show``)
* ``ticket.transferred`` (called|serving -> waiting): ``ticket``, ``number``, ``queue`` (the new
  one), ``from_queue``, ``window``, and ``matter``/``department`` when transferred to a matter. The
  ticket keeps its number, class and place in arrival order.
* ``window.opened`` / ``window.paused`` / ``window.closed``: ``window``; ``window.opened`` has
  ``clerk`` when a clerk signs in

A business day starts at ``HallSpec.day_reset_hour``: the first command of a new day (or
:meth:`Central.tick`) emits ``day.started``, which restarts numbering at 001, expires every
unfinished ticket of the day before, frees the windows and clears the board. Only the current
day's tickets are kept in memory; history lives in the event store. :meth:`Central.tick` also
voids the tickets pending their print past their deadline.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from hallctl.central import args
from hallctl.central.model import (
    APPOINTMENT_KEEP_DAYS,
    AT_WINDOW,
    FINAL,
    PRIORITIES,
    Appointment,
    Event,
    HallSpec,
    Ticket,
    Waiting,
    mask_phone,
)
from hallctl.central.pending import NOT_CONFIRMED, confirm_due, new_token, next_due, overdue, ticket_link
from hallctl.central.policies import Policy, make_policy
from hallctl.central.prediction import Predictor, minutes
from hallctl.central.state import (
    BoardCall,
    HallState,
    WindowRuntime,
    checkpoint_doc,
    restore_checkpoint,
    survivors,
)
from hallctl.errors import BadRequest, Conflict, HallClosed, HallctlError, NotFound, UnknownCommand

#: schema version of every public document this module renders
SCHEMA_V = 1
#: a ticket number: prefix letters then digits ("A001"; "A1000" after 999 in one day)
NUMBER_RE = re.compile(r"^([A-Z]+)([0-9]+)$")
#: personal fields in event data -> (public name, masking function)
TO_MASK: dict[str, tuple[str, Callable[[str], str]]] = {"phone": ("phone_masked", mask_phone)}
#: fields of event data that are stored, never published: a ticket's token (its status link's key),
#: an appointment's code (it takes the booking's ticket), an online application's code (it names
#: the citizen's application; only the window that calls the ticket is told it)
SECRET: frozenset[str] = frozenset({"token", "appointment", "online_code"})
#: how far ahead the booking system may book (a slot years ahead is a typo)
BOOK_AHEAD_DAYS = 366


class ReplayError(HallctlError, ValueError):
    """An event cannot be folded in: out of sequence or of an unknown type."""

    code = "internal"


@dataclass(frozen=True)
class Outcome:
    """What a command produced: the response ``data`` and the ``events`` to store and publish."""

    data: dict[str, Any]
    events: list[Event]


def _epoch(iso: str) -> float:
    when = datetime.fromisoformat(iso)
    if when.utcoffset() is None:
        raise ValueError(f"time {iso!r} has no UTC offset")
    return when.timestamp()


def _waiting_entry(t: Ticket) -> Waiting:
    """The line entry of a waiting ticket, from the ticket alone (issue and transfer share it)."""
    if t.priority not in PRIORITIES or (t.slot is None) != (t.priority != "appointment"):
        raise ValueError(f"ticket {t.id}: bad priority {t.priority!r} or slot")
    issued = _epoch(t.issued_at)
    slot = _epoch(t.slot) if t.slot is not None else None
    since = issued if slot is None else max(issued, slot)
    return Waiting(t.seq, t.id, t.queue, t.priority, since, slot, t.matter)


# ---------------------------------------------------------------------------------------------


class _Batch:
    """Events of one command: numbered, stamped with one ``ts`` and folded in as they are made."""

    def __init__(
        self, central: "Central", state: HallState, ts: str, local: datetime, epoch: float
    ) -> None:
        self.central, self.state, self.ts = central, state, ts
        self.local, self.epoch = local, epoch  # the command's time: hall-local and epoch seconds
        self.events: list[Event] = []

    def emit(self, type_: str, data: dict[str, Any]) -> Event:
        event = Event(seq=self.state.last_seq + 1, type=type_, ts=self.ts, data=data)
        self.central._fold(self.state, event)
        self.events.append(event)
        return event


class Central:
    """The hall's queue engine. Not thread-safe: one caller at a time (the central's shell)."""

    #: action -> (argument parser, command method name); the READ_ONLY ones emit no events
    _COMMANDS: dict[str, tuple[Callable[[HallSpec, Mapping[str, Any]], dict[str, Any]], str]] = {
        "ticket.issue": (args.issue_args, "_cmd_issue"),
        "window.call_next": (args.window_arg, "_cmd_call_next"),
        "window.recall": (args.window_arg, "_cmd_recall"),
        "window.start": (args.window_arg, "_cmd_start"),
        "window.complete": (args.window_arg, "_cmd_complete"),
        "window.no_show": (args.window_arg, "_cmd_no_show"),
        "window.transfer": (args.transfer_args, "_cmd_transfer"),
        "window.open": (args.open_args, "_cmd_open"),
        "window.pause": (args.window_arg, "_cmd_pause"),
        "window.close": (args.window_arg, "_cmd_close"),
        "ticket.confirm": (args.ticket_arg, "_cmd_confirm"),
        "ticket.void": (args.void_args, "_cmd_void"),
        "queue.status": (args.no_args, "_cmd_status"),
        "ticket.status": (args.status_args, "_cmd_ticket_status"),
        "appointment.book": (args.book_args, "_cmd_book"),
        "appointment.cancel": (args.cancel_args, "_cmd_cancel"),
    }
    READ_ONLY = frozenset({"queue.status", "ticket.status"})
    ACTIONS: tuple[str, ...] = tuple(_COMMANDS)

    def __init__(
        self, hall: HallSpec, clock: Callable[[], datetime], *, policy: Policy | None = None,
        token: Callable[[], str] = new_token,
    ) -> None:
        """``token``: the source of the tickets' tokens (injected like the clock; a replay
        takes them from the events and never calls it)."""
        self._hall = hall
        self._clock = clock
        self._new_token = token
        self._policy = policy if policy is not None else make_policy(hall)
        self._state = HallState(
            windows={w: WindowRuntime() for w in hall.windows},
            service={q: spec.expected_service_s for q, spec in hall.queues.items()},
        )
        self._state.lines.capacity.update(dict.fromkeys(hall.queues, 0.0))
        #: the state right after the last day.started folded: (seq, day, document)
        self._checkpoint: tuple[int, str, dict[str, Any]] | None = None
        self._pending_cp: tuple[int, str, dict[str, Any]] | None = None
        self._ts_cache: tuple[str, float] = ("", 0.0)  # last event ts parsed, and its epoch
        self._day_end: tuple[str | None, float] = (None, 0.0)  # (day, epoch its successor starts)
        # queue -> the windows that list it (any skill level): whose speed makes its capacity
        self._servers: dict[str, tuple[str, ...]] = {
            q: tuple(w.id for w in hall.windows.values() if w.serves(q)) for q in hall.queues
        }
        self._predictor = Predictor(hall, self._policy)
        self._folders: dict[str, Callable[[HallState, Event], None]] = {
            "day.started": self._on_day_started,
            "ticket.issued": self._on_issued,
            "ticket.confirmed": self._on_confirmed,
            "ticket.voided": self._on_voided,
            "ticket.called": self._on_called,
            "ticket.recalled": self._on_recalled,
            "ticket.started": self._on_started,
            "ticket.completed": self._on_finished,
            "ticket.no_show": self._on_finished,
            "ticket.transferred": self._on_transferred,
            "window.opened": self._on_window,
            "window.paused": self._on_window,
            "window.closed": self._on_window,
            "appointment.booked": self._on_booked,
            "appointment.cancelled": self._on_cancelled,
        }

    # -- reading ------------------------------------------------------------------------------

    @property
    def hall(self) -> HallSpec:
        return self._hall

    @property
    def policy(self) -> Policy:
        return self._policy

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
        """How many tickets of the same queue were issued before it and still wait; None if it
        is not waiting. (:meth:`people_ahead` is the estimate under the hall's policy.)"""
        entry = self._state.lines.entries.get(ticket_id)
        return None if entry is None else self._ahead(self._state, entry)

    def people_ahead(self, ticket_id: str, now: datetime | None = None) -> int | None:
        """How many people the policy will call before this ticket (docs/assignment.md); None if
        it is not waiting. ``now`` defaults to the clock."""
        when = (now or self._clock()).timestamp()
        return self._policy.people_ahead(self._state.lines, ticket_id, when)

    def predicted_wait_s(self, ticket_id: str, now: datetime | None = None) -> float | None:
        """Predicted seconds until this waiting ticket is called (docs/assignment.md, "Wait
        prediction"); None if it is not waiting or no open window can serve it."""
        entry = self._state.lines.entries.get(ticket_id)
        if entry is None:
            return None
        return self._predictor.predict_s(self._state, entry, (now or self._clock()).timestamp())

    def capable_windows(self, queue: str) -> tuple[str, ...]:
        """The windows the hall's policy lets call ``queue`` (open or not)."""
        return tuple(w for w, _ in self._predictor.capable.get(queue, ()))

    def service_estimate(self, queue: str) -> float | None:
        """The learned mean service time of ``queue`` (seconds at a window of speed 1.0)."""
        return self._state.service.get(queue)

    def window_state(self, window_id: str) -> dict[str, Any]:
        """Document for the retained ``window/<id>/state`` topic."""
        return self._window_state(self._state, window_id)

    def board_state(self) -> dict[str, Any]:
        """Document for the retained ``board/state`` topic: latest calls (newest last) and the
        :meth:`queue_figures`."""
        return {
            "v": SCHEMA_V,
            "calls": [
                {"number": c.number, "window": c.window, "window_name": c.window_name, "at": c.at}
                for c in self._state.calls
            ],
            **self.queue_figures(),
        }

    def queue_figures(self) -> dict[str, Any]:
        """``waiting`` per queue (pending tickets not counted) and ``predicted_wait_min``, per
        queue the predicted wait of a walk-in arriving now (None: no open window for it). "Now"
        is the time of the last event, so the figures follow from the state alone."""
        state = self._state
        now = self._ts_epoch(state.last_ts) if state.last_ts else 0.0
        return {
            "waiting": self._waiting_counts(state),
            "predicted_wait_min": self._predictor.walkin_waits(state, now),
        }

    def confirm_due(self) -> datetime | None:
        """The earliest deadline of the tickets pending their print (when :meth:`tick` voids one
        next), None when none is pending."""
        due = next_due(self._state.pending, self._hall.print_confirm_s)
        return None if due is None else datetime.fromtimestamp(due, self._hall.zone)

    def queue_status(self, now: datetime | None = None) -> dict[str, Any]:
        """The ``queue.status`` document as of ``now`` (default: the last event's time, so that
        it follows from the state alone)."""
        return self._status(self._state, now or self._last_time(self._state))

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
            "priority": t.priority,
            "slot": t.slot,
            "first_window": t.first_window,
            **({"first_clerk": t.first_clerk} if t.first_clerk else {}),
            **({"matter": t.matter} if t.matter else {}),
            **({"void_reason": t.void_reason} if t.void_reason else {}),
        }

    @classmethod
    def clerk_view(cls, t: Ticket) -> dict[str, Any]:
        """A ticket as the window that calls it sees it: with its online application's code, so
        that the clerk finds the application. Only in the answers to that window's actions (and
        to its ``ticket.status``: the service decides), never on an open topic."""
        view = cls.ticket_view(t)
        if t.online_code is not None:
            view["online_code"] = t.online_code
        return view

    @staticmethod
    def event_public(event: Event) -> dict[str, Any]:
        """An event as published on MQTT: personal fields masked, secret ones left out."""
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
        self._pending_cp = None
        try:
            batch = self._begin()
            result = getattr(self, method)(batch.state, batch, **args)
        except BaseException:
            self._pending_cp = None  # a day.started folded into a discarded state
            raise
        self._state = batch.state  # commit only after the command succeeded
        self._promote_checkpoint()
        return Outcome(result, batch.events)

    def tick(self) -> Outcome:
        """Start the new business day if it is due, and void the tickets whose print was not
        confirmed in time. Call it now and then (e.g. every minute) so the board clears and old
        tickets expire at the reset hour even when nobody acts."""
        batch = self._begin()
        for ticket_id in overdue(batch.state.pending, batch.epoch, self._hall.print_confirm_s):
            batch.emit("ticket.voided", {**self._about(batch.state.tickets[ticket_id]), "reason": NOT_CONFIRMED})
        self._state = batch.state
        self._promote_checkpoint()
        return Outcome({"day": self._state.day}, batch.events)

    def checkpoint(self, events: Iterable[Event] = ()) -> tuple[int, str, dict[str, Any]] | None:
        """The state right after the newest ``day.started`` (seq, day, a JSON-able document), for
        a restart or reload to begin there instead of at the first event ever. With ``events``:
        only if that day.started is among them (what a commit of those events should store)."""
        cp = self._checkpoint
        if cp is None:
            return None
        if events and not any(e.seq == cp[0] and e.type == "day.started" for e in events):
            return None
        return cp

    @classmethod
    def from_checkpoint(
        cls, hall: HallSpec, clock: Callable[[], datetime], doc: Mapping[str, Any], *,
        policy: Policy | None = None, token: Callable[[], str] = new_token,
    ) -> "Central":
        """A core in the state a :meth:`checkpoint` document describes, under ``hall`` (which may
        differ from the hall it was taken under: windows new to it start closed, capacities are
        summed under ``hall``). Replaying the events after the checkpoint's seq then gives the
        state a replay of the whole log would. Raises ValueError on a document it cannot read."""
        core = cls(hall, clock, policy=policy, token=token)
        state = core._state
        restore_checkpoint(state, doc)
        for q in hall.queues:
            core._set_capacity(state, q)
        core._checkpoint = (state.last_seq, state.day, dict(doc))
        return core

    def apply(self, event: Event) -> None:
        """Fold one stored event into the state (replay). Events must come in ``seq`` order."""
        self._fold(self._state, event)
        self._promote_checkpoint()

    def replay(self, events: Iterable[Event]) -> int:
        """Apply every event in order; returns how many."""
        n = 0
        for event in events:
            self._fold(self._state, event)
            n += 1
        self._promote_checkpoint()
        return n

    def _promote_checkpoint(self) -> None:
        if self._pending_cp is not None:
            self._checkpoint, self._pending_cp = self._pending_cp, None

    # -- command implementations: check everything first, then emit --------------------------

    def _begin(self) -> _Batch:
        """A batch on the live state, or on a new state that has already rolled into a new day.

        The new state keeps a later error from leaving a half-applied day change behind.
        """
        now = self._clock()
        local = self._hall.local(now)
        ts = local.isoformat(timespec="milliseconds")
        epoch = now.timestamp()
        state = self._state
        # the clock going back never un-rolls: only the end of the current day matters
        if state.day is not None and epoch < self._end_of(state.day):
            return _Batch(self, state, ts, local, epoch)
        today = self._hall.business_day(now)
        if state.day is not None and today <= state.day:  # belt and braces (DST edge)
            return _Batch(self, state, ts, local, epoch)
        batch = _Batch(self, survivors(state), ts, local, epoch)
        unfinished = sorted(t.id for t in state.tickets.values() if t.status not in FINAL)
        batch.emit("day.started", {"day": today, "expired": unfinished})
        return batch

    def _end_of(self, day: str) -> float:
        """Epoch seconds at which the business day after ``day`` starts (cached per day)."""
        cached_day, end = self._day_end
        if cached_day != day:
            nxt = date.fromisoformat(day) + timedelta(days=1)
            hour, zone = self._hall.day_reset_hour, self._hall.zone
            end = datetime(nxt.year, nxt.month, nxt.day, hour, tzinfo=zone).timestamp()
            self._day_end = (day, end)
        return end

    def _cmd_issue(
        self,
        state: HallState,
        batch: _Batch,
        *,
        queue: str,
        matter: str | None,
        phone: str | None,
        channel: str,
        priority: str,
        slot: datetime | None,
        born: date | None,
        confirm: str | None,
        appointment: str | None,
        online_code: str | None,
    ) -> dict[str, Any]:
        hours = self._hall.hours
        if hours is not None and not hours.is_open(batch.local):
            opens = hours.next_open(batch.local)
            raise HallClosed(
                "the hall is closed now; no ticket issued"
                + (f" (opens {opens.isoformat(timespec='minutes')})" if opens else ""),
                opens_at=opens.isoformat(timespec="seconds") if opens else None,
                hours=hours.describe(),
            )
        booked = None
        if appointment is not None:
            booked = self._usable_booking(state, appointment)
            queue, matter = self._booked_where(booked)
            phone = phone or booked.phone  # a phone given at the kiosk wins
        today = batch.local.date()
        if born is not None:
            if born > today:
                raise BadRequest("birth_date: must be a date YYYYMMDD", field="birth_date")
            if args.age(born, today) >= self._hall.elderly_age and "green" in self._hall.classes:
                priority, slot = "green", None  # green channel outranks an appointment
        slot_text = missed = None
        if booked is not None and priority == "appointment":
            slot_text = booked.slot
        elif slot is not None:
            if self._hall.business_day(slot) != state.day:
                raise BadRequest(f"slot: must be on the business day {state.day}", field="slot")
            slot_text = self._hall.local(slot).isoformat(timespec="seconds")
        if slot_text is not None and batch.epoch > _epoch(slot_text) + self._hall.appointment_late_s:
            # too late for the slot: queues as a walk-in (the kiosk tells the citizen so)
            priority, missed, slot_text = "walkin", slot_text, None
        prefix = self._hall.prefix_for(queue, priority)
        number = f"{prefix}{state.counters.get(prefix, 0) + 1:03d}"
        token = self._new_token()
        data: dict[str, Any] = {
            "ticket": f"{state.day}-{number}",
            "number": number,
            "queue": queue,
            "channel": channel,
            "token": token,
        }
        if matter is not None:
            data.update(self._matter_fields(matter))
        if phone is not None:
            data["phone"] = phone
        if priority != "walkin":
            data["priority"] = priority
        if slot_text is not None:
            data["slot"] = slot_text
        if missed is not None:
            data["missed_slot"] = missed
        if confirm is not None:
            data["confirm"] = confirm
        if booked is not None:
            data.update(appointment=booked.code, booking=booked.booking)
        if online_code is not None:
            data["online_code"] = online_code
        batch.emit("ticket.issued", data)
        ticket = state.tickets[data["ticket"]]
        reply = self._waiting_reply(state, ticket, batch.epoch)
        if missed is not None:
            reply["missed_slot"] = missed
        # the issuing client alone hears the token: its answer goes to that client only
        reply["token"] = token
        if (link := ticket_link(self._hall.ticket_link, token)) is not None:
            reply["link"] = link
        if confirm is not None:
            due = confirm_due(batch.epoch, self._hall.print_confirm_s)
            reply["confirm_by"] = datetime.fromtimestamp(due, self._hall.zone).isoformat(timespec="milliseconds")
        return reply

    # -- appointments (预约): booked by the hall's booking system, used by a ticket.issue ------

    def _cmd_book(
        self, state: HallState, batch: _Batch, *, code: str, queue: str, matter: str | None, slot: datetime,
        phone: str | None,
    ) -> dict[str, Any]:
        """Book ``code`` (or move its booking). The same booking again: nothing happens."""
        day = self._hall.business_day(slot)
        assert state.day is not None  # _begin started a day
        if day < state.day:
            raise BadRequest(f"slot: the business day {day} is over (today is {state.day})", field="slot")
        if date.fromisoformat(day) > date.fromisoformat(state.day) + timedelta(days=BOOK_AHEAD_DAYS):
            raise BadRequest(f"slot: more than {BOOK_AHEAD_DAYS} days ahead", field="slot")
        slot_text = self._hall.local(slot).isoformat(timespec="seconds")
        booked = state.appointments.get(code)
        if booked is not None:
            if booked.cancelled:
                raise Conflict("appointment: that code was cancelled; a new booking needs a new code",
                               field="code", reason="cancelled")
            if (booked.queue, booked.matter, booked.slot, booked.phone) == (queue, matter, slot_text, phone):
                return {"appointment": self.appointment_view(booked)}
            if booked.ticket is not None:
                raise Conflict(f"appointment: already used for ticket {_number_of(booked.ticket)}; it cannot "
                               "be moved", field="code", reason="used", ticket=_number_of(booked.ticket))
        data: dict[str, Any] = {
            "appointment": code,
            # its public number: the seq this event gets, kept when the booking is moved
            "booking": booked.booking if booked is not None else state.last_seq + 1,
            "queue": queue,
            "slot": slot_text,
            "day": day,
        }
        if matter is not None:
            data.update(self._matter_fields(matter))
        if phone is not None:
            data["phone"] = phone
        batch.emit("appointment.booked", data)
        return {"appointment": self.appointment_view(state.appointments[code])}

    def _cmd_cancel(self, state: HallState, batch: _Batch, *, code: str) -> dict[str, Any]:
        """Cancel a booking. Again for a cancelled one: nothing happens. A used one is not
        cancelled: its ticket is in the citizen's hand."""
        booked = self._booking(state, code)
        if not booked.cancelled:
            if booked.ticket is not None:
                raise Conflict(f"appointment: already used for ticket {_number_of(booked.ticket)}; "
                               "the ticket stays valid", field="code", reason="used",
                               ticket=_number_of(booked.ticket))
            batch.emit("appointment.cancelled", {"appointment": code, "booking": booked.booking})
        return {"appointment": self.appointment_view(state.appointments[code])}

    @staticmethod
    def appointment_view(a: Appointment) -> dict[str, Any]:
        """A booking as its booking system sees it: never its code (the client knows it), the
        phone only masked."""
        return {
            "booking": a.booking,
            "status": a.status,
            "queue": a.queue,
            **({"matter": a.matter} if a.matter else {}),
            "slot": a.slot,
            "day": a.day,
            **({"phone_masked": mask_phone(a.phone)} if a.phone else {}),
            **({"ticket": a.ticket} if a.ticket else {}),
        }

    @staticmethod
    def _booking(state: HallState, code: str, field: str = "code") -> Appointment:
        booked = state.appointments.get(code)
        if booked is None:  # the code is not echoed: it is a secret, like a token
            raise NotFound(f"{field}: no booking with that code", field=field)
        return booked

    def _usable_booking(self, state: HallState, code: str) -> Appointment:
        """The booking a ticket may be issued for now; ``detail.reason`` says why not (the
        kiosk's message): ``cancelled``, ``used``, ``other_day``."""
        booked = self._booking(state, code, "appointment")
        if booked.cancelled:
            raise Conflict("appointment: the booking was cancelled", field="appointment", reason="cancelled")
        if booked.ticket is not None:
            number = _number_of(booked.ticket)
            raise Conflict(f"appointment: already used for ticket {number}", field="appointment", reason="used",
                           ticket=number)
        if booked.day != state.day:
            raise Conflict(f"appointment: booked for {booked.day}, not today ({state.day})", field="appointment",
                           reason="other_day", day=booked.day)
        return booked

    def _booked_where(self, booked: Appointment) -> tuple[str, str | None]:
        """The queue and matter of a booking under today's config: a matter's section as it is now
        (a reload may have moved it); a matter since removed leaves its booked section."""
        spec = self._hall.matters.get(booked.matter or "")
        if spec is not None:
            return spec.queue, spec.id
        if booked.queue not in self._hall.queues:
            raise Conflict("appointment: its section is no longer in the hall; staff must issue the ticket",
                           field="appointment", reason="queue_gone")
        return booked.queue, None

    def _waiting_reply(self, state: HallState, ticket: Ticket, epoch: float) -> dict[str, Any]:
        """A ticket's view with the people ahead of it and its predicted wait; for a ticket
        pending its print, as they will be once it is confirmed (what its kiosk prints)."""
        view = self.ticket_view(ticket)
        entry = state.lines.entries.get(ticket.id)
        if entry is None and ticket.status == "pending":
            entry = _waiting_entry(ticket)
        wait = None if entry is None else minutes(self._predictor.predict_s(state, entry, epoch))
        view["predicted_wait_min"] = wait
        return {
            "ticket": view,
            "ahead": None if entry is None else self._ahead(state, entry),
            "people_ahead": None if entry is None else self._policy.people_ahead_of(state.lines, entry, epoch),
            "predicted_wait_min": wait,
        }

    def _cmd_call_next(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        live = state.windows[window]
        if live.state != "open":
            raise Conflict(f"window {window} is {live.state}; open it first", window=window)
        passed = None
        if live.ticket is not None:
            t = state.tickets[live.ticket]
            spent = t.status == "called" and t.recalls >= self._hall.recall_limit
            if not (self._hall.auto_no_show and spent):
                self._require_free(state, window)
            # recalled as often as allowed and still not here: pass it (过号) and call the next
            batch.emit("ticket.no_show", {**self._ref(t, window), "reason": "recall_limit"})
            passed = self.clerk_view(state.tickets[t.id])
        ticket_id = self._policy.next_ticket(state.lines, self._hall.windows[window], batch.epoch)
        result: dict[str, Any] = {"ticket": None}
        if ticket_id is not None:
            t = state.tickets[ticket_id]
            called = {**self._ref(t, window), "window_name": self._window_name(window)}
            if live.clerk is not None:
                called["clerk"] = live.clerk
            batch.emit("ticket.called", called)
            result["ticket"] = self.clerk_view(state.tickets[ticket_id])
        if passed is not None:
            result["no_show"] = passed
        return result

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
        return {"ticket": self.clerk_view(state.tickets[t.id])}

    def _cmd_start(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", action="start")
        batch.emit("ticket.started", self._ref(t, window))
        return {"ticket": self.clerk_view(state.tickets[t.id])}

    def _cmd_complete(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", "serving", action="complete")
        batch.emit("ticket.completed", self._ref(t, window))
        return {"ticket": self.clerk_view(state.tickets[t.id])}

    def _cmd_no_show(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        t = self._current(state, window, "called", action="no-show")
        batch.emit("ticket.no_show", self._ref(t, window))
        return {"ticket": self.clerk_view(state.tickets[t.id])}

    def _cmd_transfer(
        self, state: HallState, batch: _Batch, *, window: str, queue: str, matter: str | None
    ) -> dict[str, Any]:
        t = self._current(state, window, "called", "serving", action="transfer")
        data = {**self._ref(t, window), "queue": queue, "from_queue": t.queue}
        if matter is not None:
            data.update(self._matter_fields(matter))
        batch.emit("ticket.transferred", data)
        reply = self._waiting_reply(state, state.tickets[t.id], batch.epoch)
        reply["ticket"] = {**reply["ticket"], **self.clerk_view(state.tickets[t.id])}
        return reply

    def _cmd_open(self, state: HallState, batch: _Batch, *, window: str, clerk: str | None) -> dict[str, Any]:
        live = state.windows[window]
        if clerk is not None and (live.state != "open" or live.clerk != clerk):
            # a sign-in, or another clerk taking over the open window
            batch.emit("window.opened", {"window": window, "clerk": clerk})
            return {"window": self._window_state(state, window)}
        return self._set_window(state, batch, window, "open", "window.opened")

    def _cmd_pause(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        # pausing with a ticket at the window is fine: it is served to the end, then no new calls
        return self._set_window(state, batch, window, "paused", "window.paused")

    def _cmd_close(self, state: HallState, batch: _Batch, *, window: str) -> dict[str, Any]:
        self._require_free(state, window)
        return self._set_window(state, batch, window, "closed", "window.closed")

    def _cmd_status(self, state: HallState, batch: _Batch | None) -> dict[str, Any]:
        return self._status(state, self._clock())

    def _cmd_ticket_status(
        self, state: HallState, batch: _Batch | None, *, ref: str | None, token: str | None
    ) -> dict[str, Any]:
        """Where a ticket stands now: for the kiosk's "查询" button, the SMS reminders and the
        ticket's status link (by its token)."""
        if token is not None:
            ticket = next((t for t in state.tickets.values() if t.token == token), None)
            if ticket is None:  # the token is not echoed: it is a secret
                raise NotFound(f"token: no ticket with that token today ({state.day})", field="token")
        else:
            ticket = self._find(state, ref or "")
        now = self._clock().timestamp()
        return self._waiting_reply(state, ticket, now)

    def _cmd_confirm(self, state: HallState, batch: _Batch, *, ref: str) -> dict[str, Any]:
        """The kiosk printed the ticket: it waits from now on, in its place by issue time. Again
        for a confirmed one: nothing happens."""
        t = self._find(state, ref)
        if t.status == "void":
            raise Conflict(f"{t.number} is void ({t.void_reason}); it cannot be confirmed", ticket=t.number)
        if t.status == "pending":
            if batch.epoch >= confirm_due(state.pending[t.id], self._hall.print_confirm_s):
                raise Conflict(f"{t.number} was not confirmed within {self._hall.print_confirm_s:g} s; "
                               "central voids it: issue a new ticket", ticket=t.number)
            batch.emit("ticket.confirmed", self._about(t))
        return self._waiting_reply(state, state.tickets[t.id], batch.epoch)

    def _cmd_void(self, state: HallState, batch: _Batch, *, ref: str, reason: str) -> dict[str, Any]:
        """The kiosk could not print the ticket: void for good. Again for a void one: nothing
        happens; a confirmed ticket (the citizen holds it) is never voided."""
        t = self._find(state, ref)
        if t.status not in ("pending", "void"):
            raise Conflict(f"{t.number} is {t.status}: only a ticket pending its print is voided", ticket=t.number)
        if t.status == "pending":
            batch.emit("ticket.voided", {**self._about(t), "reason": reason})
        return {"ticket": self.ticket_view(state.tickets[t.id])}

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

    def _matter_fields(self, matter: str) -> dict[str, str]:
        """``matter`` and, when it has one, its department as of now (events are facts: a later
        config change does not rewrite which department handled a ticket)."""
        department = self._hall.matters[matter].department
        return {"matter": matter, **({"department": department} if department else {})}

    @staticmethod
    def _about(t: Ticket) -> dict[str, Any]:
        return {"ticket": t.id, "number": t.number, "queue": t.queue}

    @staticmethod
    def _ref(t: Ticket, window: str) -> dict[str, Any]:
        return {"ticket": t.id, "number": t.number, "queue": t.queue, "window": window}

    @staticmethod
    def _find(state: HallState, ref: str) -> Ticket:
        """Today's ticket by id or number."""
        ticket = state.tickets.get(ref) or state.tickets.get(f"{state.day}-{ref}")
        if ticket is None:
            raise NotFound(f"ticket: no ticket {ref!r} today ({state.day})", field="ticket")
        return ticket

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
            **({"clerk": live.clerk} if live.clerk else {}),
        }

    def _waiting_counts(self, state: HallState) -> dict[str, int]:
        return {q: state.lines.count(q) for q in self._hall.queues}

    def _last_time(self, state: HallState) -> datetime | None:
        return datetime.fromisoformat(state.last_ts) if state.last_ts else None

    def _status(self, state: HallState, now: datetime | None) -> dict[str, Any]:
        windows = {}
        for w in self._hall.windows:
            doc = self._window_state(state, w)
            del doc["v"]
            windows[w] = doc
        out: dict[str, Any] = {
            "day": state.day,
            "waiting": self._waiting_counts(state),
            "predicted_wait_min": self._predictor.walkin_waits(state, now.timestamp()) if now else {},
            "windows": windows,
        }
        hours = self._hall.hours
        if hours is not None and now is not None:
            out["hours"] = hours.status(self._hall.local(now))
        return out

    @staticmethod
    def _ahead(state: HallState, entry: Waiting) -> int:
        """Tickets of the entry's queue issued before it and waiting (it need not be waiting)."""
        ql = state.lines.by_queue.get(entry.queue)
        return 0 if ql is None else bisect_left(ql.all, entry)

    def _ts_epoch(self, ts: str) -> float:
        """Epoch seconds of an event ts; the events of one command share their ts, so one
        parse per command at most."""
        cached, epoch = self._ts_cache
        if ts != cached:
            epoch = _epoch(ts)
            self._ts_cache = (ts, epoch)
        return epoch

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
        state.last_ts = event.ts
        if event.type == "day.started":  # kept once the state it was folded into is committed
            self._pending_cp = (event.seq, str(state.day), checkpoint_doc(state))

    def _on_day_started(self, state: HallState, event: Event) -> None:
        state.day = event.data["day"]
        kept_from = (date.fromisoformat(state.day) - timedelta(days=APPOINTMENT_KEEP_DAYS)).isoformat()
        for code in [c for c, a in state.appointments.items() if a.day < kept_from]:
            del state.appointments[code]
        state.counters.clear()
        state.tickets.clear()  # unfinished ones are listed as expired in the event
        state.lines.clear()
        state.pending.clear()
        state.calls.clear()
        for live in state.windows.values():
            live.ticket = live.since = None

    def _on_issued(self, state: HallState, event: Event) -> None:
        d = event.data
        m = NUMBER_RE.match(d["number"])
        if m is None:
            raise ValueError(f"bad ticket number {d['number']!r}")
        prefix, n = m.group(1), int(m.group(2))
        t = Ticket(
            id=d["ticket"],
            number=d["number"],
            queue=d["queue"],
            issued_at=event.ts,
            status="pending" if d.get("confirm") else "waiting",
            phone=d.get("phone"),
            token=d.get("token"),
            channel=d.get("channel", "kiosk"),
            priority=d.get("priority", "walkin"),
            slot=d.get("slot"),
            seq=event.seq,
            matter=d.get("matter"),
            appointment=d.get("appointment"),
            online_code=d.get("online_code"),
        )
        entry = _waiting_entry(t)  # checks the priority and the slot before anything changes
        if t.id in state.tickets:
            raise ValueError(f"ticket {t.id} was already issued")
        if t.appointment is not None:
            booked = self._booked(state, t.appointment)
            if booked.cancelled or booked.ticket is not None:
                raise ValueError(f"booking {booked.booking} is {booked.status}")
            state.appointments[t.appointment] = booked.evolve(ticket=t.id)
        state.counters[prefix] = max(state.counters.get(prefix, 0), n)
        state.tickets[t.id] = t
        if t.status == "pending":  # called by nobody until its print is confirmed
            state.pending[t.id] = self._ts_epoch(event.ts)
        else:
            state.lines.add(entry)

    def _on_confirmed(self, state: HallState, event: Event) -> None:
        t = self._pending_ticket(state, event)
        state.tickets[t.id] = confirmed = t.evolve(status="waiting")
        state.lines.add(_waiting_entry(confirmed))  # its seq: in arrival order by issue

    def _on_voided(self, state: HallState, event: Event) -> None:
        t = self._pending_ticket(state, event)
        state.tickets[t.id] = t.evolve(status="void", void_reason=str(event.data["reason"]))
        booked = state.appointments.get(t.appointment or "")
        if booked is not None and booked.ticket == t.id:
            # nothing reached the citizen's hand (or nothing central will call): the code may be used again
            state.appointments[booked.code] = booked.evolve(ticket=None)

    def _on_booked(self, state: HallState, event: Event) -> None:
        d = event.data
        code = d["appointment"]
        old = state.appointments.get(code)
        if old is not None and (old.cancelled or old.ticket is not None):
            raise ValueError(f"booking {old.booking} is {old.status}: it cannot be moved")
        state.appointments[code] = Appointment(
            code=code, booking=int(d["booking"]), queue=d["queue"], slot=d["slot"], day=d["day"],
            matter=d.get("matter"), phone=d.get("phone"),
        )

    def _on_cancelled(self, state: HallState, event: Event) -> None:
        code = event.data["appointment"]
        state.appointments[code] = self._booked(state, code).evolve(cancelled=True)

    @staticmethod
    def _booked(state: HallState, code: str) -> Appointment:
        """The booking an event names (a KeyError would put its code, a secret, in the log)."""
        booked = state.appointments.get(code)
        if booked is None:
            raise ValueError("an event names a booking never booked (or forgotten)")
        return booked

    @staticmethod
    def _pending_ticket(state: HallState, event: Event) -> Ticket:
        """The pending ticket an event confirms or voids, no longer pending."""
        t = state.tickets[event.data["ticket"]]
        if t.status != "pending":
            raise ValueError(f"ticket {t.id} is {t.status}, not pending")
        del state.pending[t.id]
        return t

    def _on_called(self, state: HallState, event: Event) -> None:
        d = event.data
        t = state.tickets[d["ticket"]]
        window = d["window"]
        state.lines.remove(t.id)
        state.tickets[t.id] = t.evolve(
            status="called", window=window, called_at=event.ts, first_window=t.first_window or window,
            first_clerk=t.first_clerk or d.get("clerk"),
        )
        live = state.windows.setdefault(window, WindowRuntime())
        live.ticket, live.since = t.id, self._ts_epoch(event.ts)
        self._board_call(state, t, event)

    def _on_recalled(self, state: HallState, event: Event) -> None:
        d = event.data
        t = state.tickets[d["ticket"]]
        state.tickets[t.id] = t.evolve(recalls=int(d["recalls"]))
        self._board_call(state, t, event)

    def _on_started(self, state: HallState, event: Event) -> None:
        t = state.tickets[event.data["ticket"]]
        state.tickets[t.id] = t.evolve(status="serving")
        live = state.windows.get(event.data["window"])
        if live is not None and live.ticket == t.id:
            live.since = self._ts_epoch(event.ts)  # the service proper starts now

    def _on_finished(self, state: HallState, event: Event) -> None:
        t = state.tickets[event.data["ticket"]]
        status = "done" if event.type == "ticket.completed" else "no_show"
        state.lines.remove(t.id)  # only if a faulty log finishes a waiting ticket
        state.tickets[t.id] = t.evolve(status=status)
        window = event.data["window"]
        live = state.windows.get(window)
        if status == "done" and live is not None and live.ticket == t.id and live.since is not None:
            seconds = self._ts_epoch(event.ts) - live.since
            if seconds >= 0:  # a clock set back says nothing about the service
                self._predictor.learn(state, t, window, seconds)
        self._leave_window(state, window, t.id)

    def _on_transferred(self, state: HallState, event: Event) -> None:
        d = event.data
        t = state.tickets[d["ticket"]]
        if t.status not in AT_WINDOW:
            raise ValueError(f"ticket {t.id} is {t.status}, not at a window")
        moved = t.evolve(
            status="waiting", queue=d["queue"], window=None, called_at=None, recalls=0,
            # a transfer to another section without a matter drops the old one: it was the
            # matter of the old section
            matter=d.get("matter"),
        )
        state.tickets[t.id] = moved
        state.lines.add(_waiting_entry(moved))  # same seq and since: its place in arrival order
        self._leave_window(state, d["window"], t.id)

    def _on_window(self, state: HallState, event: Event) -> None:
        target = _WINDOW_STATE_AFTER[event.type]
        window = event.data["window"]
        live = state.windows.setdefault(window, WindowRuntime())
        live.state = target
        if event.type == "window.opened" and "clerk" in event.data:
            live.clerk = event.data["clerk"]
        elif event.type == "window.closed":
            live.clerk = None  # closing the window signs the clerk out
        spec = self._hall.windows.get(window)
        if spec is None:  # a window since removed from the config
            return
        for q in self._hall.queues if spec.universal else spec.queues:
            self._set_capacity(state, q)

    def _set_capacity(self, state: HallState, q: str) -> None:
        # summed afresh (not +/-) so that rounding never drifts over a long day
        total = 0.0
        for w in self._servers[q]:
            if state.windows.get(w, _CLOSED).state == "open":
                total += self._hall.windows[w].speed_for(q)
        state.lines.capacity[q] = total

    @staticmethod
    def _leave_window(state: HallState, window: str, ticket_id: str) -> None:
        live = state.windows.get(window)
        if live is not None and live.ticket == ticket_id:
            live.ticket = live.since = None

    def _board_call(self, state: HallState, t: Ticket, event: Event) -> None:
        """Add a (re)call to the board, newest last; a recall moves the ticket's line to the end."""
        d = event.data
        calls = [c for c in state.calls if c.ticket != t.id]
        calls.append(BoardCall(t.id, t.number, d["window"], d.get("window_name", d["window"]), event.ts))
        state.calls = calls[-self._hall.board_size :]


_WINDOW_STATE_AFTER = {"window.opened": "open", "window.paused": "paused", "window.closed": "closed"}
_CLOSED = WindowRuntime()


def _number_of(ticket_id: str) -> str:
    """``2026-11-23-A005`` -> ``A005``."""
    return ticket_id.rsplit("-", 1)[-1]


def _masked(value: Any) -> Any:
    """A deep copy of ``value`` with every personal field replaced by its masked form and every
    secret one left out."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in TO_MASK and isinstance(v, str):
                public, mask = TO_MASK[k]
                out[public] = mask(v)
            elif k in TO_MASK or k in SECRET:
                continue  # a secret, or a personal field of an unexpected type: never published
            else:
                out[k] = _masked(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value
