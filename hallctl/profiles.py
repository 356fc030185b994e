"""Firmware profiles: what differs between vendors and firmware versions, as data.

A profile is a TOML file in ``firmware_profiles/`` (installed as ``hallctl_firmware_profiles``);
its id is the file stem. Every file carries::

    schema = 1
    vendor = "Onbon (仰邦)"
    name = "BX-5K1"
    source = "onbonlab/onbonlab.github.io:onbon-docs/docs/zh/k/potocol.md §4"
    inherits = "onbon-bx-5k"      # optional, one parent
    kind = "window_display"       # required once inheritance is resolved
    driver = "onbon_bx"           # a key of hallctl_drivers.REGISTRY, required once resolved
    features = ["status"]         # optional: what this model supports of what its driver can do

    [settings]                    # merged over the parent's, key by key, tables recursively
    baudrates = [9600, 57600]

:func:`load_profiles` never raises because of one bad file: a broken profile is recorded in
:attr:`ProfileSet.errors` and every other profile still loads, so one typo cannot take down the
displays of a whole hall. Asking for a broken profile with :meth:`ProfileSet.get` raises the
recorded :class:`ConfigError`. The settings are checked against the driver's ``settings_schema``
(defaults filled in), the kind against the driver's, and ``features`` against what the driver
implements, so a node never starts a device on a profile its driver would refuse.
"""

from __future__ import annotations

import copy
import difflib
import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Iterable

from hallctl.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "Profile", "ProfileSet", "load_profiles", "shipped_profile_files"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_PACKAGE = "hallctl_firmware_profiles"
_REQUIRED_STR = ("vendor", "name", "source")
_OPTIONAL_STR = ("inherits", "kind", "driver")
_KEYS = ("schema", *_REQUIRED_STR, *_OPTIONAL_STR, "features", "settings")


@dataclass(frozen=True)
class Profile:
    """One resolved profile. ``chain`` lists the ids from this profile up to its root."""

    id: str
    vendor: str
    name: str
    source: str
    kind: str
    driver: str
    settings: dict[str, Any]
    chain: tuple[str, ...]
    file: str = field(default="", compare=False)
    #: what this model supports (its own list, a parent's, or all its driver implements)
    features: frozenset[str] = frozenset()
    #: the ``features`` list this profile or a parent gave; None: all its driver implements
    declared_features: tuple[str, ...] | None = field(default=None, compare=False)

    def supports(self, feature: str) -> bool:
        return feature in self.features


@dataclass
class ProfileSet:
    """Every profile found: the good ones in ``profiles``, the broken ones in ``errors``."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    errors: dict[str, ConfigError] = field(default_factory=dict)

    def get(self, profile_id: str) -> Profile:
        """The profile, or :class:`ConfigError` saying why it is broken or that it is unknown."""
        if profile_id in self.profiles:
            return self.profiles[profile_id]
        if profile_id in self.errors:
            err = self.errors[profile_id]
            raise ConfigError(err.problem, file=err.file, key=err.key)
        known = sorted(self.profiles)
        close = difflib.get_close_matches(profile_id, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown firmware profile {profile_id!r}{hint}", key="profile")

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.profiles


@dataclass
class _Raw:
    """One parsed, individually valid file before inheritance is resolved."""

    id: str
    file: str
    data: dict[str, Any]


def shipped_profile_files() -> list[Traversable]:
    """The ``*.toml`` files shipped in the ``hallctl_firmware_profiles`` package, sorted."""
    root = resources.files(_PACKAGE)
    return sorted(
        (f for f in root.iterdir() if f.is_file() and f.name.endswith(".toml")),
        key=lambda f: f.name,
    )


def load_profiles(extra_dirs: Iterable[str | Path] = (), *, include_shipped: bool = True) -> ProfileSet:
    """Load the shipped profiles plus ``*.toml`` files from ``extra_dirs``.

    A file in an extra dir with the same id as an earlier one replaces it (a site can patch a
    shipped profile without editing the package). Never raises for a bad file.
    """
    files: list[Traversable | Path] = list(shipped_profile_files()) if include_shipped else []
    for d in extra_dirs:
        if not Path(d).is_dir():
            log.warning("firmware profile folder %s does not exist; skipped", d)
            continue
        files.extend(sorted(Path(d).glob("*.toml")))

    out = ProfileSet()
    raws: dict[str, _Raw] = {}
    for f in files:
        pid = f.name[: -len(".toml")]
        if pid in raws or pid in out.errors:
            log.info("firmware profile %r from %s replaces the one loaded earlier", pid, f)
            raws.pop(pid, None)
            out.errors.pop(pid, None)
        try:
            raws[pid] = _parse_file(pid, f)
        except ConfigError as exc:
            out.errors[pid] = exc

    for pid in raws:
        _resolve(pid, raws, out, ())
    return out


def _parse_file(pid: str, f: Traversable | Path) -> _Raw:
    """Read one file and check what can be checked without its parent."""
    file = str(f)
    try:
        data = tomllib.loads(f.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc}", file=file) from None

    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(_KEYS)})"
            raise ConfigError(f"unknown key {key!r}{hint}", file=file, key=key)

    if "schema" not in data:
        raise ConfigError(f"missing required key 'schema' (= {SCHEMA_VERSION})", file=file, key="schema")
    schema = data["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema != SCHEMA_VERSION:
        raise ConfigError(
            f"unsupported schema version {schema!r} (this hallctl reads {SCHEMA_VERSION})",
            file=file, key="schema",
        )
    for key in _REQUIRED_STR:
        if key not in data:
            raise ConfigError(f"missing required key {key!r}", file=file, key=key)
    for key in (*_REQUIRED_STR, *_OPTIONAL_STR):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            raise ConfigError(
                f"expected a non-empty string, got {data[key]!r}", file=file, key=key
            )
    features = data.get("features")
    if features is not None and not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
        raise ConfigError(f"expected a list of feature names, got {features!r}", file=file, key="features")
    if "settings" in data and not isinstance(data["settings"], dict):
        raise ConfigError(
            f"expected table, got {type(data['settings']).__name__}", file=file, key="settings"
        )
    if data.get("inherits") == pid:
        raise ConfigError(f"inheritance cycle: {pid} -> {pid}", file=file, key="inherits")
    return _Raw(pid, file, data)


def _resolve(pid: str, raws: dict[str, _Raw], out: ProfileSet, path: tuple[str, ...]) -> None:
    """Resolve ``pid`` (and its ancestors first) into ``out``; ``path`` detects cycles."""
    if pid in out.profiles or pid in out.errors:
        return
    raw = raws[pid]
    parent_id = raw.data.get("inherits")
    parent: Profile | None = None
    if parent_id is not None:
        if parent_id in path:  # every member of the cycle is broken for the same reason
            members = (*path[path.index(parent_id):], pid)
            cycle = " -> ".join((*members, parent_id))
            for m in members:
                out.errors[m] = ConfigError(
                    f"inheritance cycle: {cycle}", file=raws[m].file, key="inherits"
                )
            return
        if parent_id not in raws and parent_id not in out.errors:
            out.errors[pid] = ConfigError(
                f"inherits unknown profile {parent_id!r}", file=raw.file, key="inherits"
            )
            return
        if parent_id in raws:
            _resolve(parent_id, raws, out, (*path, pid))
        if pid in out.errors:  # set while resolving a cycle through the parent
            return
        if parent_id in out.errors:
            why = out.errors[parent_id].problem
            out.errors[pid] = ConfigError(
                f"parent profile {parent_id!r} is broken ({why})", file=raw.file, key="inherits"
            )
            return
        parent = out.profiles[parent_id]

    merged: dict[str, Any] = {}
    for key in ("kind", "driver"):
        value = raw.data.get(key, getattr(parent, key) if parent else None)
        if value is None:
            out.errors[pid] = ConfigError(
                f"missing required key {key!r} (not set here nor by a parent)",
                file=raw.file, key=key,
            )
            return
        merged[key] = value

    from hallctl_drivers import REGISTRY  # the registry is a plain dict: no driver is imported

    if merged["driver"] not in REGISTRY:
        close = difflib.get_close_matches(merged["driver"], list(REGISTRY), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(REGISTRY))})"
        out.errors[pid] = ConfigError(
            f"unknown driver {merged['driver']!r}{hint}", file=raw.file, key="driver"
        )
        return

    settings = _merge(parent.settings if parent else {}, raw.data.get("settings", {}))
    declared = raw.data.get("features", parent.declared_features if parent else None)
    try:
        settings, features = _check_against_driver(merged["driver"], merged["kind"], settings, declared)
    except ConfigError as exc:
        out.errors[pid] = ConfigError(exc.problem, file=raw.file, key=exc.key)
        return
    out.profiles[pid] = Profile(
        id=pid,
        vendor=raw.data["vendor"],
        name=raw.data["name"],
        source=raw.data["source"],
        kind=merged["kind"],
        driver=merged["driver"],
        settings=settings,
        chain=(pid, *(parent.chain if parent else ())),
        file=raw.file,
        features=features,
        declared_features=tuple(declared) if declared is not None else None,
    )


def _check_against_driver(driver: str, kind: str, settings: dict[str, Any],
                          features: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """Settings checked against the driver's schema (defaults filled), the kind against the
    driver's, the features against what it implements. Raises ConfigError with the key."""
    from hallctl_drivers import driver_class
    from hallctl_drivers.schema import SchemaError, check, with_defaults

    try:
        cls = driver_class(driver)
    except Exception as exc:  # noqa: BLE001 - a driver that cannot load makes its profiles unusable
        raise ConfigError(f"driver {driver!r} cannot be loaded: {exc}", key="driver") from None
    if cls.kind != kind:
        raise ConfigError(f"kind {kind!r} does not fit driver {driver!r}, which serves {cls.kind!r}", key="kind")
    from hallctl_drivers.kinds import KINDS

    if kind not in KINDS:
        raise ConfigError(f"unknown device kind {kind!r} (known: {', '.join(sorted(KINDS))})", key="kind")
    try:
        check(cls.settings_schema, settings, "settings")
    except SchemaError as exc:
        raise ConfigError(exc.problem, key=exc.path) from None
    if features is None:
        return with_defaults(cls.settings_schema, settings), frozenset(cls.features)
    unknown = sorted(set(features) - set(cls.features))
    if unknown:
        raise ConfigError(f"driver {driver!r} does not implement {', '.join(unknown)} "
                          f"(it implements: {', '.join(sorted(cls.features)) or 'no optional feature'})", key="features")
    return with_defaults(cls.settings_schema, settings), frozenset(features)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of ``base`` with ``over`` applied: tables merge recursively, the rest replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
