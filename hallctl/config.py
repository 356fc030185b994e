"""Node and central configuration: TOML files checked against a fixed schema.

Every problem is a :class:`hallctl.errors.ConfigError` naming the file, the key path and what is
wrong, e.g. ``/etc/hallctl/node.toml: device[1].profile: expected string, got integer``.
Array entries are counted from 0 (``device[0]`` is the first ``[[device]]``). An unknown key is
an error, not a silent ignore: a misspelt ``keepalive`` would otherwise quietly fall back to the
default. See ``config/node.example.toml`` and ``config/central.example.toml``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hallctl.central.hours import OpeningHours
from hallctl.central.model import POLICY_NAMES, PRIORITIES, WINDOW_KINDS
from hallctl.errors import ConfigError
from hallctl.ids import ID_RE, id_problem

__all__ = [
    "MqttConfig",
    "StoreConfig",
    "DeviceConfig",
    "NodeConfig",
    "HallSettings",
    "QueueConfig",
    "DepartmentConfig",
    "MatterConfig",
    "WindowConfig",
    "CentralConfig",
    "load_node_config",
    "parse_node_config",
    "load_central_config",
    "parse_central_config",
]

#: ticket prefixes: the letters printed and spoken before the number ("A012")
PREFIX_PATTERN = re.compile(r"[A-Z]{1,3}")
DEFAULT_STATE_DIR = Path("/var/lib/hallctl")


# -- schema dataclasses ---------------------------------------------------------------------


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or reprs
    keepalive: int = 15


@dataclass(frozen=True)
class StoreConfig:
    #: SQLite file (the node's outbox, or central's database)
    path: Path


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    #: firmware profile id (a file stem under firmware_profiles/)
    profile: str
    #: the app that drives this device, e.g. "window_display"; None for diagnostics only
    app: str | None = None
    #: device-specific options: the driver's (port, address, ...) and its app's (window, ...)
    options: dict[str, Any] = field(default_factory=dict)
    #: seconds between health probes while the device is idle
    probe_interval_s: float = 15.0


@dataclass(frozen=True)
class NodeConfig:
    id: str
    hall: str
    mqtt: MqttConfig
    store: StoreConfig
    devices: tuple[DeviceConfig, ...]
    file: str | None = None
    #: folders of the site's own firmware profiles (*.toml), read after the shipped ones
    profile_dirs: tuple[Path, ...] = ()
    #: Python modules imported at start that register the site's own kinds, drivers and apps
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class HallSettings:
    tz: str = "Asia/Shanghai"
    #: local hour at which ticket numbers restart
    day_reset_hour: int = 0
    #: how many recent calls the hall board shows
    board_size: int = 8
    #: how many times a ticket may be recalled before it is marked absent
    recall_limit: int = 3
    #: calling policy (docs/assignment.md): default | dedicated | fifo | sew
    policy: str = "default"
    #: age from which an ID card read at the kiosk gives the green channel
    elderly_age: int = 65
    #: an appointment is called with priority from this long before its slot
    appointment_grace_s: float = 120.0
    #: an appointment checked in later than this after its slot is issued as a walk-in
    appointment_late_s: float = 900.0
    #: a window takes a secondary skill's ticket that has waited this much longer than its own
    overflow_after_s: float = 300.0
    #: any ticket waiting longer than this goes first (anti-starvation)
    max_wait_boost_s: float = 1200.0
    #: call_next marks a ticket recalled to the limit as no-show and calls the next one
    auto_no_show: bool = False
    #: when tickets are issued (periods, weekdays, holidays, make-up days); None: always
    hours: OpeningHours | None = None
    #: ticket class -> its own prefix ({green = "L"}: green-channel tickets L001, L002, ...)
    class_prefix: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueConfig:
    id: str
    prefix: str
    name: str
    #: expected service time until central has learned it from the day's services
    expected_service_s: float = 600.0


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
    department: str | None = None
    #: prior service time; None: the queue's
    expected_service_s: float | None = None


@dataclass(frozen=True)
class WindowConfig:
    id: str
    name: str
    #: queue ids this window serves, in preference order; ("*",) means every queue
    queues: tuple[str, ...] = ("*",)
    #: 综合受理 acceptance | 综合出件 handout | 投诉代办 complaint
    kind: str = "acceptance"
    #: speed factor per queue (a clerk twice as fast at tax: {tax = 2.0})
    speed: dict[str, float] = field(default_factory=dict)
    #: how many of the first listed queues are the window's own skill (the rest are overflow)
    primary: int = 1


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


# -- field specs ---------------------------------------------------------------------------

_REQUIRED: Any = object()
_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean", float: "number", list: "array",
               dict: "table"}


@dataclass(frozen=True)
class _Field:
    name: str
    type: type
    default: Any = _REQUIRED
    #: extra check: returns a problem text, or None when the value is fine
    check: Callable[[Any], str | None] | None = None


def _is_id(value: str) -> str | None:
    return id_problem(value)


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _between(lo: int, hi: int | None) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        if value < lo or (hi is not None and value > hi):
            upper = f"..{hi}" if hi is not None else " or more"
            return f"must be {lo}{upper}, got {value}"
        return None

    return check


def _tz(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (an IANA name such as 'Asia/Shanghai')"
    return None


def _prefix(value: str) -> str | None:
    if PREFIX_PATTERN.fullmatch(value):
        return None
    return f"invalid ticket prefix {value!r}: 1 to 3 upper-case letters (A, B, GA)"


_MQTT_FIELDS = (
    _Field("host", str, "127.0.0.1", _non_empty),
    _Field("port", int, 1883, _between(1, 65535)),
    _Field("username", str, None),
    _Field("password", str, None),
    _Field("keepalive", int, 15, _between(1, 65535)),
)
_STORE_FIELDS = (_Field("path", str, None, _non_empty),)
_NODE_FIELDS = (_Field("id", str, check=_is_id), _Field("hall", str, check=_is_id),
                _Field("profile_dirs", list, None), _Field("plugins", list, None))
_DEVICE_FIELDS = (
    _Field("id", str, check=_is_id),
    _Field("profile", str, check=_non_empty),
    _Field("app", str, None, _non_empty),
    _Field("options", dict, None),
    _Field("probe_interval_s", float, 15.0, lambda v: None if 0.1 <= v <= 3600 else "must be 0.1..3600 seconds"),
)
_CENTRAL_FIELDS = (_Field("hall", str, check=_is_id), _Field("id", str, "central", _is_id))
_HALL_FIELDS = (
    _Field("tz", str, "Asia/Shanghai", _tz),
    _Field("day_reset_hour", int, 0, _between(0, 23)),
    _Field("board_size", int, 8, _between(1, None)),
    _Field("recall_limit", int, 3, _between(0, None)),
    _Field("policy", str, "default", lambda v: None if v in POLICY_NAMES else f"one of {', '.join(POLICY_NAMES)}"),
    _Field("elderly_age", int, 65, _between(1, 150)),
    _Field("appointment_grace_s", float, 120.0, lambda v: None if v >= 0 else "must be >= 0"),
    _Field("appointment_late_s", float, 900.0, lambda v: None if v >= 0 else "must be >= 0"),
    _Field("overflow_after_s", float, 300.0, lambda v: None if v >= 0 else "must be >= 0"),
    _Field("max_wait_boost_s", float, 1200.0, lambda v: None if v > 0 else "must be > 0"),
    _Field("auto_no_show", bool, False),
    _Field("hours", list, None),
    _Field("weekdays", list, None),
    _Field("closed_dates", list, None),
    _Field("open_dates", list, None),
    _Field("class_prefix", dict, None),
)
_HOURS_KEYS = ("hours", "weekdays", "closed_dates", "open_dates")
_DEPARTMENT_FIELDS = (_Field("id", str, check=_is_id), _Field("name", str, check=_non_empty))
_MATTER_FIELDS = (
    _Field("id", str, check=_is_id),
    _Field("name", str, check=_non_empty),
    _Field("queue", str, check=_is_id),
    _Field("department", str, None, _is_id),
    _Field("expected_service_s", float, None, lambda v: None if v > 0 else "must be > 0"),
)
_QUEUE_FIELDS = (
    _Field("id", str, check=_is_id),
    _Field("prefix", str, check=_prefix),
    _Field("name", str, check=_non_empty),
    _Field("expected_service_s", float, 600.0, lambda v: None if v > 0 else "must be > 0"),
)
_WINDOW_FIELDS = (
    _Field("id", str, check=_is_id),
    _Field("name", str, check=_non_empty),
    _Field("queues", list, None),
    _Field("kind", str, "acceptance", lambda v: None if v in WINDOW_KINDS else f"one of {', '.join(WINDOW_KINDS)}"),
    _Field("speed", dict, None),
    _Field("primary", int, 1, _between(1, None)),
)

_DEVICE_HINT = "device-specific settings go in [device.options]"


# -- generic reader --------------------------------------------------------------------------


class _Reader:
    """Checks tables against field specs, raising ConfigError with file and key path."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(problem, file=self.file, key=key or None)

    def table(
        self,
        raw: Any,
        where: str,
        fields: tuple[_Field, ...],
        *,
        hint: str | None = None,
    ) -> dict[str, Any]:
        """Validate one table; returns every field's value (defaults filled in)."""
        if not isinstance(raw, dict):
            raise self.error(where, f"expected table, got {_type_name(raw)}")
        names = [f.name for f in fields]
        for key in raw:
            if key not in names:
                raise self.error(_join(where, key), _unknown(key, names, hint))
        out: dict[str, Any] = {}
        for f in fields:
            key = _join(where, f.name)
            if f.name not in raw:
                if f.default is _REQUIRED:
                    raise self.error(key, f"missing required key {f.name!r}")
                out[f.name] = f.default
                continue
            value = raw[f.name]
            if not _has_type(value, f.type):
                raise self.error(
                    key, f"expected {_TYPE_NAMES[f.type]}, got {_type_name(value)} ({value!r})"
                )
            if f.check is not None:
                problem = f.check(value)
                if problem:
                    raise self.error(key, problem)
            out[f.name] = value
        return out

    def array_of_tables(self, raw: Any, where: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.error(
                where, f"expected array of tables ([[{where}]]), got {_type_name(raw)}"
            )
        return raw

    def top(self, data: Any, sections: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise self.error(None, f"expected a TOML document (table), got {_type_name(data)}")
        for key in data:
            if key not in sections:
                raise self.error(key, _unknown(key, list(sections), None, what="section"))

    def unique(self, values: list[tuple[str, str]], what: str) -> None:
        """``values``: (key path, value) pairs that must be distinct."""
        seen: dict[str, str] = {}
        for key, value in values:
            if value in seen:
                raise self.error(key, f"duplicate {what} {value!r} (already used at {seen[value]})")
            seen[value] = key


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _has_type(value: Any, want: type) -> bool:
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, want)


def _type_name(value: Any) -> str:
    for t, name in _TYPE_NAMES.items():
        if _has_type(value, t):
            return name
    return type(value).__name__


def _unknown(key: str, allowed: list[str], hint: str | None, what: str = "key") -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    text = f"unknown {what} {key!r}"
    if close:
        text += f"; did you mean {close[0]!r}?"
    else:
        text += f" (allowed: {', '.join(allowed)})"
    if hint:
        text += f"; {hint}"
    return text


def _read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    file = str(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), file
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", file=file) from None


def _store_path(value: str | None, default_name: str, file: str | None) -> Path:
    if value is None:
        return DEFAULT_STATE_DIR / default_name
    path = Path(value)
    # A relative path is relative to the config file, not to wherever the daemon was started.
    if not path.is_absolute() and file is not None:
        path = Path(file).resolve().parent / path
    return path


def _mqtt(r: _Reader, data: Mapping[str, Any]) -> MqttConfig:
    return MqttConfig(**r.table(data.get("mqtt", {}), "mqtt", _MQTT_FIELDS))


# -- node ----------------------------------------------------------------------------------


def parse_node_config(data: Mapping[str, Any], *, file: str | None = None) -> NodeConfig:
    """Validate an already-parsed node config (a dict as ``tomllib`` returns it)."""
    r = _Reader(file)
    r.top(data, ("node", "mqtt", "store", "device"))
    if "node" not in data:
        raise r.error("node", "missing required section [node]")
    node = r.table(data["node"], "node", _NODE_FIELDS)
    mqtt = _mqtt(r, data)
    store = r.table(data.get("store", {}), "store", _STORE_FIELDS)
    devices = []
    raw_devices = r.array_of_tables(data.get("device"), "device")
    for i, raw in enumerate(raw_devices):
        where = f"device[{i}]"
        d = r.table(raw, where, _DEVICE_FIELDS, hint=_DEVICE_HINT)
        devices.append(DeviceConfig(
            id=d["id"], profile=d["profile"], app=d["app"], options=dict(d["options"] or {}),
            probe_interval_s=float(d["probe_interval_s"]),
        ))
    r.unique([(f"device[{i}].id", d.id) for i, d in enumerate(devices)], "device id")
    profile_dirs = []
    for j, d in enumerate(node["profile_dirs"] or []):
        if not isinstance(d, str) or not d.strip():
            raise r.error(f"node.profile_dirs[{j}]", f"expected a folder path, got {d!r}")
        profile_dirs.append(_store_path(d, "", file))
    plugins = node["plugins"] or []
    for j, name in enumerate(plugins):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
            raise r.error(f"node.plugins[{j}]", f"expected a Python module name, got {name!r}")
    return NodeConfig(
        id=node["id"],
        hall=node["hall"],
        mqtt=mqtt,
        store=StoreConfig(_store_path(store["path"], f"{node['id']}.db", file)),
        devices=tuple(devices),
        file=file,
        profile_dirs=tuple(profile_dirs),
        plugins=tuple(plugins),
    )


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file. Raises :class:`ConfigError`."""
    data, file = _read_toml(path)
    return parse_node_config(data, file=file)


# -- central -------------------------------------------------------------------------------


def parse_central_config(data: Mapping[str, Any], *, file: str | None = None) -> CentralConfig:
    """Validate an already-parsed central config (a dict as ``tomllib`` returns it)."""
    r = _Reader(file)
    r.top(data, ("central", "mqtt", "store", "hall", "queue", "window", "department", "matter"))
    if "central" not in data:
        raise r.error("central", "missing required section [central]")
    central = r.table(data["central"], "central", _CENTRAL_FIELDS)
    mqtt = _mqtt(r, data)
    store = r.table(data.get("store", {}), "store", _STORE_FIELDS)
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
            if not _has_type(factor, float) or factor <= 0:
                raise r.error(f"{where}.speed.{q}", "must be a positive number")
        if served != ("*",) and w["primary"] > len(served):
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
        _known(r, m["queue"], queue_ids, f"matter[{i}].queue", "queue")
        if m["department"] is not None:
            _known(r, m["department"], department_ids, f"matter[{i}].department", "department")
        if m["expected_service_s"] is not None:
            m["expected_service_s"] = float(m["expected_service_s"])
        matters.append(MatterConfig(**m))
    r.unique([(f"matter[{i}].id", m.id) for i, m in enumerate(matters)], "matter id")
    prefixes = {q.prefix: f"queue {q.id!r}" for q in queues}
    for cls, prefix in hall.class_prefix.items():
        if prefix in prefixes:
            raise r.error(f"hall.class_prefix.{cls}", f"prefix {prefix!r} is already {prefixes[prefix]}'s")
        prefixes[prefix] = f"class {cls!r}"

    return CentralConfig(
        hall=central["hall"],
        id=central["id"],
        mqtt=mqtt,
        store=StoreConfig(_store_path(store["path"], f"{central['id']}.db", file)),
        hall_settings=hall,
        queues=tuple(queues),
        windows=tuple(windows),
        file=file,
        departments=tuple(departments),
        matters=tuple(matters),
    )


def _hall_settings(r: _Reader, raw: dict[str, Any]) -> HallSettings:
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
        if cls not in PRIORITIES:
            raise r.error(f"hall.class_prefix.{cls}", _unknown(cls, list(PRIORITIES), None, what="class"))
        if not isinstance(prefix, str):
            raise r.error(f"hall.class_prefix.{cls}", f"expected string, got {_type_name(prefix)}")
        if (problem := _prefix(prefix)) is not None:
            raise r.error(f"hall.class_prefix.{cls}", problem)
    r.unique([(f"hall.class_prefix.{c}", p) for c, p in class_prefix.items()], "class prefix")
    return HallSettings(**raw, hours=hours, class_prefix=dict(class_prefix))


def _known(r: _Reader, value: str, known: list[str], key: str, what: str) -> None:
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (defined: {', '.join(known) or 'none'})"
        raise r.error(key, f"unknown {what} {value!r}{hint}")


def _window_queues(
    r: _Reader, raw: list[Any] | None, key: str, queue_ids: list[str]
) -> tuple[str, ...]:
    if raw is None:
        return ("*",)
    if not raw:
        raise r.error(key, 'must name at least one queue (or "*" for every queue)')
    for j, q in enumerate(raw):
        if not isinstance(q, str):
            raise r.error(f"{key}[{j}]", f"expected string, got {_type_name(q)} ({q!r})")
        if q == "*":
            if len(raw) > 1:
                raise r.error(f"{key}[{j}]", '"*" already means every queue; list it alone')
            continue
        _known(r, q, queue_ids, f"{key}[{j}]", "queue")
    if len(set(raw)) != len(raw):
        raise r.error(key, "lists a queue twice")
    return tuple(raw)


def load_central_config(path: str | Path) -> CentralConfig:
    """Read and validate a central config file. Raises :class:`ConfigError`."""
    data, file = _read_toml(path)
    return parse_central_config(data, file=file)
