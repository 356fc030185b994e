"""The shape every driver has.

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
from typing import Any, ClassVar, Mapping


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
    """Base class. ``settings`` come from the firmware profile, ``options`` from the node config."""

    #: device kind this driver serves, e.g. "window_display"
    kind: ClassVar[str] = ""
    #: actions ``execute`` understands, for diagnostics and the node's birth message
    actions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.options = dict(options)

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
