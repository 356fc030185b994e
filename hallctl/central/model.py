"""Value types of the central queue engine: the hall's configuration, tickets and events.

Everything here is plain data (frozen dataclasses) with no I/O, so the same types serve the live
central, the tests and the simulator. Personal data (the citizen's phone) lives only in
:attr:`Ticket.phone` and in the ``phone`` field of a ``ticket.issued`` event; every public view
shows :func:`mask_phone` instead. A birth date read from an ID card is never kept anywhere: only
the ticket class derived from it is.

:class:`WaitingLines` is the one mutable structure here: the waiting tickets, sorted so that a
calling policy (:mod:`hallctl.central.policies`) finds each line's head without copying anything.
"""

from __future__ import annotations

import difflib
import math
import re
from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from operator import attrgetter
from typing import Any, Literal, Mapping, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hallctl.central.hours import OpeningHours
from hallctl.errors import ConfigError
from hallctl.ids import ID_RE  # the one id rule (topic contract v1)
from hallctl.privacy import mask_phone  # noqa: F401  re-exported for the core

#: a ticket prefix as printed on the ticket: "A", "B", "GA"
PREFIX_RE = re.compile(r"^[A-Z]{1,3}$")
#: mainland China mobile number (11 digits, 1[3-9]...)
PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
#: a window's ``queues`` of exactly this means "serves every queue" (a universal window)
ALL_QUEUES = "*"

#: ``pending``: issued but not yet confirmed printed (``ticket.issue {confirm: "print"}``): never
#: called, counted as waiting nowhere; ``void``: its print failed or was never confirmed, for good
TicketStatus = Literal["pending", "waiting", "called", "serving", "done", "no_show", "void"]
WindowState = Literal["open", "paused", "closed"]
#: ticket classes: walk-in (default), appointment (预约, has a slot), green channel (绿色通道),
#: online application (网上件, called like a walk-in)
Priority = Literal["walkin", "appointment", "green", "online"]
PRIORITIES: tuple[str, ...] = ("walkin", "appointment", "green", "online")
#: window kinds: 综合受理 (acceptance), 综合出件 (result hand-out), 投诉代办 (complaints, proxy)
WINDOW_KINDS: tuple[str, ...] = ("acceptance", "handout", "complaint")
#: calling policies (hallctl.central.policies.POLICIES implements each)
POLICY_NAMES: tuple[str, ...] = ("default", "dedicated", "fifo", "sew")

#: the prior expected service time of a queue when its config gives none (10 min)
DEFAULT_SERVICE_S = 600.0


# -- domain rules: the one place each is written. The specs below raise them with the model's
# key; the central config file (hallctl.central.config) runs the same functions as checks of its
# keys, so a file's error names its own key path (``hall.policy``, ``window[2].kind``).


def policy_problem(name: Any) -> str | None:
    """Why ``name`` is no calling policy, or None."""
    return None if name in POLICY_NAMES else f"must be one of {', '.join(POLICY_NAMES)}"


def window_kind_problem(kind: Any) -> str | None:
    """Why ``kind`` is no window kind, or None."""
    return None if kind in WINDOW_KINDS else f"must be one of {', '.join(WINDOW_KINDS)}"


def ticket_class_problem(cls: Any) -> str | None:
    """Why ``cls`` is no ticket class (a key of ``class_prefix``), or None."""
    if cls in PRIORITIES:
        return None
    close = difflib.get_close_matches(str(cls), PRIORITIES, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(PRIORITIES)})"
    return f"unknown class {cls!r}{hint}"


def classes_problem(classes: Any) -> str | None:
    """Why ``classes`` is no list of the ticket classes a hall offers, or None."""
    if isinstance(classes, str) or not isinstance(classes, (list, tuple)):
        return f"must be a list of ticket classes ({', '.join(PRIORITIES)})"
    for cls in classes:
        if (problem := ticket_class_problem(cls)) is not None:
            return problem
    return None


def ticket_link_problem(template: Any) -> str | None:
    """Why ``template`` is no ticket link template (``https://hall.example/t/{token}``), or None."""
    if not isinstance(template, str) or template.count(TOKEN_PLACEHOLDER) != 1:
        return f"must be a text with {TOKEN_PLACEHOLDER} once (https://hall.example/t/{TOKEN_PLACEHOLDER})"
    return None


def tz_problem(name: Any) -> str | None:
    """Why ``name`` is no time zone this machine knows, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"unknown time zone {name!r} (an IANA name such as 'Asia/Shanghai'; is tzdata installed?)"
    return None

#: statuses in which a ticket occupies its window
AT_WINDOW: frozenset[str] = frozenset({"called", "serving"})
#: statuses a ticket never leaves
FINAL: frozenset[str] = frozenset({"done", "no_show", "void"})
#: statuses of a ticket that will still be called in its queue (a pending one once confirmed)
BEFORE_CALL: frozenset[str] = frozenset({"pending", "waiting"})
#: how a ticket.issue may ask to be confirmed before it is called: "print", by the kiosk once
#: its printer has printed it
CONFIRM_MODES: tuple[str, ...] = ("print",)
#: what a ticket link template must hold: where the ticket's token goes
TOKEN_PLACEHOLDER = "{token}"


@dataclass(frozen=True)
class QueueSpec:
    """A ticket class (a matter group). ``prefix`` is printed before the number: "A" -> "A001".

    ``expected_service_s`` is the prior for the wait prediction: the expected service time of one
    of its matters at a window of speed 1.0, used until the core has learned enough real ones.
    """

    id: str
    prefix: str
    name: str
    expected_service_s: float = DEFAULT_SERVICE_S

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"queue id {self.id!r} must match [a-z0-9-]{{1,64}}", key="queues")
        if not isinstance(self.prefix, str) or not PREFIX_RE.match(self.prefix):
            raise ConfigError(
                f"prefix {self.prefix!r} must be 1-3 capital letters", key=f"queues.{self.id}.prefix"
            )
        if not _positive(self.expected_service_s):
            raise ConfigError(
                "must be a positive number of seconds", key=f"queues.{self.id}.expected_service_s"
            )
        object.__setattr__(self, "expected_service_s", float(self.expected_service_s))


@dataclass(frozen=True)
class DepartmentSpec:
    """A department (部门) whose matters the hall handles: 市场监管, 公安, 税务, ..."""

    id: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"department id {self.id!r} must match [a-z0-9-]{{1,64}}", key="departments")


@dataclass(frozen=True)
class MatterSpec:
    """A matter (事项) a citizen comes for: it belongs to a department and is served in one
    section (a queue: its line and prefix). ``expected_service_s`` is the prior of its learned
    service time (None: what its queue has learned so far)."""

    id: str
    name: str
    queue: str
    department: str | None = None
    expected_service_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"matter id {self.id!r} must match [a-z0-9-]{{1,64}}", key="matters")
        if self.expected_service_s is not None:
            if not _positive(self.expected_service_s):
                raise ConfigError(
                    "must be a positive number of seconds", key=f"matters.{self.id}.expected_service_s"
                )
            object.__setattr__(self, "expected_service_s", float(self.expected_service_s))


@dataclass(frozen=True)
class WindowSpec:
    """A service window and the queues it serves, in order of preference.

    ``queues`` is ``("*",)`` for a universal window (every queue, all of them primary). Otherwise
    the first ``primary`` queues are the window's own skill ("1+X": the section it belongs to) and
    the rest are secondary skills it helps with, most preferred first. ``speed`` is a service speed
    factor per queue (1.0 when absent: 2.0 serves that queue's matters twice as fast). ``kind`` is
    what the window is for; the policies treat every kind alike, by its queues.
    """

    id: str
    name: str
    queues: tuple[str, ...] = (ALL_QUEUES,)
    kind: str = "acceptance"
    speed: Mapping[str, float] = field(default_factory=dict, hash=False)
    primary: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"window id {self.id!r} must match [a-z0-9-]{{1,64}}", key="windows")
        queues = tuple(self.queues)  # accept a list from a config file
        object.__setattr__(self, "queues", queues)
        key = f"windows.{self.id}"
        if not queues:
            raise ConfigError("a window must serve at least one queue", key=f"{key}.queues")
        if ALL_QUEUES in queues and len(queues) > 1:
            raise ConfigError('"*" must be the only entry', key=f"{key}.queues")
        if len(set(queues)) != len(queues):
            raise ConfigError("a queue is listed twice", key=f"{key}.queues")
        if (problem := window_kind_problem(self.kind)) is not None:
            raise ConfigError(problem, key=f"{key}.kind")
        if (
            isinstance(self.primary, bool)
            or not isinstance(self.primary, int)
            or not 1 <= self.primary <= len(queues)
        ):
            raise ConfigError(f"must be an integer 1..{len(queues)}", key=f"{key}.primary")
        if not isinstance(self.speed, Mapping):
            raise ConfigError("must be a table of queue = factor", key=f"{key}.speed")
        speed: dict[str, float] = {}
        for q, factor in self.speed.items():
            if not self.universal and q not in queues:
                raise ConfigError(f"window does not serve queue {q!r}", key=f"{key}.speed")
            if not _positive(factor):
                raise ConfigError("must be a positive number", key=f"{key}.speed.{q}")
            speed[q] = float(factor)
        object.__setattr__(self, "speed", speed)

    @property
    def universal(self) -> bool:
        """True for a 综合受理窗口 that takes every queue."""
        return self.queues == (ALL_QUEUES,)

    @property
    def primary_queues(self) -> tuple[str, ...]:
        """The window's own skill: ``("*",)`` for a universal window."""
        return self.queues[: self.primary]

    def serves(self, queue_id: str) -> bool:
        return self.universal or queue_id in self.queues

    def speed_for(self, queue_id: str) -> float:
        return self.speed.get(queue_id, 1.0)


@dataclass(frozen=True)
class HallSpec:
    """One hall's queue configuration.

    ``day_reset_hour`` is the local hour (in ``tz``) at which a business day begins: ticket numbers
    restart at 001 and tickets left over from the day before expire.

    Calling (docs/assignment.md): ``policy`` names the policy; ``elderly_age`` is the age (on the
    day) from which a ticket issued with a birth date becomes green channel;
    ``appointment_grace_s`` how long before its slot an appointment gets priority;
    ``appointment_late_s`` how late after its slot an appointment may still check in as one (a
    later one is issued as a walk-in: 预约过时);
    ``overflow_after_s`` how much longer than a window's own head a secondary queue's head must
    have waited before the window takes it; ``max_wait_boost_s`` the wait after which any ticket
    goes first (anti-starvation).

    These fields' defaults are the hall's defaults: a ``[hall]`` setting the central config file
    leaves out is this default (:class:`hallctl.central.config.HallSettings` reads them here).
    """

    hall_id: str
    queues: dict[str, QueueSpec]
    windows: dict[str, WindowSpec]
    board_size: int = 8
    tz: str = "Asia/Shanghai"
    day_reset_hour: int = 0
    recall_limit: int = 3
    auto_no_show: bool = False
    policy: str = "default"
    elderly_age: int = 65
    appointment_grace_s: float = 120.0
    appointment_late_s: float = 900.0
    overflow_after_s: float = 300.0
    max_wait_boost_s: float = 1200.0
    #: the hall's service target: this share of citizens called within this wait (staffing advice
    #: plans for it, the KPIs report it); 80% within 15 minutes unless the hall says otherwise
    target_share: float = 0.8
    target_wait_s: float = 900.0
    #: matters (事项) by id, each served in one queue; departments they belong to
    matters: dict[str, MatterSpec] = field(default_factory=dict)
    departments: dict[str, DepartmentSpec] = field(default_factory=dict)
    #: ticket class -> prefix numbering that class on its own ("green" -> "L": L001, L002, ...)
    class_prefix: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: when tickets may be issued; None: at any time
    hours: OpeningHours | None = None
    #: the hall's display name (萧山区行政服务中心), for the kiosks' catalogue; None: none given
    name: str | None = None
    #: the ticket classes the hall offers (its kiosks' menu; a ticket.issue of another is refused);
    #: walk-in is always offered, listed or not
    classes: tuple[str, ...] = PRIORITIES
    #: a ticket issued pending its print (``confirm: "print"``) not confirmed within this is voided
    print_confirm_s: float = 60.0
    #: the ticket's status page: a URL with ``{token}`` (the ticket's token goes there); None: none
    ticket_link: str | None = None
    _zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.hall_id, str) or not ID_RE.match(self.hall_id):
            raise ConfigError(f"hall id {self.hall_id!r} must match [a-z0-9-]{{1,64}}", key="hall_id")
        for kind, table in (
            ("queues", self.queues),
            ("windows", self.windows),
            ("matters", self.matters),
            ("departments", self.departments),
        ):
            for key, spec in table.items():
                if key != spec.id:
                    raise ConfigError(f"key {key!r} differs from its id {spec.id!r}", key=kind)
        if not self.queues:
            raise ConfigError("at least one queue is needed", key="queues")
        for window in self.windows.values():
            for q in window.queues:
                if q != ALL_QUEUES and q not in self.queues:
                    raise ConfigError(f"unknown queue {q!r}", key=f"windows.{window.id}.queues")
            for q in window.speed:
                if q not in self.queues:
                    raise ConfigError(f"unknown queue {q!r}", key=f"windows.{window.id}.speed")
        for matter in self.matters.values():
            if matter.queue not in self.queues:
                raise ConfigError(f"unknown queue {matter.queue!r}", key=f"matters.{matter.id}.queue")
            if matter.department is not None and matter.department not in self.departments:
                raise ConfigError(
                    f"unknown department {matter.department!r}", key=f"matters.{matter.id}.department"
                )
        queue_prefixes = {q.prefix: q.id for q in self.queues.values()}
        if not isinstance(self.class_prefix, Mapping):
            raise ConfigError("must be a table of class = prefix", key="class_prefix")
        for cls, prefix in self.class_prefix.items():
            if (problem := ticket_class_problem(cls)) is not None:
                raise ConfigError(problem, key="class_prefix")
            if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
                raise ConfigError(f"prefix {prefix!r} must be 1-3 capital letters", key=f"class_prefix.{cls}")
            if prefix in queue_prefixes:
                raise ConfigError(
                    f"prefix {prefix!r} is queue {queue_prefixes[prefix]!r}'s; a class needs its own",
                    key=f"class_prefix.{cls}",
                )
        if len(set(self.class_prefix.values())) != len(self.class_prefix):
            raise ConfigError("two classes share a prefix", key="class_prefix")
        object.__setattr__(self, "class_prefix", dict(self.class_prefix))
        if self.hours is not None and not isinstance(self.hours, OpeningHours):
            raise ConfigError("must be OpeningHours", key="hours")
        if not isinstance(self.board_size, int) or self.board_size < 1:
            raise ConfigError("must be a positive integer", key="board_size")
        if not isinstance(self.day_reset_hour, int) or not 0 <= self.day_reset_hour <= 23:
            raise ConfigError("must be an hour 0..23", key="day_reset_hour")
        if not isinstance(self.recall_limit, int) or self.recall_limit < 0:
            raise ConfigError("must be a non-negative integer", key="recall_limit")
        if not isinstance(self.auto_no_show, bool):
            raise ConfigError("must be true or false", key="auto_no_show")
        if (problem := policy_problem(self.policy)) is not None:
            raise ConfigError(problem, key="policy")
        age = self.elderly_age
        if isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= 150:
            raise ConfigError("must be an age 1..150", key="elderly_age")
        for name, zero in (
            ("appointment_grace_s", True),
            ("appointment_late_s", True),
            ("overflow_after_s", True),
            ("max_wait_boost_s", False),
            ("target_wait_s", False),
        ):
            value = getattr(self, name)
            if not _positive(value, zero=zero):
                sign = "non-negative" if zero else "positive"
                raise ConfigError(f"must be a {sign} number of seconds", key=name)
            object.__setattr__(self, name, float(value))
        share = self.target_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise ConfigError("must be a share between 0 and 1 (0.8: 80%)", key="target_share")
        object.__setattr__(self, "target_share", float(share))
        if (problem := tz_problem(self.tz)) is not None:
            raise ConfigError(problem, key="tz")
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ConfigError("must be a non-empty text", key="name")
        if (problem := classes_problem(self.classes)) is not None:
            raise ConfigError(problem, key="classes")
        offered = {"walkin", *self.classes}
        object.__setattr__(self, "classes", tuple(c for c in PRIORITIES if c in offered))
        if not _positive(self.print_confirm_s):
            raise ConfigError("must be a positive number of seconds", key="print_confirm_s")
        object.__setattr__(self, "print_confirm_s", float(self.print_confirm_s))
        if self.ticket_link is not None and (problem := ticket_link_problem(self.ticket_link)) is not None:
            raise ConfigError(problem, key="ticket_link")

    @property
    def zone(self) -> tzinfo:
        return self._zone

    def local(self, when: datetime) -> datetime:
        """``when`` (timezone-aware) in the hall's local time."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return when.astimezone(self._zone)

    def prefix_for(self, queue: str, priority: str) -> str:
        """The prefix a new ticket is numbered under: its class's own, else its queue's."""
        return self.class_prefix.get(priority) or self.queues[queue].prefix

    def business_day(self, when: datetime) -> str:
        """The business day ``when`` belongs to, as ``YYYY-MM-DD`` (starts at ``day_reset_hour``)."""
        return (self.local(when) - timedelta(hours=self.day_reset_hour)).date().isoformat()


@dataclass(frozen=True)
class Ticket:
    """One ticket of the current business day. ``phone`` and ``token`` are private: never put
    them in a view.

    ``seq`` is the seq of its ``ticket.issued`` event (its place in the arrival order, kept across a
    transfer); ``first_window`` the window that first called it (首办: the first handler).
    """

    id: str
    number: str
    queue: str
    issued_at: str
    status: TicketStatus = "waiting"
    window: str | None = None
    called_at: str | None = None
    recalls: int = 0
    phone: str | None = field(default=None, repr=False)
    channel: str = "kiosk"
    priority: str = "walkin"
    slot: str | None = None
    first_window: str | None = None
    #: the clerk signed in at that window when it first called the ticket (首问首办责任制)
    first_clerk: str | None = None
    seq: int = 0
    #: the matter (事项) the citizen came for, when the kiosk asked
    matter: str | None = None
    #: the unguessable key of its status link; only the issuing client is told it
    token: str | None = field(default=None, repr=False)
    #: why a void ticket was voided ("paper_out", "not_confirmed", ...)
    void_reason: str | None = None
    #: the appointment code it was issued for (private: never in a view; its void frees the code)
    appointment: str | None = field(default=None, repr=False)
    #: the online application's code (网上件); private: only the window that calls it is told
    online_code: str | None = field(default=None, repr=False)

    def evolve(self, **changes: Any) -> "Ticket":
        """A copy with ``changes``: ``dataclasses.replace`` without its cost (~6x faster; a
        Ticket has no checks to rerun). Unknown field names are refused."""
        for name in changes:
            if name not in _TICKET_FIELDS:
                raise TypeError(f"Ticket has no field {name!r}")
        new = object.__new__(Ticket)
        attrs = new.__dict__
        attrs.update(self.__dict__)
        attrs.update(changes)
        return new


_TICKET_FIELDS = frozenset(Ticket.__dataclass_fields__)

#: an appointment's code as the booking system (预约平台) gives it; also an online application's
#: acceptance code (网上申报受理编号) as citizens type it
CODE_RE = re.compile(r"^[A-Z0-9]{6,20}$")
#: a booking is kept this many days after its slot's day, so that a citizen who comes late by a
#: day is told "for another day" rather than "unknown"; then it is forgotten
APPOINTMENT_KEEP_DAYS = 7


@dataclass(frozen=True)
class Appointment:
    """A booking made by the hall's booking system (``appointment.book``), by its code.

    ``booking`` is its public number (the seq of the event that first booked the code: the code
    itself is a secret, like a ticket's token, and never published). ``day`` is the business day
    of ``slot`` as it was when booked. ``ticket`` is the id of the ticket issued from it (None:
    not used, or that ticket's print was voided, which frees the code). ``phone`` is private.
    """

    code: str = field(repr=False)
    booking: int
    queue: str
    slot: str
    day: str
    matter: str | None = None
    phone: str | None = field(default=None, repr=False)
    cancelled: bool = False
    ticket: str | None = None

    @property
    def status(self) -> str:
        """``booked``, ``used`` (a ticket was issued from it) or ``cancelled``."""
        return "cancelled" if self.cancelled else "booked" if self.ticket is None else "used"

    def evolve(self, **changes: Any) -> "Appointment":
        return replace(self, **changes)


@dataclass(frozen=True)
class Event:
    """One fact in the event log. ``seq`` is contiguous from 1; ``ts`` is ISO 8601 with offset."""

    seq: int
    type: str
    ts: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "ts": self.ts, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Event":
        return cls(seq=int(d["seq"]), type=str(d["type"]), ts=str(d["ts"]), data=dict(d["data"]))


def _positive(value: Any, *, zero: bool = False) -> bool:
    """A finite real number > 0 (or >= 0 with ``zero``); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value >= 0 if zero else value > 0


# ---------------------------------------------------------------------------------------------
# waiting lines: what a calling policy reads


class Waiting(NamedTuple):
    """A waiting ticket as the policies see it. Sorts by ``seq`` (arrival order)."""

    seq: int  #: seq of the ticket.issued event: arrival order, unique
    ticket: str
    queue: str
    priority: str
    #: epoch seconds the ticket counts its wait from: issued_at, or max(issued_at, slot) for an
    #: appointment (one that came early is not "waiting" before its slot)
    since: float
    slot: float | None  #: epoch seconds of an appointment's slot, else None
    matter: str | None = None  #: its matter, when known (the prediction weighs it)


#: longest waiting first: by ``since`` (for an appointment the slot, or arrival if later), then
#: arrival. The order of an appointment line, and of "who waited longest" across lines.
BY_SINCE = attrgetter("since", "seq")
SINCE = attrgetter("since")
#: which class line of its queue a ticket of each priority waits in
CLASS_LINE: dict[str, str] = {
    "green": "green",
    "appointment": "appt",
    "walkin": "ordinary",
    "online": "ordinary",
}


class QueueLines:
    """One queue's waiting tickets, each in ``all`` (by seq) and in its class line.

    ``green`` and ``ordinary`` (walk-in and online) are by seq; ``appt`` by :data:`BY_SINCE`.
    ``matters`` counts the waiting tickets that name a matter, per matter.
    """

    __slots__ = ("all", "green", "appt", "ordinary", "matters")

    def __init__(self) -> None:
        self.all: list[Waiting] = []
        self.green: list[Waiting] = []
        self.appt: list[Waiting] = []
        self.ordinary: list[Waiting] = []
        self.matters: dict[str, int] = {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueLines):
            return NotImplemented
        return (self.all, self.green, self.appt, self.ordinary) == (
            other.all, other.green, other.appt, other.ordinary
        )

    def __repr__(self) -> str:
        return f"QueueLines({[w.ticket for w in self.all]})"


class WaitingLines:
    """Every waiting ticket, per queue and class, plus each queue's open serving capacity.

    Policies get this object as their read-only *view*: ``by_queue`` holds only queues with
    someone waiting, so a head is ``by_queue[q].green[0]`` etc. Adding and removing cost a bisect
    and a list insert/delete (C memmove) per line, never a copy. Only the core changes it.
    """

    __slots__ = ("by_queue", "entries", "capacity", "n_green", "n_appt")

    def __init__(self) -> None:
        self.by_queue: dict[str, QueueLines] = {}  # queue -> its lines; non-empty queues only
        self.entries: dict[str, Waiting] = {}  # ticket id -> its entry
        #: queue -> sum of speed factors of the OPEN windows that list it (any skill level)
        self.capacity: dict[str, float] = {}
        self.n_green = 0  # waiting green-channel tickets, hall-wide
        self.n_appt = 0  # waiting appointments, hall-wide

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaitingLines):
            return NotImplemented
        return (self.by_queue, self.entries, self.capacity) == (
            other.by_queue, other.entries, other.capacity
        )

    def __repr__(self) -> str:
        return f"WaitingLines({self.by_queue!r})"

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self.entries

    def count(self, queue: str) -> int:
        ql = self.by_queue.get(queue)
        return 0 if ql is None else len(ql.all)

    def add(self, entry: Waiting) -> None:
        if entry.ticket in self.entries:
            raise ValueError(f"ticket {entry.ticket} is already waiting")
        ql = self.by_queue.get(entry.queue)
        if ql is None:
            ql = self.by_queue[entry.queue] = QueueLines()
        self.entries[entry.ticket] = entry
        _insert(ql.all, entry)
        if entry.matter is not None:
            ql.matters[entry.matter] = ql.matters.get(entry.matter, 0) + 1
        cls = CLASS_LINE[entry.priority]
        if cls == "appt":
            insort(ql.appt, entry, key=BY_SINCE)
            self.n_appt += 1
        else:
            _insert(ql.green if cls == "green" else ql.ordinary, entry)
            self.n_green += cls == "green"

    def remove(self, ticket_id: str) -> Waiting | None:
        """Take a ticket out of its lines; None if it was not waiting."""
        entry = self.entries.pop(ticket_id, None)
        if entry is None:
            return None
        ql = self.by_queue[entry.queue]
        del ql.all[bisect_left(ql.all, entry)]
        if entry.matter is not None:
            left = ql.matters[entry.matter] - 1
            if left:
                ql.matters[entry.matter] = left
            else:
                del ql.matters[entry.matter]
        cls = CLASS_LINE[entry.priority]
        if cls == "appt":
            del ql.appt[bisect_left(ql.appt, BY_SINCE(entry), key=BY_SINCE)]
            self.n_appt -= 1
        else:
            line = ql.green if cls == "green" else ql.ordinary
            del line[bisect_left(line, entry)]
            self.n_green -= cls == "green"
        if not ql.all:
            del self.by_queue[entry.queue]
        return entry

    def clear(self) -> None:
        """Forget every waiting ticket (a new day); capacity stays, it follows the windows."""
        self.by_queue.clear()
        self.entries.clear()
        self.n_green = self.n_appt = 0


def _insert(line: list[Waiting], entry: Waiting) -> None:
    """Insert by seq; the common case (a new ticket, the highest seq yet) is an append."""
    if not line or line[-1].seq < entry.seq:
        line.append(entry)
    else:
        insort(line, entry)
