"""The shape every driver has.

* A driver declares the device ``kind`` it serves (a contract in :mod:`hallctl_drivers.kinds`),
  the ``features`` of that kind it implements, and JSON Schemas for its profile ``settings`` and
  its per-device ``options``; the node checks both when it starts (a bad value exits 78 naming the
  file and the key) and passes them in with every default filled.
* The constructor does no I/O: it only keeps the profile settings and the device options.
* ``start()`` opens the transport and identifies the device (raises on failure).
* ``stop()`` is idempotent.
* ``probe()`` reports health; "unknown" is never reported as "ok".
* ``execute(action, args)`` runs one diagnostics/app command and returns a JSON-able dict;
  it raises :class:`hallctl.errors.UnknownCommand` for an action it does not implement and other
  :class:`hallctl.errors.HallctlError` subclasses for device failures.

Blocking I/O (pyserial, python-escpos, ...) stays off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from hallctl.errors import ConfigError
from hallctl_drivers.kinds import get_kind
from hallctl_drivers.schema import SchemaError, check, with_defaults


class Health(str, enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    FAULT = "fault"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeResult:
    health: Health
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"health": self.health.value, "reason": self.reason, "detail": dict(self.detail)}


class Driver(abc.ABC):
    """Base class. ``settings`` come from the firmware profile, ``options`` from the node config;
    ``features`` (default: all the driver implements) is what this model supports, from its
    profile."""

    #: device kind this driver serves, e.g. "window_display" (a key of hallctl_drivers.kinds.KINDS)
    kind: ClassVar[str] = ""
    #: the optional features of the kind this driver implements
    features: ClassVar[frozenset[str]] = frozenset()
    #: seconds between health probes of an idle device, unless the node config sets
    #: ``probe_interval_s``: what a fault may take to show (a printer's paper out: under a second)
    probe_interval_s: ClassVar[float] = 15.0
    #: JSON Schema of the profile's [settings] table (defaults filled in from it)
    settings_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}
    #: JSON Schema of the device's options in the node config (port, address, ...)
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None) -> None:
        for schema, value, where in ((self.settings_schema, settings, "settings"), (self.options_schema, options, "options")):
            try:
                check(schema, dict(value), where)
            except SchemaError as exc:  # the node checked already; a driver built directly too
                raise ConfigError(exc.problem, key=exc.path) from None
        self.settings = with_defaults(self.settings_schema, settings)
        self.options = with_defaults(self.options_schema, options)
        self.supported: frozenset[str] = frozenset(self.features if features is None else features)
        #: set by whoever runs the driver: called with (event type, data) for what the device
        #: reports on its own (a button pressed, a card read)
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None

    def supports(self, feature: str) -> bool:
        """True when this model has ``feature`` (``supports("cutter")``): ask, don't name models."""
        return feature in self.supported

    @property
    def actions(self) -> tuple[str, ...]:
        """The kind's actions this device offers (``execute`` understands each)."""
        return tuple(n for n, a in get_kind(self.kind).actions.items() if a.feature is None or a.feature in self.supported)

    def emit(self, type_: str, data: Mapping[str, Any] | None = None) -> None:
        """Report an event the device raised by itself (no-op when nobody listens)."""
        if self.on_event is not None:
            self.on_event(type_, dict(data or {}))

    def time_allowed(self, action: str, args: Mapping[str, Any]) -> float | None:
        """Seconds this job may take when that is longer than the node's command timeout (a raster
        ticket on a slow serial line), else None. A driver that says so bounds its own progress
        (every write and read has its own timeout), so the longer limit never hides a hang."""
        return None

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def probe(self) -> ProbeResult: ...

    @abc.abstractmethod
    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]: ...

    async def __aenter__(self) -> "Driver":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
