"""The central config file (``hallctl central``): ``[central]``, ``[mqtt]``, ``[store]``, ``[hall]``,
``[[queue]]``, ``[[window]]``, ``[[department]]`` and ``[[matter]]``.

Read with the generic reader (:mod:`hallctl.config.reader`): every error names the file and the
key path (``hall.policy``, ``window[2].kind``). :func:`hallctl.central.hallconfig.hall_from_config`
turns the result into the :class:`~hallctl.central.model.HallSpec` the core runs on.

Nothing about the hall is decided twice here: a setting the file leaves out takes the model's
default (the spec's field default), and the domain rules (calling policies, window kinds, ticket
classes, time zones) are the model's own functions, run as checks of this file's keys. What is
left here is the file's shape: types, ranges, references between sections, duplicates.
See ``config/central.example.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hallctl.access.roles import ROLES, Client
from hallctl.central.hours import OpeningHours
from hallctl.central.model import (
    ALL_QUEUES,
    PREFIX_RE,
    HallSpec,
    MatterSpec,
    QueueSpec,
    WindowSpec,
    policy_problem,
    classes_problem,
    ticket_class_problem,
    ticket_link_problem,
    tz_problem,
    window_kind_problem,
)
from hallctl.config.reader import (
    STORE_FIELDS,
    Field,
    MqttConfig,
    Reader,
    StoreConfig,
    between,
    has_type,
    is_id,
    non_empty,
    parse_mqtt,
    read_toml,
    store_path,
    type_name,
)
from hallctl.errors import ConfigError

__all__ = [
    "HallSettings",
    "QueueConfig",
    "DepartmentConfig",
    "MatterConfig",
    "WindowConfig",
    "CentralConfig",
    "load_central_config",
    "parse_central_config",
]


def _default(spec: type, name: str) -> Any:
    """The model's default for one of its fields: the file's default is the model's."""
    return spec.__dataclass_fields__[name].default


# -- schema dataclasses ---------------------------------------------------------------------


@dataclass(frozen=True)
class HallSettings:
    """``[hall]``: each field is the :class:`HallSpec` keyword of the same name, and its default is
    HallSpec's (hall_from_config passes every field on by name)."""

    tz: str = _default(HallSpec, "tz")
    #: local hour at which ticket numbers restart
    day_reset_hour: int = _default(HallSpec, "day_reset_hour")
    #: how many recent calls the hall board shows
    board_size: int = _default(HallSpec, "board_size")
    #: how many times a ticket may be recalled before it is marked absent
    recall_limit: int = _default(HallSpec, "recall_limit")
    #: calling policy (docs/assignment.md): default | dedicated | fifo | sew
    policy: str = _default(HallSpec, "policy")
    #: age from which an ID card read at the kiosk gives the green channel
    elderly_age: int = _default(HallSpec, "elderly_age")
    #: an appointment is called with priority from this long before its slot
    appointment_grace_s: float = _default(HallSpec, "appointment_grace_s")
    #: an appointment checked in later than this after its slot is issued as a walk-in
    appointment_late_s: float = _default(HallSpec, "appointment_late_s")
    #: a window takes a secondary skill's ticket that has waited this much longer than its own
    overflow_after_s: float = _default(HallSpec, "overflow_after_s")
    #: any ticket waiting longer than this goes first (anti-starvation)
    max_wait_boost_s: float = _default(HallSpec, "max_wait_boost_s")
    #: this share of citizens called within target_wait_s (staffing advice, KPIs)
    target_share: float = _default(HallSpec, "target_share")
    target_wait_s: float = _default(HallSpec, "target_wait_s")
    #: call_next marks a ticket recalled to the limit as no-show and calls the next one
    auto_no_show: bool = _default(HallSpec, "auto_no_show")
    #: when tickets are issued (periods, weekdays, holidays, make-up days); None: always
    hours: OpeningHours | None = _default(HallSpec, "hours")
    #: ticket class -> its own prefix ({green = "L"}: green-channel tickets L001, L002, ...)
    class_prefix: dict[str, str] = field(default_factory=dict)
    #: the hall's name as its kiosks show it (the catalogue); None: none
    name: str | None = _default(HallSpec, "name")
    #: the ticket classes the hall offers; walk-in always
    classes: tuple[str, ...] = _default(HallSpec, "classes")
    #: a ticket pending its print and not confirmed within this is voided
    print_confirm_s: float = _default(HallSpec, "print_confirm_s")
    #: the ticket's status page, with {token}; None: none
    ticket_link: str | None = _default(HallSpec, "ticket_link")


@dataclass(frozen=True)
class QueueConfig:
    id: str
    prefix: str
    name: str
    #: expected service time until central has learned it from the day's services
    expected_service_s: float = _default(QueueSpec, "expected_service_s")


@dataclass(frozen=True)
class DepartmentConfig:
    id: str
    name: str


@dataclass(frozen=True)
class MatterConfig:
    id: str
    name: str
    #: the queue (section) whose windows serve it
    queue: str
    department: str | None = _default(MatterSpec, "department")
    #: prior service time; None: the queue's
    expected_service_s: float | None = _default(MatterSpec, "expected_service_s")


@dataclass(frozen=True)
class WindowConfig:
    id: str
    name: str
    #: queue ids this window serves, in preference order; ("*",) means every queue
    queues: tuple[str, ...] = _default(WindowSpec, "queues")
    #: 综合受理 acceptance | 综合出件 handout | 投诉代办 complaint
    kind: str = _default(WindowSpec, "kind")
    #: speed factor per queue (a clerk twice as fast at tax: {tax = 2.0})
    speed: dict[str, float] = field(default_factory=dict)
    #: how many of the first listed queues are the window's own skill (the rest are overflow)
    primary: int = _default(WindowSpec, "primary")


@dataclass(frozen=True)
class CentralConfig:
    hall: str
    id: str
    mqtt: MqttConfig
    store: StoreConfig
    hall_settings: HallSettings
    queues: tuple[QueueConfig, ...]
    windows: tuple[WindowConfig, ...]
    file: str | None = None
    departments: tuple[DepartmentConfig, ...] = ()
    matters: tuple[MatterConfig, ...] = ()
    #: the hall's clients and their roles (``[[client]]``); None: none listed, every client may
    #: call every action (an open hall)
    clients: tuple[Client, ...] | None = None


# -- field specs ---------------------------------------------------------------------------


def _prefix(value: str) -> str | None:
    if PREFIX_RE.fullmatch(value):
        return None
    return f"invalid ticket prefix {value!r}: 1 to 3 upper-case letters (A, B, GA)"


def _at_least(lo: float, *, strict: bool) -> Callable[[float], str | None]:
    if strict:
        return lambda v: None if v > lo else f"must be > {lo:g}"
    return lambda v: None if v >= lo else f"must be >= {lo:g}"


_HALL_DEFAULTS = HallSettings()


def _hall(name: str, type_: type, check: Callable[[Any], str | None] | None = None) -> Field:
    """A [hall] key whose default is HallSettings' (that is, HallSpec's)."""
    return Field(name, type_, getattr(_HALL_DEFAULTS, name), check)


_CENTRAL_FIELDS = (Field("hall", str, check=is_id), Field("id", str, "central", is_id))
_HALL_FIELDS = (
    _hall("tz", str, tz_problem),
    _hall("day_reset_hour", int, between(0, 23)),
    _hall("board_size", int, between(1, None)),
    _hall("recall_limit", int, between(0, None)),
    _hall("policy", str, policy_problem),
    _hall("elderly_age", int, between(1, 150)),
    _hall("appointment_grace_s", float, _at_least(0, strict=False)),
    _hall("appointment_late_s", float, _at_least(0, strict=False)),
    _hall("overflow_after_s", float, _at_least(0, strict=False)),
    _hall("max_wait_boost_s", float, _at_least(0, strict=True)),
    _hall("target_share", float, lambda v: None if 0 < v < 1 else "must be a share between 0 and 1 (0.8: 80%)"),
    _hall("target_wait_s", float, _at_least(0, strict=True)),
    _hall("auto_no_show", bool),
    _hall("name", str, non_empty),
    _hall("classes", list, classes_problem),
    _hall("print_confirm_s", float, _at_least(0, strict=True)),
    _hall("ticket_link", str, ticket_link_problem),
    Field("hours", list, None),
    Field("weekdays", list, None),
    Field("closed_dates", list, None),
    Field("open_dates", list, None),
    Field("class_prefix", dict, None),
)
_HOURS_KEYS = ("hours", "weekdays", "closed_dates", "open_dates")
_DEPARTMENT_FIELDS = (Field("id", str, check=is_id), Field("name", str, check=non_empty))
_MATTER_FIELDS = (
    Field("id", str, check=is_id),
    Field("name", str, check=non_empty),
    Field("queue", str, check=is_id),
    Field("department", str, MatterConfig.department, is_id),
    Field("expected_service_s", float, MatterConfig.expected_service_s, _at_least(0, strict=True)),
)
_CLIENT_FIELDS = (
    Field("id", str, check=is_id),
    Field("role", str),
    Field("windows", list, None),
)
_QUEUE_FIELDS = (
    Field("id", str, check=is_id),
    Field("prefix", str, check=_prefix),
    Field("name", str, check=non_empty),
    Field("expected_service_s", float, QueueConfig.expected_service_s, _at_least(0, strict=True)),
)
_WINDOW_FIELDS = (
    Field("id", str, check=is_id),
    Field("name", str, check=non_empty),
    Field("queues", list, None),  # None: WindowConfig's default, every queue
    Field("kind", str, WindowConfig.kind, window_kind_problem),
    Field("speed", dict, None),
    Field("primary", int, WindowConfig.primary, between(1, None)),
)


# -- central -------------------------------------------------------------------------------


def parse_central_config(data: Mapping[str, Any], *, file: str | None = None) -> CentralConfig:
    """Validate an already-parsed central config (a dict as ``tomllib`` returns it)."""
    r = Reader(file)
    r.top(data, ("central", "mqtt", "store", "hall", "queue", "window", "department", "matter", "client"))
    if "central" not in data:
        raise r.error("central", "missing required section [central]")
    central = r.table(data["central"], "central", _CENTRAL_FIELDS)
    mqtt = parse_mqtt(r, data)
    store = r.table(data.get("store", {}), "store", STORE_FIELDS)
    hall = _hall_settings(r, r.table(data.get("hall", {}), "hall", _HALL_FIELDS))

    queues = []
    raw_queues = r.array_of_tables(data.get("queue"), "queue")
    if not raw_queues:
        raise r.error("queue", "at least one [[queue]] is required")
    for i, raw in enumerate(raw_queues):
        queues.append(QueueConfig(**r.table(raw, f"queue[{i}]", _QUEUE_FIELDS)))
    r.unique([(f"queue[{i}].id", q.id) for i, q in enumerate(queues)], "queue id")
    r.unique([(f"queue[{i}].prefix", q.prefix) for i, q in enumerate(queues)], "queue prefix")
    queue_ids = [q.id for q in queues]

    windows = []
    raw_windows = r.array_of_tables(data.get("window"), "window")
    if not raw_windows:
        raise r.error("window", "at least one [[window]] is required")
    for i, raw in enumerate(raw_windows):
        where = f"window[{i}]"
        w = r.table(raw, where, _WINDOW_FIELDS)
        served = _window_queues(r, w["queues"], f"{where}.queues", queue_ids)
        speed = w.get("speed") or {}
        for q, factor in speed.items():
            if q not in queue_ids:
                raise r.error(f"{where}.speed.{q}", f"unknown queue {q!r}")
            if not has_type(factor, float) or factor <= 0:
                raise r.error(f"{where}.speed.{q}", "must be a positive number")
        if served != (ALL_QUEUES,) and w["primary"] > len(served):
            raise r.error(f"{where}.primary", f"must be at most the {len(served)} queues listed")
        windows.append(WindowConfig(id=w["id"], name=w["name"], queues=served, kind=w["kind"],
                                    speed={q: float(f) for q, f in speed.items()}, primary=w["primary"]))
    r.unique([(f"window[{i}].id", w.id) for i, w in enumerate(windows)], "window id")

    departments = [
        DepartmentConfig(**r.table(raw, f"department[{i}]", _DEPARTMENT_FIELDS))
        for i, raw in enumerate(r.array_of_tables(data.get("department"), "department"))
    ]
    r.unique([(f"department[{i}].id", d.id) for i, d in enumerate(departments)], "department id")
    department_ids = [d.id for d in departments]
    matters = []
    for i, raw in enumerate(r.array_of_tables(data.get("matter"), "matter")):
        m = r.table(raw, f"matter[{i}]", _MATTER_FIELDS)
        r.known(m["queue"], queue_ids, f"matter[{i}].queue", "queue")
        if m["department"] is not None:
            r.known(m["department"], department_ids, f"matter[{i}].department", "department")
        if m["expected_service_s"] is not None:
            m["expected_service_s"] = float(m["expected_service_s"])
        matters.append(MatterConfig(**m))
    r.unique([(f"matter[{i}].id", m.id) for i, m in enumerate(matters)], "matter id")
    prefixes = {q.prefix: f"queue {q.id!r}" for q in queues}
    for cls, prefix in hall.class_prefix.items():
        if prefix in prefixes:
            raise r.error(f"hall.class_prefix.{cls}", f"prefix {prefix!r} is already {prefixes[prefix]}'s")
        prefixes[prefix] = f"class {cls!r}"

    clients = _clients(r, data.get("client"), central["id"], [w.id for w in windows])

    return CentralConfig(
        hall=central["hall"],
        id=central["id"],
        mqtt=mqtt,
        store=StoreConfig(store_path(store["path"], f"{central['id']}.db", file)),
        hall_settings=hall,
        queues=tuple(queues),
        windows=tuple(windows),
        file=file,
        departments=tuple(departments),
        matters=tuple(matters),
        clients=clients,
    )


def _clients(r: Reader, raw: Any, central_id: str, window_ids: list[str]) -> tuple[Client, ...] | None:
    """``[[client]]``: one credential per node or tool, with its role (hallctl.access.roles)."""
    if raw is None:
        return None
    clients = []
    for i, item in enumerate(r.array_of_tables(raw, "client")):
        where = f"client[{i}]"
        c = r.table(item, where, _CLIENT_FIELDS)
        r.known(c["role"], sorted(ROLES), f"{where}.role", "role")
        if c["id"] == central_id:
            raise r.error(f"{where}.id", f"{c['id']!r} is central's own id ([central] id): it needs no [[client]]")
        windows = c["windows"]
        if c["role"] == "window":
            if not windows:
                raise r.error(f"{where}.windows", "a window client needs the windows it serves (windows = [\"3\"])")
            for j, w in enumerate(windows):
                if not isinstance(w, str):
                    raise r.error(f"{where}.windows[{j}]", f"expected string, got {type_name(w)} ({w!r})")
                r.known(w, window_ids, f"{where}.windows[{j}]", "window")
        elif windows is not None:
            raise r.error(f"{where}.windows", f"only a window client has windows (this one is {c['role']})")
        clients.append(Client(c["id"], c["role"], tuple(windows or ())))
    r.unique([(f"client[{i}].id", c.id) for i, c in enumerate(clients)], "client id")
    return tuple(clients)


def _hall_settings(r: Reader, raw: dict[str, Any]) -> HallSettings:
    """[hall]: the opening hours become one :class:`OpeningHours`; class prefixes are checked."""
    calendar = {k: raw.pop(k) for k in _HOURS_KEYS}
    hours = None
    if calendar["hours"] is not None:
        try:
            hours = OpeningHours.parse(
                calendar["hours"],
                calendar["weekdays"] if calendar["weekdays"] is not None else range(1, 8),
                calendar["closed_dates"] or (),
                calendar["open_dates"] or (),
            )
        except ConfigError as exc:
            raise r.error(f"hall.{exc.key}", exc.problem) from None
    else:
        for k in _HOURS_KEYS[1:]:
            if calendar[k] is not None:
                raise r.error(f"hall.{k}", "needs hall.hours (the opening periods) too")
    class_prefix = raw.pop("class_prefix") or {}
    for cls, prefix in class_prefix.items():
        if (problem := ticket_class_problem(cls)) is not None:
            raise r.error(f"hall.class_prefix.{cls}", problem)
        if not isinstance(prefix, str):
            raise r.error(f"hall.class_prefix.{cls}", f"expected string, got {type_name(prefix)}")
        if (problem := _prefix(prefix)) is not None:
            raise r.error(f"hall.class_prefix.{cls}", problem)
    r.unique([(f"hall.class_prefix.{c}", p) for c, p in class_prefix.items()], "class prefix")
    return HallSettings(**{**raw, "classes": tuple(raw["classes"])}, hours=hours, class_prefix=dict(class_prefix))


def _window_queues(
    r: Reader, raw: list[Any] | None, key: str, queue_ids: list[str]
) -> tuple[str, ...]:
    if raw is None:
        return WindowConfig.queues
    if not raw:
        raise r.error(key, f'must name at least one queue (or "{ALL_QUEUES}" for every queue)')
    for j, q in enumerate(raw):
        if not isinstance(q, str):
            raise r.error(f"{key}[{j}]", f"expected string, got {type_name(q)} ({q!r})")
        if q == ALL_QUEUES:
            if len(raw) > 1:
                raise r.error(f"{key}[{j}]", f'"{ALL_QUEUES}" already means every queue; list it alone')
            continue
        r.known(q, queue_ids, f"{key}[{j}]", "queue")
    if len(set(raw)) != len(raw):
        raise r.error(key, "lists a queue twice")
    return tuple(raw)


def load_central_config(path: str | Path) -> CentralConfig:
    """Read and validate a central config file. Raises :class:`ConfigError`."""
    data, file = read_toml(path)
    return parse_central_config(data, file=file)
