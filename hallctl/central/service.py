"""The shell around the central core: requests in from MQTT, events and retained state out.

Nothing waits in line behind what it does not need (docs/architecture.md, "Central's request
path"):

* the bus hands every message, in order, to :meth:`CentralService._on_message`, which only routes;
* writes queue for one writer task. It takes every write waiting (up to ``MAX_BATCH``) and, in a
  worker thread, runs the pure :class:`~hallctl.central.core.Central` on each and commits the
  whole batch (events, responses, day checkpoint) in one SQLite transaction (group commit, still
  ``synchronous=FULL``); only then are the responses published, each in a task of its own. A
  request already answered is answered from the store; a copy of one still queued or committing
  gets the same answer when it is ready: nothing runs twice and a ticket never prints twice;
* committed events go to the outbox in a task of their own (one transaction per round), off the
  response path; the outbox's mark finds any that a crash or a failed put left behind;
* read-only actions come on an MQTT connection of their own, served by a thread of its own
  (:class:`~hallctl.bus.client.BusThread`), so they never queue behind writes at the broker, in a
  socket or on a busy event loop; they are answered from committed state: the writer holds
  ``_state_lock`` while a batch is applied and committed, so a read waits for that batch only;
* retained state is published by one task woken after each batch, from committed state; with it
  the hall's health (:mod:`hallctl.central.health`), folded from the nodes' retained status,
  birth and device state topics.

If a commit fails (a full disk, an I/O error) the core is rebuilt from the store, so memory (and
the retained state built from it) never holds what the disk does not, and every request of the
batch is answered ``internal`` (not stored: a retry may succeed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar
from zoneinfo import ZoneInfo

from hallctl.bus import messages
from hallctl.bus.client import Bus, BusThread, Incoming
from hallctl.bus.topics import Parsed, Topics, check_id, check_name, parse
from hallctl.central.core import Central
from hallctl.central.hallconfig import hall_from_config
from hallctl.central.health import HallHealth
from hallctl.central.kpi import Kpis
from hallctl.central.model import AT_WINDOW, Event, HallSpec
from hallctl.central.staffing import advise, forecast_from_history
from hallctl.central.store import Store
from hallctl.central.config import CentralConfig
from hallctl.errors import BadRequest, ConfigError, Expired, HallctlError
from hallctl.runtime.outbox import Outbox, storage_outage
from hallctl.runtime.tasks import cancel_and_wait, run_together

T = TypeVar("T")

log = logging.getLogger("hallctl.central")

#: how long a response is kept for answering duplicates of its request
RESPONSE_DAYS = 7
#: outbox mark: the seq of the last event put in the outbox
EVENTS_MARK = "events"
#: days of history kept in memory for KPIs and the staffing forecast
HISTORY_DAYS = 35
#: staffing target: this share of citizens called within this many seconds
STAFFING_TARGET = (0.8, 900.0)
#: most writes applied and committed together: bounds how long a read waits for the batch in
#: flight. During a burst of 1,000 (bench/central_load.py) a read's p99 was 80-130 ms with 128,
#: 40-60 with 32, 20-30 with 16; still 1,300-1,900 tickets/s
MAX_BATCH = 16


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    keepalive: int = 15


@dataclass(eq=False)
class _Write:
    """A request for the writer, or (``action`` empty) housekeeping's tick."""

    client: str
    action: str
    request: messages.Request | None
    key: str | None
    response: dict[str, Any] | None = None
    #: the response goes to the store with the batch (internal errors do not: a retry may succeed)
    store: bool = False
    #: copies that arrived while this one was queued or committing; each gets the answer
    copies: int = 1
    done: asyncio.Future[None] | None = None


@dataclass(eq=False)
class _Job:
    """Work that must see no batch in flight (a reload)."""

    run: Callable[[], Awaitable[Any]]
    done: asyncio.Future[Any]


@dataclass
class _Batch:
    writes: list[_Write]
    events: list[Event] = field(default_factory=list)
    checkpoints: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    ok: bool = True

    def responses(self) -> list[tuple[str, dict[str, Any] | None]]:
        return [(w.key, w.response) for w in self.writes if w.store and w.key is not None]

    def failed(self) -> None:
        """Nothing of it was stored: what was to be stored is answered ``internal`` instead."""
        self.ok = False
        for w in self.writes:
            if w.store:
                w.store = False
                rid = w.request.request_id if w.request else None
                w.response = messages.response_error(rid, HallctlError("internal error: could not store; try again"))


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
    ) -> None:
        tz = ZoneInfo(hall.tz)
        self.hall = hall
        self.topics = Topics(hall.hall_id)
        self.store = Store(store_path)
        self.outbox = Outbox(store_path + ".outbox")
        self._clock = clock or (lambda: datetime.now(tz))
        self.core: Central  # set by open()
        self.kpis: Kpis
        self.health = HallHealth(self._clock)
        self.instance = f"{client_id}-{os.getpid()}"
        self.bus = Bus(
            mqtt.host,
            mqtt.port,
            client_id,
            subscriptions=[(self.topics.central_req_filter, 1), (self.topics.node_status_filter, 1),
                           (self.topics.node_birth_filter, 1), (self.topics.dev_state_filter, 1)],
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=lambda: (self.topics.central_status, messages.central_status("offline", self.instance)),
            outbox=self.outbox,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=mqtt.password,
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
        )
        self._reads_thread = BusThread(self.reads)
        self._reads_up = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: held while the core or the KPIs change (the writer's thread, settling on the loop) and
        #: while a view is computed from them (the reads thread, this loop)
        self._state_lock = threading.Lock()
        self._opened = False
        self._starting: asyncio.Future[None] | None = None
        #: writes and jobs for the writer task, in arrival order
        self._queue: collections.deque[_Write | _Job] = collections.deque()
        self._work = asyncio.Event()
        self._writer_running = False
        #: client:request_id -> the write queued or committing under that key
        self._pending: dict[str, _Write] = {}
        #: the writer's thread has the core: a batch is being applied and committed
        self._uncommitted = False
        #: what this loop computes from committed state (retained state, KPIs, advice) meanwhile:
        #: run right after that batch, before the next is applied
        self._after_commit: list[Callable[[], None]] = []
        #: committed events for the outbox, and whether to look for stored ones never queued
        self._unqueued: list[Event] = []
        self._check_unqueued = False
        self._queue_wake = asyncio.Event()
        self._loops: set[asyncio.Task[Any]] = set()
        self._published: dict[str, dict[str, Any]] = {}
        #: retained topics to clear (a window removed by a reload), retried until done
        self._stale: set[str] = set()
        #: one publisher of retained state at a time, each computing the state when its turn
        #: comes: a slower one can then never put an older document over a newer one
        self._publishing = asyncio.Lock()
        self._state_dirty = asyncio.Event()
        self._kpi_due = True
        self._staffing_slot: str | None = None
        self._housekeeping_every_s = housekeeping_every_s
        self.last_reload: dict[str, Any] | None = None
        self.handled = 0
        #: set once central has announced itself online: writes and reads are both served
        self.ready = asyncio.Event()

    QUERIES = frozenset({"kpi.summary", "staffing.advice"})
    #: every read-only action: answered, never stored
    VIEWS = QUERIES | Central.READ_ONLY

    def _query(self, action: str, data: dict[str, Any]) -> dict[str, Any]:
        if action in Central.READ_ONLY:
            return self.core.handle(action, data).data
        if action == "kpi.summary":
            day = data.get("day")
            if day is not None and not _is_iso_date(day):
                raise BadRequest("day: must be a date YYYY-MM-DD", field="day")
            return self.kpis.summary(day)
        return self.staffing_advice()

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
        self.core = self._rebuild()
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
        await run_together([
            ("central-bus", self.bus.run()),
            ("central-reads", self._reads_thread.run()),
            ("central-writer", self._write_loop()),
            ("central-publisher", self._publish_loop()),
            ("central-queuer", self._queue_loop()),
            ("central-housekeeping", self._housekeeping()),
        ])

    async def _housekeeping(self) -> None:
        """Roll the business day over on time (not at the first request of the morning), keep
        the idempotency table small, publish the staffing advice each half hour and the KPIs
        when they changed."""
        self._loops.add(asyncio.current_task())  # type: ignore[arg-type]
        while True:
            await asyncio.sleep(self._housekeeping_every_s)
            try:
                await self._tick()
                # every round: a new day clears the board, and a failed clear is retried
                self._kpi_due = True
                self._state_dirty.set()
                self._check_unqueued = True
                self._queue_wake.set()
                now = self._clock()
                slot = now.strftime("%Y-%m-%d %H") + (":30" if now.minute >= 30 else ":00")
                if slot != self._staffing_slot and await self.bus.try_publish(
                        self.topics.central_staffing, await self._committed(self.staffing_advice), retain=True):
                    self._staffing_slot = slot
                await asyncio.to_thread(self.store.prune_responses, RESPONSE_DAYS)
                await self._committed(self._trim_arrivals)  # under _state_lock
            except Exception:  # noqa: BLE001 - housekeeping must not stop the hall
                log.exception("central housekeeping failed")

    async def stop(self) -> None:
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
        self._published = {}
        self._kpi_due = True
        self._state_dirty.set()
        task = asyncio.create_task(self._announce())
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
        return out

    def kpi_document(self) -> dict[str, Any]:
        """Today's KPIs as published on ``central/kpi``: the ``kpi.summary`` answer with ``v``,
        without the per-clerk figures (staff performance is asked for with ``kpi.summary``, whose
        answer goes to the asking client only, not retained for every reader of the broker)."""
        doc = {"v": messages.VERSION, **self.kpis.summary(None)}
        doc.pop("by_clerk", None)
        return doc

    async def _publish_loop(self) -> None:
        """Publish retained state after each batch, coalescing: one round at a time, from the
        state committed when the round starts, so no batch ever waits for these PUBACKs."""
        self._loops.add(asyncio.current_task())  # type: ignore[arg-type]
        while True:
            await self._state_dirty.wait()
            self._state_dirty.clear()
            try:
                await self._publish_states()
                if self._kpi_due:
                    self._kpi_due = False
                    await self._publish_kpis()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("central could not publish its retained state")

    async def _publish_kpis(self) -> None:
        """Retained on central/kpi when they changed (each housekeeping round; on (re)connect)."""
        async with self._publishing:
            await self._publish_changed({self.topics.central_kpi: await self._committed(self.kpi_document)})

    async def _publish_states(self) -> None:
        async with self._publishing:
            for topic in sorted(self._stale):
                if await self.bus.try_publish(topic, b"", retain=True):
                    self._stale.discard(topic)
                    self._published.pop(topic, None)
            await self._publish_changed(await self._committed(self._states))

    async def _publish_changed(self, docs: dict[str, dict[str, Any]]) -> None:
        published = self._published  # a reconnect starts a new record; this round fills the old one
        changed = [(topic, doc) for topic, doc in docs.items() if published.get(topic) != doc]
        sent = await asyncio.gather(*(self.bus.try_publish(topic, doc, retain=True) for topic, doc in changed))
        for (topic, doc), ok in zip(changed, sent):
            if ok:
                published[topic] = doc

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
        key = f"{client}:{request.request_id}"
        pending = self._pending.get(key)
        if pending is not None:  # a copy (QoS 1 redelivery, a retry) of one not answered yet
            pending.copies += 1
            return
        self._pending[key] = write = _Write(client, action, request, key)
        self._queue.append(write)
        self._work.set()

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
            self._state_dirty.set()

    async def _on_read(self, incoming: Incoming) -> None:
        """A read-only action, in the reads thread: answered from committed state (the lock waits
        for the batch being applied and committed, if any)."""
        got = await self._request_of(self.reads, incoming)
        if got is not None:
            client, action, request = got
            with self._state_lock:
                response = self._view(action, request)
            self._send(client, response, self.reads)

    async def _reads_connected(self) -> None:
        """In the reads thread: tell the loop that read-only actions are served."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._reads_up.set)

    async def _request_of(self, bus: Bus, incoming: Incoming, skip: frozenset[str] = frozenset()
                          ) -> tuple[str, str, messages.Request] | None:
        """(client, action, request) of a request for central; None when it is not one to
        answer here, or was answered at once (a bad request)."""
        parsed = parse(incoming.topic)
        if parsed is None or parsed.kind != "central_req" or parsed.hall != self.hall.hall_id:
            return None
        action, payload = parsed.name or "", incoming.payload
        if action in skip or await bus.skip_request(incoming):
            return None
        try:
            client = check_id(parsed.client or "", "client")
        except BadRequest:
            log.warning("request on %s names an invalid client id; cannot answer", incoming.topic)
            return None
        try:
            check_name(action)
            return client, action, messages.parse_request(payload)
        except BadRequest as exc:
            self._send(client, messages.response_error(messages.request_id_of(payload), exc), bus)
            return None

    def _send(self, client: str, response: dict[str, Any] | None, bus: Bus | None = None) -> None:
        (bus or self.bus).spawn_publish(self.topics.central_res(client), response or {})

    def respond(self, client: str, action: str, payload: bytes) -> dict[str, Any]:
        """Handle one request and return its response (stored, so a duplicate gets the same):
        the request path without MQTT, blocking (tests, tools). Opens the store if need be; on a
        running service only while no batch is being written."""
        self.open()
        if self._uncommitted:
            raise RuntimeError("respond() called while a batch is being committed")
        try:
            check_name(action)
            request = messages.parse_request(payload)
        except BadRequest as exc:
            return messages.response_error(messages.request_id_of(payload), exc)
        if action in self.VIEWS:  # answered, not stored
            return self._view(action, request)
        write = _Write(client, action, request, f"{client}:{request.request_id}")
        self._write_now([write])
        assert write.response is not None
        return write.response

    def tick(self) -> None:
        """Housekeeping's day rollover, blocking (tests, tools)."""
        self.open()
        self._write_now([_Write("", "", None, None)])

    def _view(self, action: str, request: messages.Request) -> dict[str, Any]:
        """A read-only action's response, from the state in memory (callers see it committed)."""
        try:
            return messages.response_ok(request.request_id, self._query(action, request.data))
        except HallctlError as exc:
            return messages.response_error(request.request_id, exc)
        except Exception:  # noqa: BLE001 - every request is answered
            log.exception("central failed on %s", action)
            return messages.response_error(request.request_id, HallctlError("internal error; see central's log"))

    # -- the writer -------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        self._loops.add(asyncio.current_task())  # type: ignore[arg-type]
        self._writer_running = True
        try:
            while True:
                if not self._queue:
                    self._work.clear()
                    await self._work.wait()
                    continue
                head = self._queue[0]
                if isinstance(head, _Job):
                    self._queue.popleft()
                    try:
                        head.done.set_result(await head.run())
                    except Exception as exc:  # noqa: BLE001 - the job's caller gets it
                        head.done.set_exception(exc)
                    continue
                writes: list[_Write] = []
                while self._queue and len(writes) < MAX_BATCH and isinstance(self._queue[0], _Write):
                    writes.append(self._queue.popleft())  # type: ignore[arg-type]
                await self._write_batch(writes)
        finally:
            self._writer_running = False
            for item in self._queue:  # stopping: nobody will run them
                if item.done is not None and not item.done.done():
                    item.done.set_exception(RuntimeError("central is stopping"))

    async def _write_batch(self, writes: list[_Write]) -> None:
        # the core is the writer thread's until the batch is committed: reads wait for it
        self._uncommitted = True
        batch = await asyncio.to_thread(self._run_batch, writes)
        self._settle(batch, send=True)

    def _write_now(self, writes: list[_Write]) -> None:
        """:meth:`_write_batch`, blocking; without a running service, the events are queued too."""
        self._settle(self._run_batch(writes), send=False)
        if not self._writer_running:
            events, self._unqueued = self._unqueued, []
            self._queue_events(events)

    def _run_batch(self, writes: list[_Write]) -> _Batch:
        """Look the requests up in the store, apply them to the core and commit them (blocking;
        the writer runs it in a worker thread, where nothing else touches the core). A failed
        commit rebuilds the core from the store; a failing rebuild raises (central exits)."""
        try:
            stored = self.store.responses_for([w.key for w in writes if w.key is not None])
        except Exception:  # noqa: BLE001 - nothing was applied yet: answer, keep serving
            log.exception("central could not read its store")
            batch = _Batch(writes)
            for w in writes:
                w.store = True
            batch.failed()
            return batch
        with self._state_lock:  # reads wait for this batch, not for the queue behind it
            batch = self._apply(writes, stored)
            if batch.events or batch.responses():
                try:
                    self.store.commit_batch(batch.events, batch.responses(), batch.checkpoints)
                except Exception:  # noqa: BLE001 - disk full, I/O error: the hall must go on
                    log.exception("central could not store %d request(s); state reloaded from the store", len(writes))
                    self.core = self._rebuild()
                    batch.failed()
        return batch

    def _apply(self, writes: list[_Write], stored: dict[str, dict[str, Any]]) -> _Batch:
        """Run each write on the core, in memory. Nothing is published and nothing is stored yet."""
        batch = _Batch(writes)
        for w in writes:
            if w.request is None:  # housekeeping's tick
                outcome = self.core.tick()
            elif w.key in stored:
                w.response = stored[w.key]
                continue
            else:
                request = w.request
                try:
                    if request.expired():
                        raise Expired(f"request {request.request_id} expired at "
                                      f"{request.expires_at.isoformat()}; not executed")  # type: ignore[union-attr]
                    outcome = self.core.handle(w.action, request.data)
                except HallctlError as exc:
                    w.response, w.store = messages.response_error(request.request_id, exc), True
                    continue
                except Exception:  # noqa: BLE001 - a bug must not stop the hall
                    log.exception("central failed on %s", w.action)
                    # not stored: the client's retry may succeed once the cause is gone
                    w.response = messages.response_error(request.request_id, HallctlError("internal error; see central's log"))
                    continue
                w.response, w.store = messages.response_ok(request.request_id, outcome.data), True
            batch.events.extend(outcome.events)
            checkpoint = self.core.checkpoint(outcome.events) if outcome.events else None
            if checkpoint is not None:
                batch.checkpoints.append(checkpoint)
        return batch

    def _settle(self, batch: _Batch, *, send: bool) -> None:
        """After the commit (or its failure): fold what was stored into the KPIs, answer what
        waited for the commit, then the batch's requests and their copies, and wake the publisher."""
        if batch.ok:
            with self._state_lock:
                for event in batch.events:
                    self._observe(event)
            self.handled += sum(1 for w in batch.writes if w.store)
            if batch.events:
                self._unqueued.extend(batch.events)
                self._queue_wake.set()
        self._uncommitted = False
        waiting, self._after_commit = self._after_commit, []
        for callback in waiting:
            callback()
        for w in batch.writes:
            if w.done is not None and not w.done.done():
                if batch.ok:
                    w.done.set_result(None)
                else:
                    w.done.set_exception(HallctlError("could not store; see central's log"))
            if w.key is not None and self._pending.get(w.key) is w:
                del self._pending[w.key]
            if send and w.request is not None:
                for _ in range(w.copies):
                    self._send(w.client, w.response)
        if batch.events:
            self._state_dirty.set()

    async def _committed(self, compute: Callable[[], T]) -> T:
        """``compute()`` on committed state, under ``_state_lock``, on this loop: now, or (while
        the writer's thread has a batch) right after that batch, before the next is applied.
        Waiting for the lock here would stop the loop for the whole batch."""
        if not self._uncommitted:
            with self._state_lock:
                return compute()
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def run() -> None:
            try:
                with self._state_lock:
                    fut.set_result(compute())
            except Exception as exc:  # noqa: BLE001 - the awaiting caller gets it
                fut.set_exception(exc)

        self._after_commit.append(run)
        return await fut

    async def _tick(self) -> None:
        """Housekeeping's tick through the writer; raises if its commit failed."""
        if not self._writer_running:
            self.tick()
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Write("", "", None, None, done=done))
        self._work.set()
        await done

    async def _exclusive(self, run: Callable[[], Awaitable[T]]) -> T:
        """``await run()`` between two batches: no batch is applied while it runs."""
        if not self._writer_running:
            return await run()
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(run, done))
        self._work.set()
        return await done

    def _rebuild(self) -> Central:
        """The core (and the KPIs and arrival history) as the store says they are. Used at start
        and when a commit failed, so memory (and the retained state built from it) never holds
        what the disk does not. The core starts from the newest day checkpoint and replays the
        events after it; the KPIs replay their newest HISTORY_DAYS days, the staffing history
        its HISTORY_DAYS calendar days (each starting from its day's checkpoint)."""
        core, after = self._core_at_checkpoint(self.hall)
        self.kpis = Kpis(keep_days=HISTORY_DAYS)
        self._arrivals: dict[str, list[Any]] = {}
        self._arrivals_from = self._history_cutoff()
        start = after
        for seq in (self.store.nth_newest_day_start(HISTORY_DAYS), self.store.day_start_seq(self._history_cutoff())):
            start = min(start, seq - 1 if seq is not None else 0)
        if start > 0:  # the first day folded starts with the windows as they were then
            doc = self.store.checkpoint_at(start + 1) or {}
            windows = doc.get("windows")
            if isinstance(windows, dict):
                self.kpis.seed_windows({w: (str(v[0]), v[1]) for w, v in windows.items()
                                        if isinstance(v, list) and len(v) == 2})
        self.replayed = self.observed = 0
        found: list[tuple[int, str, dict[str, Any]]] = []
        for event in self.store.load_events(after=start):
            if event.seq > after:
                core.apply(event)
                self.replayed += 1
                if after == 0 and event.type == "day.started":
                    found.append(core.checkpoint())  # type: ignore[arg-type]
            self._observe(event)
            self.observed += 1
        if found:  # a whole-log replay (a store from before checkpoints, or an unusable one)
            self.store.add_checkpoints(found)
        return core

    def _history_cutoff(self) -> str:
        """The oldest business day the staffing history keeps."""
        today = date.fromisoformat(self.hall.business_day(self._clock()))
        return (today - timedelta(days=HISTORY_DAYS)).isoformat()

    def _core_at_checkpoint(self, hall: HallSpec) -> tuple[Central, int]:
        """A core at the newest stored checkpoint under ``hall``, and the seq it stands at; a
        fresh core and 0 when there is none (or it cannot be read: then the whole log replays)."""
        cp = self.store.latest_checkpoint()
        if cp is not None:
            try:
                return Central.from_checkpoint(hall, self._clock, cp[2]), cp[0]
            except ValueError as exc:
                log.warning("checkpoint at seq %d unusable (%s); replaying the whole log", cp[0], exc)
        return Central(hall, self._clock), 0

    def _online_status(self) -> dict[str, Any]:
        return messages.central_status("online", self.instance, self.last_reload)

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
        old = self.hall
        if hall.hall_id != old.hall_id:
            raise ConfigError(f"the hall id cannot change from {old.hall_id!r} on reload; restart central",
                              key="central.hall")
        if hall.tz != old.tz:
            raise ConfigError(f"the time zone cannot change from {old.tz!r} on reload; restart central",
                              key="hall.tz")
        problems = []
        for t in self.core.tickets.values():
            if t.status == "waiting" and t.queue not in hall.queues:
                problems.append(f"queue {t.queue!r} is removed but {t.number} waits in it")
            if t.status in AT_WINDOW and t.window not in hall.windows:
                problems.append(f"window {t.window!r} is removed but {t.number} is at it")
        for w, live in self.core.state.windows.items():
            if w in old.windows and w not in hall.windows and live.state != "closed":
                problems.append(f"window {w!r} is removed but {live.state}; close it first")
        if problems:
            raise ConfigError("reload refused: " + "; ".join(problems))
        core, after = self._core_at_checkpoint(hall)
        try:
            core.replay(self.store.load_events(after=after))
        except HallctlError as exc:
            raise ConfigError(f"reload refused: the stored events do not fit the new config: {exc.message}") from None
        waiting = sorted({t.queue for t in core.tickets.values() if t.status == "waiting"})
        orphans = [q for q in waiting if not core.capable_windows(q)]
        if orphans:
            raise ConfigError("reload refused: no window could call queue " + ", ".join(map(repr, orphans))
                              + " (tickets wait in it) under the new windows and policy")
        return core

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
        log.warning("central %s: config reloaded (%d queues, %d windows, %d matters, policy %s)",
                    hall.hall_id, len(hall.queues), len(hall.windows), len(hall.matters), hall.policy)
        # no retained state left behind for a window that is gone (retried until the broker has it)
        self._stale.update(self.topics.window_state(w) for w in removed)

    def _observe(self, event: Any) -> None:
        """Fold a stored event into the KPIs and the arrival history used for staffing advice."""
        self.kpis.apply(event)
        if event.type == "ticket.issued":
            day = event.ts[:10]
            if day not in self._arrivals:
                if day < self._arrivals_from:  # replaying days older than the history keeps
                    return
                self._arrivals[day] = []
                self._trim_arrivals()
            self._arrivals[day].append(event)

    def _trim_arrivals(self) -> None:
        """Keep HISTORY_DAYS calendar days of arrivals: the same days whether central has run
        all along or has just started (and replayed them from the store)."""
        self._arrivals_from = cutoff = self._history_cutoff()
        for day in [d for d in self._arrivals if d < cutoff]:
            del self._arrivals[day]

    def staffing_advice(self) -> dict[str, Any]:
        """Windows to open per half hour today, from the arrivals of earlier days (same weekday
        when there are such days) and the service times learned so far (square-root staffing:
        docs/assignment.md)."""
        today = self.hall.business_day(self._clock())
        history = {d: evs for d, evs in self._arrivals.items() if d < today}
        forecast = forecast_from_history(history, for_day=today, last_n=4) or forecast_from_history(history, last_n=5)
        learned = [s for q in self.hall.queues if (s := self.core.service_estimate(q))]
        mean_service_s = sum(learned) / len(learned) if learned else \
            sum(q.expected_service_s for q in self.hall.queues.values()) / len(self.hall.queues)
        share, within_s = STAFFING_TARGET
        return {
            "v": messages.VERSION,
            "day": today,
            "target": {"share": share, "within_s": within_s},
            "mean_service_min": round(mean_service_s / 60, 1),
            "history_days": len(history),
            "slots": advise(forecast, mean_service_s, target_sl=STAFFING_TARGET,
                            max_windows=len(self.hall.windows)) if forecast else [],
        }

    async def _queue_loop(self) -> None:
        """Put committed events in the outbox, off the response path: a response waits for its
        store commit only. The outbox mark says which events are queued, so events stored but not
        queued (a crash, a failed put) are found and queued here, and none is queued twice."""
        self._loops.add(asyncio.current_task())  # type: ignore[arg-type]
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
    mqtt = MqttSettings(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt.password, cfg.mqtt.keepalive)
    return CentralService(hall, str(cfg.store.path), mqtt, client_id=cfg.id)
