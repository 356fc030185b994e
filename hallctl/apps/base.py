"""The shape of an app: what maps the hall (retained state, events) to one device's actions.

An app is built by the node, once per device that names it (``app = "..."`` in the node config),
from that device's options (the keys of the app's ``options_schema``; the rest go to the driver).
It declares the device kinds it can drive (the node refuses, with exit 78, a device whose profile
is of another kind) and the hall topics it follows (the node subscribes to them and hands each
message over). It reaches its device only through :class:`AppContext`, never through MQTT, and
central through ``ctx.request`` when it says it needs to (:attr:`App.uses_central`: the node then
subscribes to its own answer topic). An app that serves something of its own (a kiosk's web page)
opens it in :meth:`App.start` and closes it in :meth:`App.stop`.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, ClassVar, Mapping

from hallctl.bus.topics import Topics


@dataclass
class AppContext:
    """What the node gives an app."""

    node: str
    device: str
    topics: Topics
    #: run an action on the app's device (through its worker: queued, off the loop, coded errors)
    submit: Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
    log: logging.Logger
    #: ask central ``action`` with ``data`` as this node (client id = the node id); returns the
    #: response document (``status`` ok or error); raises DeviceTimeout (code ``timeout``) when
    #: central did not answer in time. Only for an app whose ``uses_central`` is True.
    request: Callable[..., Awaitable[dict[str, Any]]] | None = None
    #: run an action on another device of this node, ``submit_to(device, action, args)`` (a
    #: kiosk lighting its button panel's lamps); the same worker path and errors as ``submit``
    submit_to: Callable[[str, str, Mapping[str, Any]], Awaitable[dict[str, Any]]] | None = None


class App(abc.ABC):
    #: the name a node config uses (``app = "window_display"``)
    name: ClassVar[str] = ""
    #: device kinds this app can drive
    kinds: ClassVar[frozenset[str]] = frozenset()
    #: JSON Schema of the app's keys in the device's options
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    #: the app calls central (``ctx.request``); the node then listens on ``central/res/<node>``
    uses_central: ClassVar[bool] = False

    def __init__(self, ctx: AppContext, options: Mapping[str, Any]) -> None:
        """No I/O here: the device may not be up yet."""
        self.ctx = ctx
        self.options = dict(options)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Checks the schema cannot express (template fields...): raise
        :class:`hallctl_drivers.schema.SchemaError` naming the key."""

    @classmethod
    def claim(cls, options: Mapping[str, Any]) -> str | None:
        """Something only one app on a node may hold (one display app per window), or None. Two
        devices claiming the same is a config error."""
        return None

    def subscriptions(self) -> list[str]:
        """Hall topic filters this app follows (MQTT wildcards allowed)."""
        return []

    def on_hall_message(self, topic: str, doc: Mapping[str, Any]) -> None:
        """A message on one of :meth:`subscriptions` (retained copies included)."""

    def on_device_event(self, type_: str, data: Mapping[str, Any]) -> None:
        """The device reported ``type_`` by itself (already published on its event topic)."""

    def after_command(self, action: str) -> None:
        """A technician ran ``action`` on the device (``hallctl diag run``)."""

    def on_device_state(self, state: Mapping[str, Any]) -> None:
        """The device's state changed (the retained ``dev/<dev>/state`` document, without ``v``)."""

    def on_node_event(self, device: str, kind: str | None, type_: str, data: Mapping[str, Any]) -> None:
        """Another device of this node reported ``type_`` (a kiosk's ID card reader)."""

    def on_link(self, connected: bool) -> None:
        """The node's broker connection came up (True) or went down (False): hall messages stop
        while it is down (a call board says so instead of showing a frozen hall as current)."""

    async def on_up(self) -> None:
        """The device (re)started: whatever it showed or held before may be gone."""

    async def start(self) -> None:
        """Before :meth:`run`: open what the app serves itself (a web server). Raising stops the node."""

    async def stop(self) -> None:
        """The node is stopping: close what :meth:`start` opened. Must not raise."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Runs for the node's lifetime; device failures are the worker's to report, not this."""
