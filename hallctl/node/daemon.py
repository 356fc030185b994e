"""``hallctl node``: runs the devices one Raspberry Pi's config lists and maps hall events to them.

What it promises on the bus (topic contract v1, docs/topics.md):
* birth and status ``ready`` (retained) on every connection, with a bd_seq that the will of the
  same connection (status ``lost``) also carries; a stale will of an older connection that lands
  on the status topic after the birth is overwritten at once;
* birth and device states again whenever central comes (back) online;
* every device command answered on ``.../res/<action>``, duplicates by request_id executed once,
  retained commands dropped;
* one worker per device (a dead display never blocks the others), retained availability.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import hallctl
from hallctl.apps.window_display import WindowDisplayApp, check_templates
from hallctl.bus import messages
from hallctl.bus.client import Bus, Incoming
from hallctl.bus.topics import Topics, check_id, check_name, parse
from hallctl.config import NodeConfig
from hallctl.errors import BadRequest, ConfigError, Expired, HallctlError, UnknownDevice
from hallctl.node.bdseq import BdSeq
from hallctl.profiles import ProfileSet, load_profiles
from hallctl.runtime.outbox import Outbox
from hallctl.runtime.sdnotify import Notifier
from hallctl.runtime.tasks import run_together
from hallctl.runtime.supervisor import DeviceState, DeviceWorker, Supervisor
from hallctl_drivers import driver_class

log = logging.getLogger("hallctl.node")

FEATURES = ["bd_seq", "idempotent_requests", "retained_state", "outbox", "expires_at"]
DEDUP_SIZE = 1024
#: errors not remembered for a request_id: a retry of the same request may succeed later
TRANSIENT_CODES = frozenset({"device_offline", "timeout", "internal"})
#: device actions that change what a display shows
DISPLAY_ACTIONS = frozenset({"show", "clear"})


class Node:
    def __init__(self, cfg: NodeConfig, *, profiles: ProfileSet | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.topics = Topics(cfg.hall)
        self.notifier = notifier or Notifier()
        self.profiles = profiles if profiles is not None else load_profiles()
        self.outbox = Outbox(str(cfg.store.path))
        self._bd = BdSeq(str(cfg.store.path) + ".bdseq")
        self.bd_seq = self._bd.value
        self.supervisor = Supervisor()
        self.devices: dict[str, dict[str, Any]] = {}  # id -> birth entry
        self.disabled: dict[str, ConfigError] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, WindowDisplayApp] = {}  # window id -> app
        self._app_of: dict[str, WindowDisplayApp] = {}  # device id -> app
        self._tasks: set[asyncio.Task[Any]] = set()
        self._will_connections = -1  # bus.connections when the last will was made
        self._seen_state: set[str] = set()
        self._responses: collections.OrderedDict[str, asyncio.Future[dict[str, Any]]] = collections.OrderedDict()
        self._central: tuple[str, str] | None = None
        self._stopping = False
        self.ready = asyncio.Event()
        self._build_devices()
        subscriptions = [
            (self.topics.central_status, 1),
            (self.topics.node_status(self.id), 1),
            (self.topics.dev_cmd_filter(self.id), 1),
        ] + [(self.topics.window_state(w), 1) for w in self.apps]
        self.bus = Bus(
            cfg.mqtt.host,
            cfg.mqtt.port,
            f"node-{self.id}",
            subscriptions=subscriptions,
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=self._will,
            outbox=self.outbox,
            keepalive=cfg.mqtt.keepalive,
            username=cfg.mqtt.username,
            password=cfg.mqtt.password,
        )

    @property
    def dropped_retained(self) -> int:
        return self.bus.dropped_retained

    # -- devices ----------------------------------------------------------------------------
    def _build_devices(self) -> None:
        for index, dev in enumerate(self.cfg.devices):
            entry: dict[str, Any] = {"id": dev.id, "profile": dev.profile, "app": dev.app}
            try:
                profile = self.profiles.get(dev.profile)
                cls = driver_class(profile.driver)
            except (ConfigError, KeyError) as exc:
                err = exc if isinstance(exc, ConfigError) else ConfigError(f"unknown driver {exc}", key=f"device {dev.id}")
                self.disabled[dev.id] = err
                log.error("device %s disabled: %s", dev.id, err.message)
                entry.update(kind=None, driver=None, actions=[], disabled=err.message)
                self.devices[dev.id] = entry
                self.states[dev.id] = {"device": dev.id, "available": False, "health": "fault",
                                       "reason": f"disabled: {err.message}", "since": messages.now_iso()}
                self._seen_state.add(dev.id)
                continue
            options = dict(dev.options)
            settings = profile.settings
            app = self._make_app(index, dev, options)
            worker = DeviceWorker(
                dev.id,
                lambda cls=cls, settings=settings, options=options: cls(settings, options),
                on_state=self._on_device_state,
                on_up=app.on_up if app else None,
            )
            if app is not None:
                app.worker = worker
                self.apps[app.window] = app
                self._app_of[dev.id] = app
            self.supervisor.add(worker)
            entry.update(kind=profile.kind, driver=profile.driver, actions=list(getattr(cls, "actions", ())))
            self.devices[dev.id] = entry

    def _make_app(self, index: int, dev: Any, options: dict[str, Any]) -> WindowDisplayApp | None:
        """The app that drives this device, checked now so a typo stops the daemon with exit 78
        and a clear message instead of failing on every call."""
        if dev.app is None:
            return None
        where = f"device[{index}].options"
        if dev.app != "window_display":
            raise ConfigError(f"unknown app {dev.app!r}; known: window_display", file=self.cfg.file, key=f"device[{index}].app")
        window = options.get("window")
        try:
            check_id(str(window) if window is not None else "", "window")
        except BadRequest as exc:
            raise ConfigError(f"the window_display app needs the window id it shows: {exc.message}",
                              file=self.cfg.file, key=f"{where}.window") from None
        if str(window) in self.apps:
            raise ConfigError(f"window {window} already has a display app", file=self.cfg.file, key=f"{where}.window")
        try:
            templates = check_templates(options.get("templates"))
        except ValueError as exc:
            raise ConfigError(str(exc), file=self.cfg.file, key=f"{where}.templates") from None
        return WindowDisplayApp(str(window), None, templates)

    async def _on_device_state(self, state: DeviceState) -> None:
        doc = {k: getattr(state, k) for k in ("device", "available", "health", "reason", "since")}
        self.states[state.device] = doc
        self._seen_state.add(state.device)
        await self.bus.try_publish(self.topics.dev_state(self.id, state.device), messages.device_state(doc), retain=True)
        self._maybe_ready()

    def _maybe_ready(self) -> None:
        if not self.ready.is_set() and self.bus.connected.is_set() and self._seen_state >= set(self.devices):
            self.ready.set()
            self.notifier.ready(f"node {self.id}: {len(self.devices)} devices")
            log.info("node %s ready (%d devices, %d disabled)", self.id, len(self.devices), len(self.disabled))

    # -- bus --------------------------------------------------------------------------------
    def _will(self) -> tuple[str, dict[str, Any]]:
        # a new bd_seq only when the last one was used by a connection, not per refused attempt
        if self.bus.connections != self._will_connections:
            self.bd_seq = self._bd.next()
            self._will_connections = self.bus.connections
        return self.topics.node_status(self.id), messages.node_status("lost", self.bd_seq)

    async def _announce(self) -> None:
        profiles = {d["profile"]: {"vendor": p.vendor, "name": p.name}
                    for d in self.devices.values() if (p := self.profiles.profiles.get(d["profile"]))}
        birth = messages.node_birth(self.id, self.bd_seq, hallctl.__version__, list(self.devices.values()), profiles, FEATURES)
        await self.bus.publish(self.topics.node_birth(self.id), birth, retain=True)
        await self.bus.publish(self.topics.node_status(self.id), messages.node_status("ready", self.bd_seq), retain=True)
        for dev_id, doc in self.states.items():
            await self.bus.publish(self.topics.dev_state(self.id, dev_id), messages.device_state(doc), retain=True)

    async def _on_connect(self) -> None:
        self._central = None
        await self._announce()
        self._maybe_ready()

    async def _on_message(self, incoming: Incoming) -> None:
        parsed = parse(incoming.topic)
        if parsed is None:
            return
        if parsed.kind == "dev_cmd":
            await self._on_command(incoming, parsed.device or "", parsed.name or "")
        elif parsed.kind == "window_state":
            app = self.apps.get(parsed.window or "")
            if app is not None:
                try:
                    app.on_window_state(messages.decode_object(incoming.payload))
                except BadRequest as exc:
                    log.warning("ignored window state on %s: %s", incoming.topic, exc.message)
        elif parsed.kind == "central_status":
            await self._on_central_status(incoming)
        elif parsed.kind == "node_status" and parsed.node == self.id:
            await self._on_own_status(incoming)

    async def _on_central_status(self, incoming: Incoming) -> None:
        try:
            doc = messages.decode_object(incoming.payload)
        except BadRequest:
            return
        now = (str(doc.get("state")), str(doc.get("instance")))
        before, self._central = self._central, now
        # A retained copy arrives right after we subscribe (we have just announced anyway); a
        # live "online" means central (re)connected and needs to learn the hall again.
        if now[0] == "online" and not incoming.retain and before != now:
            log.info("central came online (%s): re-publishing birth and state", now[1])
            await self._announce()

    async def _on_own_status(self, incoming: Incoming) -> None:
        """A late will of an older connection overwrote our retained status: put it right."""
        try:
            doc = messages.decode_object(incoming.payload)
        except BadRequest:
            doc = {}
        if self._stopping or incoming.retain:
            # a retained status is from before this connection: our birth has replaced it already
            return
        if doc.get("state") != "ready" or doc.get("bd_seq") != self.bd_seq:
            if doc.get("bd_seq") != self.bd_seq:
                log.info("stale status (bd_seq %s, ours %s) overwritten", doc.get("bd_seq"), self.bd_seq)
            await self.bus.try_publish(self.topics.node_status(self.id), messages.node_status("ready", self.bd_seq), retain=True)

    async def _on_command(self, incoming: Incoming, device: str, action: str) -> None:
        if await self.bus.skip_request(incoming):
            return
        try:
            res_topic = self.topics.dev_res(self.id, device, action)
        except BadRequest as exc:
            log.warning("cannot answer command on %s: %s", incoming.topic, exc.message)
            return
        try:
            request = messages.parse_request(incoming.payload)
        except BadRequest as exc:
            await self.bus.try_publish(res_topic, messages.response_error(messages.request_id_of(incoming.payload), exc))
            return
        key = f"{device}/{action}/{request.request_id}"
        fut = self._responses.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._responses[key] = fut
            while len(self._responses) > DEDUP_SIZE:
                self._responses.popitem(last=False)
            self._spawn(self._execute(fut, request, device, action, key))
        self._spawn(self._answer(fut, res_topic))

    def _spawn(self, coro: Any) -> None:
        """Fire-and-forget with a reference kept (asyncio holds tasks only weakly)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, fut: asyncio.Future[dict[str, Any]], request: messages.Request, device: str,
                       action: str, key: str) -> None:
        try:
            check_name(action)
            if request.expired():
                raise Expired(f"request {request.request_id} expired; not executed")
            if device in self.disabled:
                raise UnknownDevice(f"device {device} is disabled: {self.disabled[device].message}")
            if device not in self.devices:
                raise UnknownDevice(f"no device {device!r} on node {self.id}; devices: {', '.join(sorted(self.devices))}")
            if action == "probe":
                data = self.states.get(device, {})
            else:
                data = await self.supervisor.get(device).submit(action, request.data)
                app = self._app_of.get(device)
                if app is not None and action in DISPLAY_ACTIONS:
                    app.hold()  # a technician's test text stays up for a while, then the truth returns
            fut.set_result(messages.response_ok(request.request_id, data))
        except HallctlError as exc:
            if exc.code in TRANSIENT_CODES:
                self._responses.pop(key, None)  # a retry after the device is back must run again
            fut.set_result(messages.response_error(request.request_id, exc))
        except Exception:  # noqa: BLE001
            log.exception("command %s on %s failed", action, device)
            self._responses.pop(key, None)
            fut.set_result(messages.response_error(request.request_id, HallctlError("internal error; see the node's log")))

    async def _answer(self, fut: asyncio.Future[dict[str, Any]], topic: str) -> None:
        await self.bus.try_publish(topic, await fut)

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        coros = [("bus", self.bus.run()), ("supervisor", self.supervisor.run()),
                 ("watchdog", self.notifier.run_watchdog(self.bus.healthy))]
        coros += [(f"app-window-{app.window}", app.run()) for app in self.apps.values()]
        if not self.devices:
            coros.append(("ready", self._ready_without_devices()))
        await run_together(coros)

    async def _ready_without_devices(self) -> None:
        await self.bus.connected.wait()
        self._maybe_ready()

    async def stop(self) -> None:
        self._stopping = True
        self.notifier.stopping()
        final: list[tuple[str, Any, bool]] = []
        for dev_id, doc in self.states.items():
            gone = {**doc, "available": False, "health": "unknown", "reason": "node stopped", "since": messages.now_iso()}
            final.append((self.topics.dev_state(self.id, dev_id), messages.device_state(gone), True))
        final.append((self.topics.node_status(self.id), messages.node_status("offline", self.bd_seq), True))
        await self.bus.close(final)
        self.outbox.close()
