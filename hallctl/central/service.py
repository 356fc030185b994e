"""The shell around the central core: requests in from MQTT, events and retained state out.

Nothing waits in line behind what it does not need (docs/architecture.md, "Central's request
path"):

* the bus hands every message, in order, to :meth:`CentralService._on_message`, which only routes;
* writes queue for one writer task (:mod:`hallctl.central.writer`). It takes every write waiting
  (up to ``MAX_BATCH``) and, in a worker thread, runs the pure :class:`~hallctl.central.core.Central`
  on each and commits the whole batch (events, responses, day checkpoint) in one SQLite
  transaction (group commit, still ``synchronous=FULL``); only then are the responses published,
  each in a task of its own. A request already answered is answered from the store; a copy of one
  still queued or committing gets the same answer when it is ready: nothing runs twice and a
  ticket never prints twice;
* committed events go to the outbox in a task of their own (one transaction per round), off the
  response path; the outbox's mark finds any that a crash or a failed put left behind;
* read-only actions come on an MQTT connection of their own, served by a thread of its own
  (:class:`~hallctl.bus.client.BusThread`), so they never queue behind writes at the broker, in a
  socket or on a busy event loop; they are answered from committed state: the writer holds
  ``_state_lock`` while a batch is applied and committed, so a read waits for that batch only;
* retained state is published by one task woken after each batch, from committed state
  (:mod:`hallctl.central.retained`); with it the hall's health (:mod:`hallctl.central.health`),
  folded from the nodes' retained status, birth and device state topics, and the catalogue
  (:mod:`hallctl.central.catalogue`), which a timer (:mod:`hallctl.central.wakeup`) also
  refreshes when the hall opens or closes; the same timer voids a ticket whose print was not
  confirmed in time, through a tick of the core.

If a commit fails (a full disk, an I/O error) the core is rebuilt from the store
(:mod:`hallctl.central.replay`), so memory (and the retained state built from it) never holds what
the disk does not, and every request of the batch is answered ``internal`` (not stored: a retry
may succeed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, TypeVar
from zoneinfo import ZoneInfo

from hallctl.access.roles import Access, Client
from hallctl.bus import messages
from hallctl.bus.client import Bus, BusThread, Incoming
from hallctl.bus.tls import TlsSettings
from hallctl.bus.topics import Parsed, Topics, check_id, check_name, parse
from hallctl.central import replay
from hallctl.central.args import check_fields
from hallctl.central.catalogue import catalogue_document, next_change
from hallctl.central.core import Central
from hallctl.central.hallconfig import hall_from_config
from hallctl.central.health import HallHealth
from hallctl.central.history import History
from hallctl.central.kpi import Kpis
from hallctl.central.model import Event, HallSpec
from hallctl.central.retained import RetainedPublisher
from hallctl.central.store import Store
from hallctl.central.config import CentralConfig
from hallctl.central.wakeup import Wakeup
from hallctl.central.writer import Write, Writer
from hallctl.errors import BadRequest, Forbidden, HallctlError, UnknownCommand
from hallctl.privacy import scrub
from hallctl.runtime.outbox import Outbox, storage_outage
from hallctl.runtime.tasks import cancel_and_wait, run_together

T = TypeVar("T")

log = logging.getLogger("hallctl.central")

#: how long a response is kept for answering duplicates of its request
RESPONSE_DAYS = 7
#: outbox mark: the seq of the last event put in the outbox
EVENTS_MARK = "events"
#: a request topic that cannot be answered is logged at most once per this many seconds
UNANSWERABLE_LOG_EVERY_S = 60.0
#: the online central/status, with its ``unanswerable`` count, is re-published at most this often
STATUS_EVERY_S = 1.0
#: topics remembered for that log throttle before the ones logged long enough ago are forgotten
_LOGGED_KEPT = 4096


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    keepalive: int = 15
    #: the hall's CA (and a client certificate) for MQTT over TLS; None: plain TCP
    tls: TlsSettings | None = None


class CentralService:
    """Central as a service. Constructing it does no I/O; :meth:`start` (or :meth:`run`) opens the
    store and the outbox and rebuilds the core from the store, off the event loop."""

    def __init__(
        self,
        hall: HallSpec,
        store_path: str,
        mqtt: MqttSettings,
        *,
        client_id: str = "central",
        clock: Callable[[], datetime] | None = None,
        housekeeping_every_s: float = 30.0,
        clients: tuple[Client, ...] | None = None,
    ) -> None:
        """``clients``: the hall's clients and their roles (``[[client]]``); None: an open hall,
        where every client may call every action."""
        tz = ZoneInfo(hall.tz)
        self.hall = hall
        self.topics = Topics(hall.hall_id)
        self.store = Store(store_path)
        self.outbox = Outbox(store_path + ".outbox")
        self._clock = clock or (lambda: datetime.now(tz))
        self.core: Central  # set by open()
        self.history: History  # set by open()
        self.health = HallHealth(self._clock)
        self.instance = f"{client_id}-{os.getpid()}"
        self._req_prefix = f"{self.topics.base}/central/req/"
        self.access = Access(clients)
        #: requests that could not be answered (no valid reply topic) since this instance started;
        #: counted by both connections' threads, under the lock
        self.unanswerable = 0
        self._unanswerable_lock = threading.Lock()
        self._unanswerable_logged: dict[str, float] = {}
        self._status_due = False
        self._status_at = -STATUS_EVERY_S
        self._stopping = False
        self.bus = Bus(
            mqtt.host,
            mqtt.port,
            client_id,
            # central/req/# and not .../+/+: a request on a topic of another shape is counted and
            # logged as unanswerable (docs/topics.md), not left unseen
            subscriptions=[(f"{self._req_prefix}#", 1), (self.topics.node_status_filter, 1),
                           (self.topics.node_birth_filter, 1), (self.topics.dev_state_filter, 1)],
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=lambda: (self.topics.central_status, messages.central_status("offline", self.instance)),
            outbox=self.outbox,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=mqtt.password,
            tls=mqtt.tls,
        )
        #: the read-only actions' own connection and thread: a burst of writes queued at the broker
        #: for ``bus``, or keeping this loop busy, does not delay them (bench/central_load.py)
        self.reads = Bus(
            mqtt.host,
            mqtt.port,
            f"{client_id}-reads",
            subscriptions=[(f"{self.topics.base}/central/req/+/{action}", 1) for action in sorted(self.VIEWS)],
            on_message=self._on_read,
            on_connect=self._reads_connected,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=mqtt.password,
            tls=mqtt.tls,
        )
        self._reads_thread = BusThread(self.reads)
        self._reads_up = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: held while the core or the KPIs change (the writer's thread, settling on the loop) and
        #: while a view is computed from them (the reads thread, this loop)
        self._state_lock = threading.Lock()
        self._opened = False
        self._starting: asyncio.Future[None] | None = None
        self.writer = Writer(self.store, self._state_lock, core=lambda: self.core, rebuild=self._rebuild,
                             stored=self._stored, send=self._send, changed=lambda: self.retained.changed())
        self.retained = RetainedPublisher(self.bus, self.writer.committed, states=self._states,
                                          kpis=self.kpi_document, kpi_topic=self.topics.central_kpi)
        #: committed events for the outbox, and whether to look for stored ones never queued
        self._unqueued: list[Event] = []
        self._check_unqueued = False
        self._queue_wake = asyncio.Event()
        self._loops: set[asyncio.Task[Any]] = set()
        self._staffing_slot: str | None = None
        #: wakes central when the clock alone changes the hall: opening, closing, a print due
        self._wakeup = Wakeup(self._woken, self._clock)
        self._housekeeping_every_s = housekeeping_every_s
        self.last_reload: dict[str, Any] | None = None
        #: set once central has announced itself online: writes and reads are both served
        self.ready = asyncio.Event()

    QUERIES = frozenset({"kpi.summary", "staffing.advice"})
    #: every read-only action: answered, never stored
    VIEWS = QUERIES | Central.READ_ONLY

    def _query(self, client: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
        if action in Central.READ_ONLY:
            answer = self.core.handle(action, data).data
            if action == "ticket.status":
                self._add_clerk_fields(client, answer)
            return answer
        check_fields(data, ("day",) if action == "kpi.summary" else ())  # as every other action
        if action == "kpi.summary":
            day = data.get("day")
            if day is not None and not _is_iso_date(day):
                raise BadRequest("day: must be a date YYYY-MM-DD", field="day")
            return self.kpis.summary(day)
        return self.staffing_advice()

    @property
    def kpis(self) -> Kpis:
        return self.history.kpis

    @property
    def handled(self) -> int:
        """Writes whose response was stored."""
        return self.writer.handled

    @property
    def _pending(self) -> dict[str, Write]:
        return self.writer.pending

    @property
    def dropped_retained(self) -> int:
        return self.bus.dropped_retained + self.reads.dropped_retained

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and the outbox and rebuild the core from the store (blocking; the
        service does it in :meth:`start`). A full or read-only disk raises StorageUnavailable."""
        if self._opened:
            return
        try:
            Path(self.store.path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_outage(exc, self.store.path.parent) or exc
        self.store.open()
        self.outbox.open()
        self._rebuild()
        log.info("central %s: replayed %d events from %s", self.hall.hall_id, self.core.last_seq, self.store.path)
        if self.outbox.mark(EVENTS_MARK) is None:  # a new outbox: nothing before now is owed
            self.outbox.put_many([], mark=(EVENTS_MARK, self.store.last_seq()))
        self._queue_events([], check=True)
        self._opened = True

    async def start(self) -> None:
        """:meth:`open` in a worker thread, once (a second call waits for the first)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(asyncio.to_thread(self.open))
        await asyncio.shield(self._starting)

    async def run(self) -> None:
        await self.start()
        self._loop = asyncio.get_running_loop()
        if self.access.open:
            log.warning("no [[client]] in the config: every client may call every action (an open hall; "
                        "docs/access.md)")
        await run_together([
            ("central-bus", self.bus.run()),
            ("central-reads", self._reads_thread.run()),
            ("central-writer", self._stoppable(self.writer.run())),
            ("central-publisher", self._stoppable(self.retained.run())),
            ("central-queuer", self._stoppable(self._queue_loop())),
            ("central-housekeeping", self._stoppable(self._housekeeping())),
        ])

    async def _stoppable(self, loop: Awaitable[None]) -> None:
        """``await loop`` in a task that :meth:`stop` cancels."""
        self._loops.add(asyncio.current_task())  # type: ignore[arg-type]
        await loop

    async def _housekeeping(self) -> None:
        """Roll the business day over on time (not at the first request of the morning), keep
        the idempotency table small, publish the staffing advice each half hour and the KPIs
        when they changed."""
        while True:
            await asyncio.sleep(self._housekeeping_every_s)
            try:
                await self._tick()
                # every round: a new day clears the board, and a failed clear is retried
                self.retained.kpis_due()
                self._check_unqueued = True
                self._queue_wake.set()
                now = self._clock()
                slot = now.strftime("%Y-%m-%d %H") + (":30" if now.minute >= 30 else ":00")
                if slot != self._staffing_slot and await self.bus.try_publish(
                        self.topics.central_staffing, await self.writer.committed(self.staffing_advice), retain=True):
                    self._staffing_slot = slot
                await asyncio.to_thread(self.store.prune_responses, RESPONSE_DAYS)
                await self.writer.committed(lambda: self.history.trim())  # under _state_lock
            except Exception:  # noqa: BLE001 - housekeeping must not stop the hall
                log.exception("central housekeeping failed")

    async def stop(self) -> None:
        self._stopping = True  # no online status after the offline one
        self._wakeup.cancel()
        await self.bus.close([(self.topics.central_status, messages.central_status("offline", self.instance), True)])
        await self._reads_thread.close()
        for task in list(self._loops):
            await cancel_and_wait(task)
        # a commit still running in its thread finishes first: close() waits for the store's lock
        await asyncio.to_thread(self._close_files)

    def _close_files(self) -> None:
        self.outbox.close()
        self.store.close()

    async def _on_connect(self) -> None:
        """Re-publish every retained state (the broker may have restarted empty) and announce."""
        self.retained.reconnected()
        self._spawn(self._announce())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task of its own, which :meth:`stop` cancels."""
        task = asyncio.create_task(work)
        self._loops.add(task)
        task.add_done_callback(self._loops.discard)

    async def _announce(self) -> None:
        """``online`` once read-only actions are served too (clients start asking when they see it)."""
        await self._reads_up.wait()
        if await self.bus.try_publish(self.topics.central_status, self._online_status(), retain=True):
            self.ready.set()

    # -- state ------------------------------------------------------------------------------
    def _states(self) -> dict[str, dict[str, Any]]:
        out = {self.topics.window_state(w): self.core.window_state(w) for w in self.hall.windows}
        out[self.topics.board_state] = self.core.board_state()
        out[self.topics.central_health] = self.health.document()
        now = self._clock()
        out[self.topics.central_catalogue] = catalogue_document(self.core, now)
        self._wakeup.arm((next_change(self.core, now), self.core.confirm_due()))
        return out

    def _woken(self) -> None:
        """The hall opens or closes, or a print confirmation is due: void what is overdue (a
        tick of the core) and publish what changed."""
        if self._stopping:
            return
        self._spawn(self._wake_round())

    async def _wake_round(self) -> None:
        try:
            await self._tick()
        except Exception:  # noqa: BLE001 - housekeeping's next round tries again
            log.exception("central could not void the overdue tickets")
        self.retained.changed()

    def kpi_document(self) -> dict[str, Any]:
        """Today's KPIs as published on ``central/kpi`` (:meth:`History.kpi_document`)."""
        return self.history.kpi_document()

    def staffing_advice(self) -> dict[str, Any]:
        """Windows to open per half hour today (:meth:`History.staffing_advice`)."""
        return self.history.staffing_advice(self.hall, self.core)

    async def _publish_states(self) -> None:
        await self.retained.publish_states()

    def _today(self) -> str:
        return self.hall.business_day(self._clock())

    def _rebuild(self) -> None:
        """The core (and the KPIs and arrival history) as the store says they are. Used at start
        and when a commit failed, so memory (and the retained state built from it) never holds
        what the disk does not."""
        history = History(self._today)
        history.kpis.target = (self.hall.target_share, self.hall.target_wait_s)
        self.core, self.replayed, self.observed = replay.rebuild(self.store, self.hall, self._clock, history)
        self.history = history

    # -- requests ---------------------------------------------------------------------------
    async def _on_message(self, incoming: Incoming) -> None:
        """A write (or an unknown action): route it to the writer; a node's retained status, birth
        or device state: fold it into the hall's health. Nothing here waits."""
        parsed = parse(incoming.topic)
        if parsed is not None and parsed.kind in _HEALTH_KINDS and parsed.hall == self.hall.hall_id:
            self._fold_health(parsed, incoming)
            return
        got = await self._request_of(self.bus, incoming, skip=self.VIEWS)
        if got is None:
            return
        client, action, request = got
        if action not in Central.ACTIONS:  # answered here, naming every action central has
            known = ", ".join(sorted({*Central.ACTIONS, *self.VIEWS}))
            self._send(client, messages.response_error(request.request_id, UnknownCommand(
                f"unknown action {action!r}; known: {known}", action=action)))
            return
        self.writer.submit(*got)

    def _fold_health(self, parsed: Parsed, incoming: Incoming) -> None:
        try:
            doc = messages.decode_object(incoming.payload) if incoming.payload else None
        except BadRequest:
            log.warning("unreadable document on %s; the hall's health ignores it", incoming.topic)
            return
        node = parsed.node or ""
        if parsed.kind == "node_status":
            changed = self.health.node_status(node, doc, live=not incoming.retain)
        elif parsed.kind == "node_birth":
            changed = self.health.node_birth(node, doc)
        else:
            changed = self.health.device_state(node, parsed.device or "", doc)
        if changed:
            self.retained.changed()

    async def _on_read(self, incoming: Incoming) -> None:
        """A read-only action, in the reads thread: answered from committed state (the lock waits
        for the batch being applied and committed, if any)."""
        got = await self._request_of(self.reads, incoming)
        if got is not None:
            client, action, request = got
            with self._state_lock:
                response = self._view(client, action, request)
            self._send(client, response, self.reads)

    async def _reads_connected(self) -> None:
        """In the reads thread: tell the loop that read-only actions are served."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._reads_up.set)

    async def _request_of(self, bus: Bus, incoming: Incoming, skip: frozenset[str] = frozenset()
                          ) -> tuple[str, str, messages.Request] | None:
        """(client, action, request) of a request for central; None when it is not one to
        answer here, was answered at once (a bad request), or cannot be answered (counted)."""
        parsed = parse(incoming.topic)
        if parsed is None or parsed.kind != "central_req":
            # counted by the main connection only: central/req/# brings it every such topic (the
            # reads connection's central/req/+/<action> may too: an empty client id)
            topic = incoming.topic
            if bus is self.bus and (topic + "/").startswith(self._req_prefix) and not await bus.skip_request(incoming):
                levels = topic[len(self._req_prefix):].split("/") if topic.startswith(self._req_prefix) else []
                self._unanswerable(topic, "an empty client id or action" if len(levels) == 2 else
                                   f"{len(levels)} levels after central/req, not 2 (<client>/<action>)")
            return None
        if parsed.hall != self.hall.hall_id:
            return None
        action, payload = parsed.name or "", incoming.payload
        if action in skip or await bus.skip_request(incoming):
            return None
        try:
            client = check_id(parsed.client or "", "client")
        except BadRequest as exc:
            self._unanswerable(incoming.topic, f"invalid client id: {exc.message}")
            return None
        try:
            check_name(action)
            request = messages.parse_request(payload)
            self._check_access(client, action, request)
            return client, action, request
        except (BadRequest, Forbidden) as exc:
            self._send(client, messages.response_error(messages.request_id_of(payload), exc), bus)
            return None

    def _check_access(self, client: str, action: str, request: messages.Request) -> None:
        """Forbidden unless the client's role may call the action (an unknown action is left to
        be answered unknown_command). Checked before anything is stored: a refusal is not
        remembered, so a retry after the hall's config grants the action runs."""
        if action in Central.ACTIONS or action in self.VIEWS:
            self.access.check(client, action, request.data)

    def set_clients(self, clients: tuple[Client, ...] | None) -> None:
        """The hall's clients and roles again (a config reload)."""
        self.access = Access(clients)

    def _unanswerable(self, topic: str, reason: str) -> None:
        """A request on ``topic`` that cannot be answered, there being no valid reply topic:
        counted on the online ``central/status`` and logged at most once per topic per
        :data:`UNANSWERABLE_LOG_EVERY_S`. Called from either connection's thread."""
        now = time.monotonic()
        with self._unanswerable_lock:
            self.unanswerable += 1
            last = self._unanswerable_logged.get(topic)
            warn = last is None or now - last >= UNANSWERABLE_LOG_EVERY_S
            if warn:
                if len(self._unanswerable_logged) >= _LOGGED_KEPT:
                    self._unanswerable_logged = {t: at for t, at in self._unanswerable_logged.items()
                                                 if now - at < UNANSWERABLE_LOG_EVERY_S}
                self._unanswerable_logged[topic] = now
            schedule, self._status_due = not self._status_due, True
        if warn:
            # a topic is whatever a client made it: a phone number in it is masked, as in any message
            log.warning("request on %s cannot be answered (%s); counted as unanswerable in central/status",
                        scrub(topic), reason)
        loop = self._loop
        if schedule and loop is not None:
            try:
                loop.call_soon_threadsafe(self._status_changed)
            except RuntimeError:  # the loop has closed: central is stopping
                pass

    def _status_changed(self) -> None:
        self._spawn(self._republish_status())

    async def _republish_status(self) -> None:
        """The online status again, with the current counts, at most every :data:`STATUS_EVERY_S`."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._status_at + STATUS_EVERY_S - loop.time()))
        with self._unanswerable_lock:
            self._status_due = False
        self._status_at = loop.time()
        # not yet announced: the announcement carries the count
        if self.ready.is_set() and not self._stopping:
            await self.bus.try_publish(self.topics.central_status, self._online_status(), retain=True)

    def _send(self, client: str, response: dict[str, Any] | bytes | None, bus: Bus | None = None) -> None:
        """Answer ``client``: a response, or its bytes as stored (re-sent unchanged)."""
        (bus or self.bus).spawn_publish(self.topics.central_res(client), response or {})

    def respond(self, client: str, action: str, payload: bytes) -> dict[str, Any]:
        """Handle one request and return its response (stored, so a duplicate gets the same):
        the request path without MQTT, blocking (tests, tools). Opens the store if need be; on a
        running service only while no batch is being written."""
        self.open()
        if self.writer.uncommitted:
            raise RuntimeError("respond() called while a batch is being committed")
        try:
            check_name(action)
            request = messages.parse_request(payload)
            self._check_access(client, action, request)
        except (BadRequest, Forbidden) as exc:
            return messages.response_error(messages.request_id_of(payload), exc)
        if action in self.VIEWS:  # answered, not stored
            return self._view(client, action, request)
        write = Write(client, action, request, f"{client}:{request.request_id}")
        self._write_now([write])
        response = write.answer()
        assert response is not None
        return response

    def tick(self) -> None:
        """Housekeeping's day rollover, blocking (tests, tools)."""
        self.open()
        self._write_now([Write("", "", None, None)])

    async def _tick(self) -> None:
        """Housekeeping's tick through the writer; raises if its commit failed."""
        if not self.writer.running:
            self.tick()
            return
        await self.writer.tick()

    def _write_now(self, writes: list[Write]) -> None:
        """A batch written at once, blocking; without a running service, the events are queued too."""
        self.writer.write_now(writes)
        if not self.writer.running:
            events, self._unqueued = self._unqueued, []
            self._queue_events(events)

    def _add_clerk_fields(self, client: str, answer: dict[str, Any]) -> None:
        """A ``ticket.status`` answer to the window the ticket was called to (or central's
        roles) carries what only that window may know: the online application's code."""
        view = answer.get("ticket") or {}
        ticket = self.core.ticket(view.get("id", ""))
        if ticket is not None and ticket.online_code is not None and self.access.sees_window(client, ticket.window):
            answer["ticket"] = {**view, "online_code": ticket.online_code}

    def _view(self, client: str, action: str, request: messages.Request) -> dict[str, Any]:
        """A read-only action's response, from the state in memory (callers see it committed)."""
        try:
            return messages.response_ok(request.request_id, self._query(client, action, request.data))
        except HallctlError as exc:
            return messages.response_error(request.request_id, exc)
        except Exception:  # noqa: BLE001 - every request is answered
            log.exception("central failed on %s", action)
            return messages.response_error(request.request_id, HallctlError("internal error; see central's log"))

    async def _exclusive(self, run: Callable[[], Awaitable[T]]) -> T:
        """``await run()`` between two batches: no batch is applied while it runs."""
        return await self.writer.exclusive(run)

    def _online_status(self) -> dict[str, Any]:
        return messages.central_status("online", self.instance, self.last_reload, unanswerable=self.unanswerable)

    async def note_reload(self, ok: bool, message: str) -> None:
        """Record the outcome of a reload on the retained central status, where a technician's
        tool (or the hall's dashboard) sees whether ``systemctl reload`` took and, if not, why."""
        self.last_reload = {"ok": ok, "at": self._clock().isoformat(timespec="seconds"), "message": message}
        await self.bus.try_publish(self.topics.central_status, self._online_status(), retain=True)

    # -- reload -----------------------------------------------------------------------------
    def check_reload(self, hall: HallSpec) -> Central:
        """The core the hall would run on under ``hall``: today's events replayed into it.
        Raises ConfigError, changing nothing, when the new config would strand someone: a
        queue with tickets waiting or a window that is open or has a ticket at it, removed."""
        return replay.check_reload(self.store, self._clock, self.core, self.hall, hall)

    async def reload(self, hall: HallSpec) -> None:
        """Run on ``hall`` from now on, keeping every ticket, its number, class and arrival time,
        the windows' states and what was learned. Raises ConfigError (nothing changed) when the
        new config is refused (:meth:`check_reload`). Runs between two batches of writes."""
        await self.start()
        await self._exclusive(lambda: self._reload(hall))
        await self._publish_states()

    async def _reload(self, hall: HallSpec) -> None:
        core = await asyncio.to_thread(self.check_reload, hall)
        removed = [w for w in self.hall.windows if w not in hall.windows]
        with self._state_lock:
            self.hall, self.core = hall, core
            self.history.kpis.target = (hall.target_share, hall.target_wait_s)
        log.warning("central %s: config reloaded (%d queues, %d windows, %d matters, policy %s)",
                    hall.hall_id, len(hall.queues), len(hall.windows), len(hall.matters), hall.policy)
        # no retained state left behind for a window that is gone (retried until the broker has it)
        self.retained.clear(self.topics.window_state(w) for w in removed)

    # -- events to the outbox ---------------------------------------------------------------
    def _stored(self, events: list[Event]) -> None:
        """A batch was committed: fold its events into the KPIs and the arrival history, and queue
        them for the outbox."""
        with self._state_lock:
            for event in events:
                self.history.observe(event)
        if events:
            self._unqueued.extend(events)
            self._queue_wake.set()

    async def _queue_loop(self) -> None:
        """Put committed events in the outbox, off the response path: a response waits for its
        store commit only. The outbox mark says which events are queued, so events stored but not
        queued (a crash, a failed put) are found and queued here, and none is queued twice."""
        while True:
            await self._queue_wake.wait()
            self._queue_wake.clear()
            events, self._unqueued = self._unqueued, []
            check, self._check_unqueued = self._check_unqueued, False
            try:
                await asyncio.to_thread(self._queue_events, events, check)
            except Exception:  # noqa: BLE001 - stored is what counts; the next round looks again
                log.exception("events stored but not queued for publishing; retrying at the next round")
                self._check_unqueued = True

    def _queue_events(self, events: list[Event], check: bool = False) -> None:
        """Events after the outbox mark go to the outbox with a new mark, in one transaction;
        with ``check``, every stored event after the mark (blocking)."""
        mark = self.outbox.mark(EVENTS_MARK) or 0
        if check:
            stored = list(self.store.load_events(after=mark))
            late = sum(1 for e in stored if not events or e.seq < events[0].seq)
            if late:
                log.warning("queueing %d stored events that never reached the outbox", late)
            events = stored + [e for e in events if not stored or e.seq > stored[-1].seq]
        events = [e for e in events if e.seq > mark]
        if events:
            items = [(self.topics.event(e.type), messages.encode(Central.event_public(e)), 1, False) for e in events]
            self.outbox.put_many(items, mark=(EVENTS_MARK, events[-1].seq))


_HEALTH_KINDS = frozenset({"node_status", "node_birth", "dev_state"})


def _is_iso_date(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def central_from_config(cfg: CentralConfig) -> CentralService:
    """Build the service from a validated central config (no I/O: ``run()`` opens the store)."""
    hall = hall_from_config(cfg)
    mqtt = MqttSettings(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt.password, cfg.mqtt.keepalive,
                        cfg.mqtt.tls)
    return CentralService(hall, str(cfg.store.path), mqtt, client_id=cfg.id, clients=cfg.clients)