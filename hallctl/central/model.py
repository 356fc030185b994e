"""Value types of the central queue engine: the hall's configuration, tickets and events.

Everything here is plain data (frozen dataclasses) with no I/O, so the same types serve the live
central, the tests and the simulator. Personal data (the citizen's phone) lives only in
:attr:`Ticket.phone` and in the ``phone`` field of a ``ticket.issued`` event; every public view
shows :func:`mask_phone` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hallctl.errors import ConfigError

#: ids that may appear in MQTT topics (topic contract v1)
ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
#: a ticket prefix as printed on the ticket: "A", "B", "GA"
PREFIX_RE = re.compile(r"^[A-Z]{1,3}$")
#: mainland China mobile number (11 digits, 1[3-9]...)
PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
#: a window's ``queues`` of exactly this means "serves every queue" (a universal window)
ALL_QUEUES = "*"

TicketStatus = Literal["waiting", "called", "serving", "done", "no_show"]
WindowState = Literal["open", "paused", "closed"]

#: statuses in which a ticket occupies its window
AT_WINDOW: frozenset[str] = frozenset({"called", "serving"})
#: statuses a ticket never leaves
FINAL: frozenset[str] = frozenset({"done", "no_show"})


@dataclass(frozen=True)
class QueueSpec:
    """A ticket class (a matter group). ``prefix`` is printed before the number: "A" -> "A001"."""

    id: str
    prefix: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"queue id {self.id!r} must match [a-z0-9-]{{1,64}}", key="queues")
        if not isinstance(self.prefix, str) or not PREFIX_RE.match(self.prefix):
            raise ConfigError(
                f"prefix {self.prefix!r} must be 1-3 capital letters", key=f"queues.{self.id}.prefix"
            )


@dataclass(frozen=True)
class WindowSpec:
    """A service window and the queues it serves; ``("*",)`` means every queue."""

    id: str
    name: str
    queues: tuple[str, ...] = (ALL_QUEUES,)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_RE.match(self.id):
            raise ConfigError(f"window id {self.id!r} must match [a-z0-9-]{{1,64}}", key="windows")
        queues = tuple(self.queues)  # accept a list from a config file
        object.__setattr__(self, "queues", queues)
        if not queues:
            raise ConfigError("a window must serve at least one queue", key=f"windows.{self.id}.queues")
        if ALL_QUEUES in queues and len(queues) > 1:
            raise ConfigError('"*" must be the only entry', key=f"windows.{self.id}.queues")

    @property
    def universal(self) -> bool:
        """True for a 综合受理窗口 that takes every queue."""
        return self.queues == (ALL_QUEUES,)

    def serves(self, queue_id: str) -> bool:
        return self.universal or queue_id in self.queues


@dataclass(frozen=True)
class HallSpec:
    """One hall's queue configuration.

    ``day_reset_hour`` is the local hour (in ``tz``) at which a business day begins: ticket numbers
    restart at 001 and tickets left over from the day before expire.
    """

    hall_id: str
    queues: dict[str, QueueSpec]
    windows: dict[str, WindowSpec]
    board_size: int = 8
    tz: str = "Asia/Shanghai"
    day_reset_hour: int = 0
    recall_limit: int = 3
    _zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.hall_id, str) or not ID_RE.match(self.hall_id):
            raise ConfigError(f"hall id {self.hall_id!r} must match [a-z0-9-]{{1,64}}", key="hall_id")
        for kind, table in (("queues", self.queues), ("windows", self.windows)):
            for key, spec in table.items():
                if key != spec.id:
                    raise ConfigError(f"key {key!r} differs from its id {spec.id!r}", key=kind)
        if not self.queues:
            raise ConfigError("at least one queue is needed", key="queues")
        for window in self.windows.values():
            for q in window.queues:
                if q != ALL_QUEUES and q not in self.queues:
                    raise ConfigError(f"unknown queue {q!r}", key=f"windows.{window.id}.queues")
        if not isinstance(self.board_size, int) or self.board_size < 1:
            raise ConfigError("must be a positive integer", key="board_size")
        if not isinstance(self.day_reset_hour, int) or not 0 <= self.day_reset_hour <= 23:
            raise ConfigError("must be an hour 0..23", key="day_reset_hour")
        if not isinstance(self.recall_limit, int) or self.recall_limit < 0:
            raise ConfigError("must be a non-negative integer", key="recall_limit")
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone ({exc}); is tzdata installed?", key="tz") from None
        object.__setattr__(self, "_zone", zone)

    @property
    def zone(self) -> tzinfo:
        return self._zone

    def local(self, when: datetime) -> datetime:
        """``when`` (timezone-aware) in the hall's local time."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return when.astimezone(self._zone)

    def business_day(self, when: datetime) -> str:
        """The business day ``when`` belongs to, as ``YYYY-MM-DD`` (starts at ``day_reset_hour``)."""
        return (self.local(when) - timedelta(hours=self.day_reset_hour)).date().isoformat()


@dataclass(frozen=True)
class Ticket:
    """One ticket of the current business day. ``phone`` is private: never put it in a view."""

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


def mask_phone(phone: str) -> str:
    """``"13800138000"`` -> ``"138****8000"``. Anything too short to mask safely is fully hidden."""
    if not isinstance(phone, str) or len(phone) < 8:
        return "****"
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"
