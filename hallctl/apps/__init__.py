"""Apps: hall events <-> device actions, one per device role (window display, kiosk, ...).

:data:`APPS` maps the ``app`` name a node config uses to the class ("module:Class" is imported on
first use); :func:`register_app` adds one from outside the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hallctl.apps.base import App

APPS: dict[str, "str | type[App]"] = {
    "window_display": "hallctl.apps.window_display:WindowDisplayApp",
    "kiosk": "hallctl.apps.kiosk.app:KioskApp",
    "call_board": "hallctl.apps.call_board.app:CallBoardApp",
    "keypad": "hallctl.apps.keypad:KeypadApp",
    "voice_caller": "hallctl.apps.voice.app:VoiceCallerApp",
}


def register_app(name: str, cls: "str | type[App]") -> None:
    known = APPS.get(name)
    if known is not None and known != cls:
        raise ValueError(f"app {name!r} is already registered as {known!r}")
    APPS[name] = cls


def app_class(name: str) -> "type[App]":
    """The app's class; KeyError for an unknown name."""
    entry = APPS[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry
