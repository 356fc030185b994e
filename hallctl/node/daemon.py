"""``hallctl node``: runs the devices one Raspberry Pi's config lists and maps hall events to them.

What it promises on the bus (topic contract v1, docs/topics.md):
* birth and status ``ready`` (retained) on every connection, with a bd_seq that the will of the
  same connection (status ``lost``) also carries; a stale will of an older connection that lands
  on the status topic after the birth is overwritten at once;
* birth and device states again whenever central comes (back) online;
* every device command answered on ``.../res/<action>``, duplicates by request_id executed once,
  retained commands dropped;
* one worker per device (a dead display never blocks the others), retained availability.

The node knows no device kind: it builds drivers and apps from their registries
(:mod:`hallctl.node.plan`), subscribes to the hall topics each app follows, and routes commands,
hall messages and device events between them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Mapping

import hallctl
from hallctl.apps.base import App, AppContext
from hallctl.bus import messages
from hallctl.bus.client import Bus, Incoming
from hallctl.bus.requests import Requester
from hallctl.bus.topics import Topics, check_name, matches, parse
from hallctl.config import NodeConfig
from hallctl.errors import BadRequest, ConfigError, Expired, HallctlError, UnknownCommand, UnknownDevice
from hallctl.node.bdseq import BdSeq
from hallctl.node.plan import DevicePlan, load_plugins, plan_node
from hallctl.profiles import ProfileSet, load_profiles
from hallctl.runtime.outbox import Outbox
from hallctl.runtime.sdnotify import Notifier
from hallctl.runtime.tasks import run_together
from hallctl.runtime.supervisor import DeviceState, DeviceWorker, Supervisor
from hallctl_drivers.schema import SchemaError, check, coerce

log = logging.getLogger("hallctl.node")

FEATURES = ["bd_seq", "idempotent_requests", "retained_state", "outbox", "expires_at"]
DEDUP_SIZE = 1024
#: errors not remembered for a request_id: a retry of the same request may succeed later
TRANSIENT_CODES = frozenset({"device_offline", "timeout", "internal"})


class Node:
    def __init__(self, cfg: NodeConfig, *, profiles: ProfileSet | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.started = messages.now_iso()
        self.topics = Topics(cfg.hall)
        self.notifier = notifier or Notifier()
        load_plugins(cfg)
        self.profiles = profiles if profiles is not None else load_profiles(cfg.profile_dirs)
        self.plans = {p.id: p for p in plan_node(cfg, self.profiles)}  # ConfigError: exit 78
        self.outbox = Outbox(str(cfg.store.path))
        self._bd = BdSeq(str(cfg.store.path) + ".bdseq")
        self.supervisor = Supervisor()
        self.devices: dict[str, dict[str, Any]] = {}  # id -> birth entry
        self.disabled: dict[str, ConfigError] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, App] = {}  # device id -> its app
        self._tasks: set[asyncio.Task[Any]] = set()
        self._will_connections = -1  # bus.connections when the last will was made
        self._seen_state: set[str] = set()
        self._responses: collections.OrderedDict[str, asyncio.Future[dict[str, Any]]] = collections.OrderedDict()
        self._central: tuple[str, str] | None = None
        self._stopping = False
        self.ready = asyncio.Event()
        #: requests to central as this node, for apps that call it (a kiosk issuing tickets)
        self.requester = Requester(self.id)
        self._build_devices()
        self._follows = sorted({f for app in self.apps.values() for f in app.subscriptions()})
        self._answers = self.topics.central_res(self.id) if any(a.uses_central for a in self.apps.values()) else None
        subscriptions = [
            (self.topics.central_status, 1),
            (self.topics.node_status(self.id), 1),
            (self.topics.dev_cmd_filter(self.id), 1),
        ] + [(f, 1) for f in self._follows] + ([(self._answers, 1)] if self._answers else [])
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
            tls=cfg.mqtt.tls,
        )
        self.requester.bus = self.bus

    @property
    def bd_seq(self) -> int:
        """The bd_seq of the current (or last) connection."""
        return self._bd.value

    @property
    def dropped_retained(self) -> int:
        return self.bus.dropped_retained

    # -- devices ----------------------------------------------------------------------------
    def _build_devices(self) -> None:
        for plan in self.plans.values():
            self.devices[plan.id] = plan.birth_entry()
            if plan.disabled is not None:
                self.disabled[plan.id] = plan.disabled
                log.error("device %s disabled: %s", plan.id, plan.disabled.message)
                self.states[plan.id] = {"device": plan.id, "available": False, "health": "fault",
                                        "reason": f"disabled: {plan.disabled.message}", "since": messages.now_iso()}
                self._seen_state.add(plan.id)
                continue
            app = None
            if plan.app is not None:
                submit = (lambda action, args, device=plan.id: self.supervisor.get(device).submit(action, args))
                request = self._request if plan.app.uses_central else None
                ctx = AppContext(self.id, plan.id, self.topics, submit, logging.getLogger(f"hallctl.apps.{plan.app.name}"),
                                 request, self._submit_to)
                app = self.apps[plan.id] = plan.app(ctx, plan.app_options)
            self.supervisor.add(DeviceWorker(
                plan.id, lambda plan=plan: self._make_driver(plan), on_state=self._on_device_state,
                on_up=app.on_up if app is not None else None, probe_interval=plan.probe_interval_s))

    async def _submit_to(self, device: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if device not in self.plans or self.plans[device].disabled is not None:
            raise UnknownDevice(f"no device {device!r} on this node")
        return await self.supervisor.get(device).submit(action, args)

    def _make_driver(self, plan: DevicePlan) -> Any:
        driver = plan.build_driver()
        driver.on_event = lambda type_, data: self._spawn(self._on_device_event(plan.id, type_, data))
        return driver

    async def _on_device_event(self, device: str, type_: str, data: dict[str, Any]) -> None:
        """A device reported something by itself: published (through the outbox, so a button
        press or a card read outlives a broker outage), then handed to its app. The event must be
        one its kind declares: another is a driver bug, logged and not published (no reader of
        the contract expects it). Data that does not fit the kind's schema is published all the
        same (a citizen's rating is not dropped for a driver's mistake) and logged."""
        kind = self.plans[device].kind
        schema = kind.events.get(type_) if kind is not None else None
        if schema is None:
            log.error("device %s emitted %r, which its kind %s does not declare (a driver bug); not published",
                      device, type_, kind.name if kind else "?")
            return
        try:
            check(schema, data, "data")
        except SchemaError as exc:
            log.error("device %s: event %s does not fit its kind's schema (%s: %s); published all the same",
                      device, type_, exc.path, exc.problem)
        await self.bus.apublish_reliable(self.topics.dev_event(self.id, device, type_),
                                         messages.device_event(device, type_, data))
        for other, app in self.apps.items():
            try:
                if other == device:
                    app.on_device_event(type_, data)
                else:
                    app.on_node_event(device, kind.name if kind else None, type_, data)
            except Exception:  # noqa: BLE001 - an app's bug must not stop the node
                log.exception("app of device %s failed on event %s of %s", other, type_, device)

    async def _on_device_state(self, state: DeviceState) -> None:
        doc = {k: getattr(state, k) for k in ("device", "available", "health", "reason", "since")}
        self.states[state.device] = doc
        self._seen_state.add(state.device)
        app = self.apps.get(state.device)
        if app is not None:
            try:
                app.on_device_state(dict(doc))
            except Exception:  # noqa: BLE001 - an app's bug must not stop the node
                log.exception("app of device %s failed on its state", state.device)
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
            self._bd.next()
            self._will_connections = self.bus.connections
        return self.topics.node_status(self.id), messages.node_status("lost", self.bd_seq)

    async def _announce(self) -> None:
        profiles = {d["profile"]: {"vendor": p.vendor, "name": p.name}
                    for d in self.devices.values() if (p := self.profiles.profiles.get(d["profile"]))}
        birth = messages.node_birth(self.id, self.bd_seq, hallctl.__version__, list(self.devices.values()), profiles, FEATURES,
                                   started=self.started)
        await self.bus.publish(self.topics.node_birth(self.id), birth, retain=True)
        await self.bus.publish(self.topics.node_status(self.id), messages.node_status("ready", self.bd_seq), retain=True)
        # a copy: a device's first state may arrive while these publish
        for dev_id, doc in list(self.states.items()):
            await self.bus.publish(self.topics.dev_state(self.id, dev_id), messages.device_state(doc), retain=True)

    async def _on_connect(self) -> None:
        self._central = None
        await self._announce()
        self._maybe_ready()

    async def _request(self, action: str, data: Mapping[str, Any] | None = None, *, timeout: float = 3.0,
                       attempts: int = 2) -> dict[str, Any]:
        """An app's request to central as this node (retried with the same request_id, with
        ``expires_at``, so central never runs one its sender gave up on)."""
        return await self.requester.call(self.topics.central_req(self.id, action), data, timeout=timeout,
                                         attempts=attempts)

    async def _on_message(self, incoming: Incoming) -> None:
        if incoming.topic == self._answers:
            await self.requester.on_message(incoming)
            return
        parsed = parse(incoming.topic)
        if parsed is None:
            return
        if parsed.kind == "dev_cmd":
            await self._on_command(incoming, parsed.device or "", parsed.name or "")
            return
        if any(matches(f, incoming.topic) for f in self._follows):
            self._to_apps(incoming)  # and still the node's own, below: an app may follow central's status
        if parsed.kind == "central_status":
            await self._on_central_status(incoming)
        elif parsed.kind == "node_status" and parsed.node == self.id:
            await self._on_own_status(incoming)

    def _to_apps(self, incoming: Incoming) -> None:
        if not incoming.payload:
            return  # a cleared retained topic
        try:
            doc = messages.decode_object(incoming.payload)
        except BadRequest as exc:
            log.warning("ignored %s: %s", incoming.topic, exc.message)
            return
        for device, app in self.apps.items():
            if any(matches(f, incoming.topic) for f in app.subscriptions()):
                try:
                    app.on_hall_message(incoming.topic, doc)
                except Exception:  # noqa: BLE001 - an app's bug must not stop the node
                    log.exception("app of device %s failed on %s", device, incoming.topic)

    def _on_link(self, up: bool) -> None:
        """Tell the apps each time the broker connection comes up or goes down."""
        for device, app in self.apps.items():
            try:
                app.on_link(up)
            except Exception:  # noqa: BLE001 - an app's bug must not stop the node
                log.exception("app of device %s failed on the link going %s", device, "up" if up else "down")

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
            spec = self.plans[device].actions.get(action)
            if spec is None:  # before device_offline: a retry would never help
                raise UnknownCommand(f"device {device} has no action {action!r}; its actions: "
                                     f"{', '.join(sorted(self.plans[device].actions))}")
            try:
                check(spec.args, request.data, "data")
            except SchemaError as exc:
                raise BadRequest(f"{exc.path}: {exc.problem}", field=exc.path) from None
            if action == "probe":
                data = self.states.get(device, {})
            else:
                data = await self.supervisor.get(device).submit(action, coerce(spec.args, request.data))
                app = self.apps.get(device)
                if app is not None:
                    app.after_command(action)
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
        for device, app in self.apps.items():
            await app.start()  # what an app serves itself (a kiosk's page) is up before it runs
        coros = [("bus", self.bus.run()), ("supervisor", self.supervisor.run()),
                 ("watchdog", self.notifier.run_watchdog(self.bus.healthy))]
        coros += [(f"app-{device}", app.run()) for device, app in self.apps.items()]
        self.bus.on_link = self._on_link
        if not self.devices:
            coros.append(("ready", self._ready_without_devices()))
        await run_together(coros)

    async def _ready_without_devices(self) -> None:
        await self.bus.connected.wait()
        self._maybe_ready()

    async def stop(self) -> None:
        self._stopping = True
        self.notifier.stopping()
        for device, app in self.apps.items():
            try:
                await app.stop()
            except Exception:  # noqa: BLE001 - the node stops all the same
                log.exception("app of device %s failed to stop", device)
        final: list[tuple[str, Any, bool]] = []
        for dev_id, doc in self.states.items():
            gone = {**doc, "available": False, "health": "unknown", "reason": "node stopped", "since": messages.now_iso()}
            final.append((self.topics.dev_state(self.id, dev_id), messages.device_state(gone), True))
        final.append((self.topics.node_status(self.id), messages.node_status("offline", self.bd_seq), True))
        await self.bus.close(final)
        self.outbox.close()
