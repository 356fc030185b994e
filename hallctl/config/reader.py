"""The generic TOML config reader: tables checked against field specs.

Every problem is a :class:`hallctl.errors.ConfigError` naming the file, the key path and what is
wrong, e.g. ``/etc/hallctl/node.toml: device[1].profile: expected string, got integer``.
Array entries are counted from 0 (``device[0]`` is the first ``[[device]]``). An unknown key is
an error, not a silent ignore: a misspelt ``keepalive`` would otherwise quietly fall back to the
default.

This module knows nothing of nodes or central: :mod:`hallctl.config.node` and
:mod:`hallctl.central.config` describe their files with :class:`Field` specs and read them with a
:class:`Reader`. The ``[mqtt]`` and ``[store]`` sections, which both files have, are read here.
"""

from __future__ import annotations

import difflib
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hallctl.bus.tls import MQTT_TLS_PORT, TlsSettings
from hallctl.errors import ConfigError
from hallctl.ids import id_problem

__all__ = [
    "REQUIRED",
    "DEFAULT_STATE_DIR",
    "Field",
    "Reader",
    "MqttConfig",
    "StoreConfig",
    "MQTT_FIELDS",
    "STORE_FIELDS",
    "is_id",
    "non_empty",
    "between",
    "has_type",
    "type_name",
    "read_toml",
    "store_path",
    "parse_mqtt",
    "config_relative",
    "MQTT_TLS_PORT",
]

#: the default of a :class:`Field` that must be given
REQUIRED: Any = object()
#: where a store goes when the file names none
DEFAULT_STATE_DIR = Path("/var/lib/hallctl")

_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean", float: "number", list: "array",
               dict: "table"}


# -- the sections every daemon has -----------------------------------------------------------


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or reprs
    keepalive: int = 15
    #: where the password was read from (``password_file``); None: given inline, or none
    password_file: Path | None = None
    #: the CA that signed the broker's certificate: set, the connection is TLS
    tls_ca: Path | None = None
    #: a client certificate and its key, for a broker that requires one
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def tls(self) -> TlsSettings | None:
        """What :class:`hallctl.bus.client.Bus` takes as ``tls``; None: plain TCP."""
        if self.tls_ca is None:
            return None
        return TlsSettings(self.tls_ca, self.tls_cert, self.tls_key)


@dataclass(frozen=True)
class StoreConfig:
    #: SQLite file (the node's outbox, or central's database)
    path: Path


# -- field specs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One key of a table: its TOML type, its default (:data:`REQUIRED`: must be given) and an
    extra check returning a problem text, or None when the value is fine."""

    name: str
    type: type
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None


def is_id(value: str) -> str | None:
    return id_problem(value)


def non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def between(lo: int, hi: int | None) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        if value < lo or (hi is not None and value > hi):
            upper = f"..{hi}" if hi is not None else " or more"
            return f"must be {lo}{upper}, got {value}"
        return None

    return check


MQTT_FIELDS = (
    Field("host", str, "127.0.0.1", non_empty),
    Field("port", int, 1883, between(1, 65535)),
    Field("username", str, None),
    Field("password", str, None),
    Field("keepalive", int, 15, between(1, 65535)),
    Field("password_file", str, None, non_empty),
    Field("tls_ca", str, None, non_empty),
    Field("tls_cert", str, None, non_empty),
    Field("tls_key", str, None, non_empty),
)
STORE_FIELDS = (Field("path", str, None, non_empty),)


# -- the reader ------------------------------------------------------------------------------


class Reader:
    """Checks tables against field specs, raising ConfigError with file and key path."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(problem, file=self.file, key=key or None)

    def table(
        self,
        raw: Any,
        where: str,
        fields: tuple[Field, ...],
        *,
        hint: str | None = None,
    ) -> dict[str, Any]:
        """Validate one table; returns every field's value (defaults filled in)."""
        if not isinstance(raw, dict):
            raise self.error(where, f"expected table, got {type_name(raw)}")
        names = [f.name for f in fields]
        for key in raw:
            if key not in names:
                raise self.error(_join(where, key), _unknown(key, names, hint))
        out: dict[str, Any] = {}
        for f in fields:
            key = _join(where, f.name)
            if f.name not in raw:
                if f.default is REQUIRED:
                    raise self.error(key, f"missing required key {f.name!r}")
                out[f.name] = f.default
                continue
            value = raw[f.name]
            if not has_type(value, f.type):
                raise self.error(
                    key, f"expected {_TYPE_NAMES[f.type]}, got {type_name(value)} ({value!r})"
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
                where, f"expected array of tables ([[{where}]]), got {type_name(raw)}"
            )
        return raw

    def top(self, data: Any, sections: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise self.error(None, f"expected a TOML document (table), got {type_name(data)}")
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

    def known(self, value: str, known: list[str], key: str, what: str) -> None:
        """``value`` must be one of ``known`` (ids defined elsewhere in the file)."""
        if value not in known:
            close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (defined: {', '.join(known) or 'none'})"
            raise self.error(key, f"unknown {what} {value!r}{hint}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def has_type(value: Any, want: type) -> bool:
    """``value`` is of the TOML type ``want`` (a bool is no integer; an integer is a number)."""
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, want)


def type_name(value: Any) -> str:
    """The TOML name of ``value``'s type, for "expected X, got Y"."""
    for t, name in _TYPE_NAMES.items():
        if has_type(value, t):
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


# -- files and shared sections ---------------------------------------------------------------


def read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML file; returns the document and the file name errors should carry."""
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


def store_path(value: str | None, default_name: str, file: str | None) -> Path:
    """A path from the file: None -> ``DEFAULT_STATE_DIR / default_name``; relative -> relative
    to the config file, not to wherever the daemon was started."""
    if value is None:
        return DEFAULT_STATE_DIR / default_name
    path = Path(value)
    if not path.is_absolute() and file is not None:
        path = Path(file).resolve().parent / path
    return path


def parse_mqtt(r: Reader, data: Mapping[str, Any]) -> MqttConfig:
    """The document's ``[mqtt]`` section (all defaults when absent). The files it names are read
    (``password_file``) or tried (``tls_*``) now, so a missing or unreadable one stops the start
    with the key's name rather than failing at every reconnect. Relative paths are relative to
    the config file."""
    raw = data.get("mqtt", {})
    m = r.table(raw, "mqtt", MQTT_FIELDS)
    files = {k: config_relative(m.pop(k), r.file) for k in ("password_file", "tls_ca", "tls_cert", "tls_key")}
    if files["password_file"] is not None:
        if m["password"] is not None:
            raise r.error("mqtt.password_file", "give password or password_file, not both")
        m["password"] = _read_password(r, files["password_file"])
    if files["tls_ca"] is None:
        for key in ("tls_cert", "tls_key"):
            if files[key] is not None:
                raise r.error(f"mqtt.{key}", "needs tls_ca too (the CA of the broker's certificate turns TLS on)")
    else:
        if files["tls_key"] is not None and files["tls_cert"] is None:
            raise r.error("mqtt.tls_key", "needs tls_cert too (the client certificate the key belongs to)")
        for key in ("tls_ca", "tls_cert", "tls_key"):
            if files[key] is not None:
                _readable(r, f"mqtt.{key}", files[key])
        _check_tls(r, TlsSettings(files["tls_ca"], files["tls_cert"], files["tls_key"]))
        if "port" not in (raw if isinstance(raw, dict) else {}):
            m["port"] = MQTT_TLS_PORT
    return MqttConfig(**m, **files)


def config_relative(value: str | None, file: str | None) -> Path | None:
    """A path from a config file: relative -> relative to the file, not to the working directory."""
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute() and file is not None:
        path = Path(file).resolve().parent / path
    return path


def _readable(r: Reader, key: str, path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise r.error(key, f"file not found: {path}") from None
    except IsADirectoryError:
        raise r.error(key, f"is a directory, not a file: {path}") from None
    except OSError as exc:
        raise r.error(key, f"cannot read {path}: {exc.strerror or exc} (it must be readable by the "
                           "user hallctl runs as)") from None


def _read_password(r: Reader, path: Path) -> str:
    """The password in ``path`` (one line; surrounding white space and the newline dropped). The
    error never quotes the file's content."""
    _readable(r, "mqtt.password_file", path)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise r.error("mqtt.password_file", f"not UTF-8 text: {path}") from None
    if not password:
        raise r.error("mqtt.password_file", f"is empty: {path}")
    if "\n" in password:
        raise r.error("mqtt.password_file", f"holds more than one line: {path} (the password alone, on one line)")
    return password


def _check_tls(r: Reader, tls: TlsSettings) -> None:
    """Load the files as the connection will, so a wrong one is named now: the CA alone first,
    then with the client certificate."""
    for key, settings in (("mqtt.tls_ca", TlsSettings(tls.ca)), ("mqtt.tls_cert", tls)):
        try:
            settings.context()
        except ssl.SSLError as exc:
            what = "a PEM CA certificate" if key == "mqtt.tls_ca" else "a PEM certificate whose key is tls_key (or in the file)"
            path = tls.ca if key == "mqtt.tls_ca" else tls.cert
            raise r.error(key, f"{path} is not {what}: {exc.reason or exc}") from None
        except OSError as exc:
            raise r.error(key, f"cannot load: {exc.strerror or exc}") from None
