"""The shell around the central core: requests in from MQTT, events and retained state out.

One request is handled at a time, in arrival order, by the pure :class:`~hallctl.central.core.Central`.
Its events and the response are committed to SQLite in one transaction before anything is
published, so a duplicated request (QoS 1 redelivery, a client's retry, a restart in between) is
answered from the store and never executes twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from hallctl.bus import messages
from hallctl.bus.client import Bus, Incoming
from hallctl.bus.topics import Topics, check_id, check_name, parse
from hallctl.central.core import Central
from hallctl.central.kpi import Kpis
from hallctl.central.staffing import advise, forecast_from_history
from hallctl.central.hallconfig import hall_from_config
from hallctl.central.model import AT_WINDOW, HallSpec
from hallctl.central.config import CentralConfig
from hallctl.central.store import Store
from hallctl.errors import BadRequest, ConfigError, Expired, HallctlError
from hallctl.runtime.outbox import Outbox
from hallctl.runtime.tasks import run_together

log = logging.getLogger("hallctl.central")

#: how long a response is kept for answering duplicates of its request
RESPONSE_DAYS = 7
#: outbox mark: the seq of the last event put in the outbox
EVENTS_MARK = "events"
#: days of history kept in memory for KPIs and the staffing forecast
HISTORY_DAYS = 35
#: staffing target: this share of citizens called within this many seconds
STAFFING_TARGET = (0.8, 900.0)


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    keepalive: int = 15


class CentralService:
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
        self.core = self._rebuild()
        log.info("central %s: replayed %d events from %s", hall.hall_id, self.core.last_seq, store_path)
        if self.outbox.mark(EVENTS_MARK) is None:  # a new outbox: nothing before now is owed
            self.outbox.put_many([], mark=(EVENTS_MARK, self.store.last_seq()))
        self._queue_missing_events()
        self.instance = f"{client_id}-{os.getpid()}"
        self.bus = Bus(
            mqtt.host,
            mqtt.port,
            client_id,
            subscriptions=[(self.topics.central_req_filter, 1)],
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=lambda: (self.topics.central_status, messages.central_status("offline", self.instance)),
            outbox=self.outbox,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=mqtt.password,
        )
        self._published: dict[str, dict[str, Any]] = {}
        #: retained topics to clear (a window removed by a reload), retried until done
        self._stale: set[str] = set()
        #: one publisher of retained state at a time, each computing the state when its turn
        #: comes: a slower one can then never put an older document over a newer one
        self._publishing = asyncio.Lock()
        self._staffing_slot: str | None = None
        self._housekeeping_every_s = housekeeping_every_s
        self.last_reload: dict[str, Any] | None = None
        self.handled = 0

    QUERIES = frozenset({"kpi.summary", "staffing.advice"})

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
        return self.bus.dropped_retained

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        await run_together([("central-bus", self.bus.run()), ("central-housekeeping", self._housekeeping())])

    async def _housekeeping(self) -> None:
        """Roll the business day over on time (not at the first request of the morning), keep
        the idempotency table small, publish the staffing advice each half hour and the KPIs
        when they changed."""
        while True:
            await asyncio.sleep(self._housekeeping_every_s)
            try:
                outcome = self.core.tick()
                if outcome.events:
                    try:
                        self._commit_and_publish(outcome.events, None, None)
                    except Exception:
                        self.core = self._rebuild()
                        raise
                # every round: a new day clears the board, and a failed clear is retried
                await self._publish_states()
                self._queue_missing_events()
                slot = self._clock().strftime("%Y-%m-%d %H") + (":30" if self._clock().minute >= 30 else ":00")
                if slot != self._staffing_slot and await self.bus.try_publish(
                        self.topics.central_staffing, self.staffing_advice(), retain=True):
                    self._staffing_slot = slot
                await self._publish_kpis()
                self.store.prune_responses(RESPONSE_DAYS)
                self._trim_arrivals()
            except Exception:  # noqa: BLE001 - housekeeping must not stop the hall
                log.exception("central housekeeping failed")

    async def stop(self) -> None:
        await self.bus.close([(self.topics.central_status, messages.central_status("offline", self.instance), True)])
        self.outbox.close()
        self.store.close()

    async def _on_connect(self) -> None:
        """Announce, then re-publish every retained state: the broker may have restarted empty."""
        self._published.clear()
        await self.bus.publish(self.topics.central_status, self._online_status(), retain=True)
        await self._publish_states()
        await self._publish_kpis()

    # -- state ------------------------------------------------------------------------------
    def _states(self) -> dict[str, dict[str, Any]]:
        out = {self.topics.window_state(w): self.core.window_state(w) for w in self.hall.windows}
        out[self.topics.board_state] = self.core.board_state()
        return out

    def kpi_document(self) -> dict[str, Any]:
        """Today's KPIs as published on ``central/kpi``: the ``kpi.summary`` answer with ``v``,
        without the per-clerk figures (staff performance is asked for with ``kpi.summary``, whose
        answer goes to the asking client only, not retained for every reader of the broker)."""
        doc = {"v": messages.VERSION, **self.kpis.summary(None)}
        doc.pop("by_clerk", None)
        return doc

    async def _publish_kpis(self) -> None:
        """Retained on central/kpi when they changed (each housekeeping round; on (re)connect)."""
        async with self._publishing:
            await self._publish_changed({self.topics.central_kpi: self.kpi_document()})

    async def _publish_states(self) -> None:
        async with self._publishing:
            for topic in sorted(self._stale):
                if await self.bus.try_publish(topic, b"", retain=True):
                    self._stale.discard(topic)
                    self._published.pop(topic, None)
            await self._publish_changed(self._states())

    async def _publish_changed(self, docs: dict[str, dict[str, Any]]) -> None:
        for topic, doc in docs.items():
            if self._published.get(topic) != doc and await self.bus.try_publish(topic, doc, retain=True):
                self._published[topic] = doc

    # -- requests ---------------------------------------------------------------------------
    async def _on_message(self, incoming: Incoming) -> None:
        parsed = parse(incoming.topic)
        if parsed is None or parsed.kind != "central_req" or parsed.hall != self.hall.hall_id:
            return
        if await self.bus.skip_request(incoming):
            return
        try:
            client = check_id(parsed.client or "", "client")
        except BadRequest:
            log.warning("request on %s names an invalid client id; cannot answer", incoming.topic)
            return
        response = self.respond(client, parsed.name or "", incoming.payload)
        await self.bus.try_publish(self.topics.central_res(client), response)
        await self._publish_states()

    def respond(self, client: str, action: str, payload: bytes) -> dict[str, Any]:
        """Handle one request and return its response (stored, so a duplicate gets the same)."""
        try:
            check_name(action)
            request = messages.parse_request(payload)
        except BadRequest as exc:
            return messages.response_error(messages.request_id_of(payload), exc)
        if action in self.QUERIES or action in Central.READ_ONLY:  # views: answered, not stored
            try:
                return messages.response_ok(request.request_id, self._query(action, request.data))
            except HallctlError as exc:
                return messages.response_error(request.request_id, exc)
            except Exception:  # noqa: BLE001 - every request is answered
                log.exception("central failed on %s", action)
                return messages.response_error(request.request_id, HallctlError("internal error; see central's log"))
        key = f"{client}:{request.request_id}"
        stored = self.store.response_for(key)
        if stored is not None:
            return stored
        events = []
        try:
            if request.expired():
                raise Expired(f"request {request.request_id} expired at {request.expires_at.isoformat()}; not executed")
            outcome = self.core.handle(action, request.data)
        except HallctlError as exc:
            response = messages.response_error(request.request_id, exc)
        except Exception:  # noqa: BLE001 - a bug must not stop the hall
            log.exception("central failed on %s", action)
            # not stored: the client's retry may succeed once the cause is gone
            return messages.response_error(request.request_id, HallctlError("internal error; see central's log"))
        else:
            response = messages.response_ok(request.request_id, outcome.data)
            events = outcome.events
        try:
            self._commit_and_publish(events, key, response)
        except Exception:  # noqa: BLE001 - disk full, I/O error: the hall must go on
            log.exception("central could not store the outcome of %s; state reloaded from the store", action)
            self.core = self._rebuild()
            return messages.response_error(request.request_id, HallctlError("internal error: could not store; try again"))
        self.handled += 1
        return response

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
        new config is refused (:meth:`check_reload`)."""
        core = self.check_reload(hall)
        removed = [w for w in self.hall.windows if w not in hall.windows]
        self.hall, self.core = hall, core
        log.warning("central %s: config reloaded (%d queues, %d windows, %d matters, policy %s)",
                    hall.hall_id, len(hall.queues), len(hall.windows), len(hall.matters), hall.policy)
        # no retained state left behind for a window that is gone (retried until the broker has it)
        self._stale.update(self.topics.window_state(w) for w in removed)
        await self._publish_states()

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

    def _commit_and_publish(self, events: list[Any], key: str | None, response: dict[str, Any] | None) -> None:
        self.store.commit(events, key, response, checkpoint=self.core.checkpoint(events) if events else None)
        self._queue_events(events)
        for event in events:
            self._observe(event)

    def _queue_events(self, events: list[Any]) -> None:
        """Events go to the outbox with a mark of the last seq queued, in one transaction."""
        if events:
            items = [(self.topics.event(e.type), messages.encode(self.core.event_public(e)), 1, False) for e in events]
            self.outbox.put_many(items, mark=(EVENTS_MARK, events[-1].seq))

    def _queue_missing_events(self) -> None:
        """Events stored but never queued (a crash between the two commits) are queued now."""
        queued = self.outbox.mark(EVENTS_MARK) or 0
        missing = list(self.store.load_events(after=queued))
        if missing:
            log.warning("queueing %d stored events that never reached the outbox", len(missing))
            self._queue_events(missing)


def _is_iso_date(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def central_from_config(cfg: CentralConfig) -> CentralService:
    """Build the service from a validated central config."""
    hall = hall_from_config(cfg)
    Path(cfg.store.path).parent.mkdir(parents=True, exist_ok=True)
    mqtt = MqttSettings(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt.password, cfg.mqtt.keepalive)
    return CentralService(hall, str(cfg.store.path), mqtt, client_id=cfg.id)
