"""Device drivers, installed as ``hallctl_drivers``.

Drivers know protocols, not MQTT. A firmware profile's ``driver`` key names an entry of
:data:`REGISTRY`; a driver outside this package (a site's own, or a test's) is added with
:func:`register_driver`.
"""

from __future__ import annotations

import importlib

from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.kinds import KINDS, Action, Kind, get_kind, register_kind

REGISTRY: dict[str, str | type[Driver]] = {
    # profile "driver" value -> "module:Class", imported lazily (slow imports hurt a Pi's start-up)
    "onbon_bx": "hallctl_drivers.onbon_bx:OnbonBxDisplay",
    "escpos": "hallctl_drivers.escpos:EscPosPrinter",
}


def register_driver(name: str, cls: str | type[Driver]) -> None:
    """Make ``name`` usable as a profile's ``driver``: a class, or "module:Class" to import on
    first use. Its kind must be registered (:func:`register_kind`) before a node uses it."""
    known = REGISTRY.get(name)
    if known is not None and known != cls:
        raise ValueError(f"driver {name!r} is already registered as {known!r}")
    REGISTRY[name] = cls


def driver_class(name: str) -> type[Driver]:
    """Resolve a profile's ``driver`` name to its class. Raises KeyError for an unknown name."""
    entry = REGISTRY[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry


register_driver("candle", "hallctl_drivers.candle:CandleDisplay")
register_driver("qsys_keypad", "hallctl_drivers.keypad.qsys:QsysKeypad")
register_driver("gpio_keypad", "hallctl_drivers.keypad.gpio:GpioKeypad")
register_driver("voice_tts", "hallctl_drivers.voice:TtsVoice")
register_driver("voice_clips", "hallctl_drivers.voice:ClipVoice")
register_driver("call_board", "hallctl_drivers.board:CallBoardDriver")
register_driver("gpio_buttons", "hallctl_drivers.buttons:GpioButtonPanel")

__all__ = ["Action", "Driver", "Health", "Kind", "KINDS", "ProbeResult", "REGISTRY", "driver_class",
           "get_kind", "register_driver", "register_kind"]
