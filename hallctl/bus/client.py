"""The MQTT connection: the only module in hallctl that imports aiomqtt.

One :class:`Bus` per MQTT connection (central has a second one, for read-only requests, on a
thread of its own: :class:`BusThread`). It connects, subscribes, announces (``on_connect``), drains
the store-and-forward outbox and hands every message to ``on_message``; when the broker goes away it
reconnects by itself (backoff capped at ``reconnect_max`` seconds) and does all of that again, so
subscriptions are never lost on a reconnect (mqtt-io #333) and a dead broker is noticed from the
read side at once, not at the next publish (mqtt-io #187).

A fresh aiomqtt client is made for each connection so that the will can carry the current
``bd_seq``. Sessions are persistent (``clean_session=False``, fixed client id) so QoS 1 messages
queued at the broker while we were away still reach us.

Nothing here waits on the disk or on one message's PUBACK before the next is sent: the outbox is
opened, read and acked in a worker thread, its items go out a batch at a time (paho keeps them in
order on the wire), and :meth:`Bus.spawn_publish` lets a handler send without waiting. Incoming
messages go to the handler as paho reads them, without a loop iteration each.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import aiomqtt

from hallctl.bus.messages import encode
from hallctl.bus.tls import TlsSettings
from hallctl.errors import HallctlError
from hallctl.runtime.tasks import cancel_and_wait

log = logging.getLogger("hallctl.bus")
#: outbox items published together before their PUBACKs are awaited and their ids acked at once
DRAIN_BATCH = 200
#: messages handled before the handler task lets the rest of the loop run
HANDLE_SLICE = 100
#: QoS 1 messages sent and not yet acknowledged, at most (paho's own default, 20, kept a burst's
#: answers waiting for the PUBACKs of the events before them)
MAX_INFLIGHT = 100
#: a request or command topic that delivered a request is cleared at the broker (an empty retained
#: publish) at once the first time, then at most once per this many seconds: a request published
#: with the retain flag (which MQTT never shows a live subscriber) runs once and stays retained at
#: the broker at most this long. One clear per topic per minute costs nothing at 1,800 requests/s.
CLEAR_EVERY_S = 60.0
#: topics remembered for that throttle before the ones not cleared for ``CLEAR_EVERY_S`` are forgotten
_CLEARED_KEPT = 4096
# paho logs "failed to receive on socket" at ERROR for every broker restart; the bus says it
# once, as a warning, itself. Raise this logger's level to see paho's own messages.
_paho_log = logging.getLogger("hallctl.bus.paho")


class BusUnavailable(HallctlError, ConnectionError):
    code = "internal"

    def __init__(self, message: str = "not connected to the MQTT broker") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool
    qos: int


Payload = Mapping[str, Any] | bytes


def _bytes(payload: Payload) -> bytes:
    return payload if isinstance(payload, (bytes, bytearray)) else encode(payload)


class Bus:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: Callable[[Incoming], Awaitable[None]] | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        will: Callable[[], tuple[str, Payload]] | None = None,
        outbox: Any = None,  # hallctl.runtime.outbox.Outbox
        keepalive: int = 15,
        clean_session: bool = False,
        username: str | None = None,
        password: str | None = None,
        reconnect_max: float = 2.0,
        publish_timeout: float = 10.0,
        tls: TlsSettings | None = None,
    ) -> None:
        """``tls``: connect over TLS, verifying the broker against its CA (None: plain TCP)."""
        self.host, self.port, self.client_id = host, port, client_id
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.will = will
        self.outbox = outbox
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.username, self.password = username, password
        self.reconnect_max = reconnect_max
        self.publish_timeout = publish_timeout
        self.tls = tls
        self._tls_context: ssl.SSLContext | None = None  # made by run(): construction does no I/O
        self.connected = asyncio.Event()
        #: called with True when a connection is up, False when it is lost (an app that shows the
        #: hall says so instead of showing a frozen hall as current); must not raise or block
        self.on_link: Callable[[bool], None] | None = None
        if _paho_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            _paho_log.setLevel(logging.CRITICAL)
        self.connections = 0  # how many times we have connected; tests and the demo read it
        self.dropped_retained = 0  # retained requests dropped by skip_request
        self._client: aiomqtt.Client | None = None
        self._stopping = False
        self._down_logged = False
        self._run_task: asyncio.Task[Any] | None = None
        self._lost: asyncio.Event | None = None
        self._inbox: collections.deque[Any] = collections.deque()
        self._inbox_ready = asyncio.Event()
        self._handling_since: float | None = None
        self._spawned: set[asyncio.Task[bool]] = set()
        #: request topic -> when it was last cleared at the broker (loop time); clears due later
        self._cleared: dict[str, float] = {}
        self._clears_due: dict[str, asyncio.TimerHandle] = {}
        self._prune_cleared_at = _CLEARED_KEPT

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> None:
        """Publish now and wait for the broker's PUBACK. Raises :class:`BusUnavailable` when not
        connected, or as soon as the connection is lost (not after the publish timeout: a daemon
        stuck on a dead connection would serve nobody). Callers that must not lose the message use
        :meth:`publish_reliable`."""
        client, lost = self._client, self._lost
        if client is None or lost is None or not self.connected.is_set():
            raise BusUnavailable()
        pub = asyncio.ensure_future(
            client.publish(topic, _bytes(payload), qos=qos, retain=retain, timeout=self.publish_timeout))
        gone = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait({pub, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not pub.done():
                pub.cancel()
        if pub not in done:
            raise BusUnavailable(f"connection lost before the broker acknowledged {topic}")
        exc = pub.exception()
        if isinstance(exc, aiomqtt.MqttError):
            raise BusUnavailable(f"publish to {topic} failed: {exc}")
        if exc is not None:
            raise exc

    async def try_publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> bool:
        """Publish if connected; False otherwise. For state that is re-published on reconnect."""
        try:
            await self.publish(topic, payload, qos=qos, retain=retain)
        except BusUnavailable:
            return False
        return True

    def spawn_publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> asyncio.Task[bool]:
        """Publish in a task of its own, so the caller does not wait for the PUBACK (and nobody
        waits for another's); the task's result says whether the broker confirmed it. Messages
        spawned one after another leave in that order. For answers and state that a client's
        retry or the next connection sends again."""
        task = asyncio.create_task(self._publish_on(self._client, topic, _bytes(payload), qos, retain))
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
        return task

    async def _publish_on(self, client: aiomqtt.Client | None, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        if client is None or not self.connected.is_set():
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=self.publish_timeout)
        except aiomqtt.MqttError:
            return False
        return True

    async def skip_request(self, incoming: Incoming) -> bool:
        """True when a message on a request/command topic must not run.

        An empty payload is a retained-message clear (MQTT convention), not a request. A request
        that arrives with the retain flag is one the broker kept and replays to every new
        subscriber, so it would run again after every restart (Tasmota's ghost switching): it is
        dropped, logged, counted and cleared from the broker. MQTT clears the flag on messages
        forwarded live, so a live request is never mistaken for one, and the broker may still be
        keeping it: a topic that delivered a request is cleared too (:data:`CLEAR_EVERY_S`)."""
        if not incoming.payload:
            return True
        if incoming.retain:
            self.dropped_retained += 1
            log.warning("dropped a retained request on %s and cleared it from the broker", incoming.topic)
            self._clear(incoming.topic)
            return True
        self._clear_soon(incoming.topic)
        return False

    def _clear_soon(self, topic: str) -> None:
        """Clear ``topic`` at the broker now if it was not cleared in the last :data:`CLEAR_EVERY_S`,
        else once that time is up (one timer per topic at most)."""
        last = self._cleared.get(topic)
        if last is None:
            self._clear(topic)
        elif topic not in self._clears_due:
            loop = asyncio.get_running_loop()
            if loop.time() - last >= CLEAR_EVERY_S:
                self._clear(topic)
            else:
                self._clears_due[topic] = loop.call_at(last + CLEAR_EVERY_S, self._clear, topic)

    def _clear(self, topic: str) -> None:
        """An empty retained publish on ``topic``: the broker forgets what it retained there. Not
        connected, it is not sent: the broker then replays a retained request with the flag when
        this bus subscribes again, and it is dropped and cleared here."""
        now = asyncio.get_running_loop().time()
        due = self._clears_due.pop(topic, None)
        if due is not None:
            due.cancel()
        if len(self._cleared) >= self._prune_cleared_at:  # forget topics that may be cleared at once again
            self._cleared = {t: at for t, at in self._cleared.items()
                             if now - at < CLEAR_EVERY_S or t in self._clears_due}
            self._prune_cleared_at = max(_CLEARED_KEPT, 2 * len(self._cleared))
        self._cleared[topic] = now
        self.spawn_publish(topic, b"", retain=True)

    def healthy(self, stuck_after_s: float = 60.0) -> bool:
        """False when a handler has been busy with one message for too long (for the watchdog)."""
        since = self._handling_since
        return since is None or asyncio.get_running_loop().time() - since < stuck_after_s

    def publish_reliable(self, topic: str, payload: Payload, *, retain: bool = False) -> int:
        """Store in the outbox (durable when this returns); the drainer publishes it at QoS 1.
        Blocks on the disk: from the event loop use :meth:`apublish_reliable`."""
        if self.outbox is None:
            raise RuntimeError("publish_reliable needs an outbox")
        return self.outbox.put(topic, _bytes(payload), qos=1, retain=retain)

    async def apublish_reliable(self, topic: str, payload: Payload, *, retain: bool = False) -> int:
        """:meth:`publish_reliable` with the fsync in a worker thread."""
        if self.outbox is None:
            raise RuntimeError("publish_reliable needs an outbox")
        return await asyncio.to_thread(self.outbox.put, topic, _bytes(payload), 1, retain)

    # -- connection loop ------------------------------------------------------------------
    def _make_client(self, deliver: Callable[[Any], None]) -> aiomqtt.Client:
        will = None
        if self.will is not None:
            topic, payload = self.will()
            will = aiomqtt.Will(topic, _bytes(payload), qos=1, retain=True)
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=self.clean_session,
            will=will,
            keepalive=self.keepalive,
            username=self.username,
            password=self.password,
            timeout=self.publish_timeout,
            # Nagle held each small packet after a PUBACK for the broker's delayed ACK (~44 ms,
            # three times during a node's start: bench/node_footprint.py); MQTT packets are small
            # and latency matters more than packet count here.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            logger=_paho_log,
            queue_type=_handing_queue(deliver),
            max_inflight_messages=MAX_INFLIGHT,
            tls_context=self._tls_context,
        )

    async def run(self) -> None:
        """Connect and serve until cancelled or :meth:`close`; reconnects on any broker loss.

        Messages are handed, in order, to one handler task, so the read loop sees a dead
        connection at once even while a handler is busy (mqtt-io #187)."""
        self._run_task = asyncio.current_task()
        if self.tls is not None:
            # once, before the first connection: a CA file gone since the config was read stops
            # the start here (OSError, ssl.SSLError) instead of failing every reconnect
            self._tls_context = self.tls.context()
        if self.outbox is not None:
            await self.outbox.aopen()  # a full disk stops the start here (StorageUnavailable)
        handler = asyncio.create_task(self._handle_inbox(), name=f"handler-{self.client_id}")
        try:
            await self._connection_loop()
        finally:
            await cancel_and_wait(handler)
            for due in self._clears_due.values():
                due.cancel()
            self._clears_due.clear()
            for task in list(self._spawned):
                await cancel_and_wait(task)

    async def _connection_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            gate = _Gate()
            client = self._make_client(gate.deliver)
            lost = asyncio.Event()
            drain: asyncio.Task[None] | None = None
            try:
                async with client:
                    for topic_filter, qos in self.subscriptions:
                        await client.subscribe(topic_filter, qos=qos)
                    self._client, self._lost = client, lost
                    self.connections += 1
                    self.connected.set()
                    self._tell_link(True)
                    backoff = 0.1
                    if self._down_logged or self.connections == 1:
                        log.info("connected to %s://%s:%d as %s", "mqtts" if self.tls else "mqtt",
                                 self.host, self.port, self.client_id)
                    self._down_logged = False
                    if self.outbox is not None:
                        drain = asyncio.create_task(self._drain(client), name=f"outbox-{self.client_id}")
                    if self.on_connect is not None:
                        self._enqueue(self.on_connect)  # runs before this connection's messages
                    gate.open(self._enqueue)
                    # every message goes to the inbox as paho reads it (_handing_queue); this only
                    # waits for the connection to end, which aiomqtt raises as MqttError
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                if not self._stopping and not self._down_logged:
                    log.warning("mqtt connection to %s:%d lost or refused (%s); reconnecting", self.host, self.port, exc)
                    self._down_logged = True
            finally:
                lost.set()
                was_up = self.connected.is_set()
                self.connected.clear()
                self._client = None
                if was_up:
                    self._tell_link(False)
                if drain is not None:
                    await cancel_and_wait(drain)
            if self._stopping:
                break
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, self.reconnect_max)

    def _tell_link(self, up: bool) -> None:
        if self.on_link is not None:
            try:
                self.on_link(up)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the connection loop
                log.exception("on_link(%s) failed", up)

    def _enqueue(self, item: Any) -> None:
        self._inbox.append(item)
        self._inbox_ready.set()

    async def _handle_inbox(self) -> None:
        """Hand the inbox to the handlers in order. A handler that does not wait for anything
        runs without a loop iteration per message, so a backlog is routed at once."""
        loop = asyncio.get_running_loop()
        handled = 0
        while True:
            if not self._inbox:
                self._inbox_ready.clear()
                await self._inbox_ready.wait()
                continue
            handled += 1
            if handled % HANDLE_SLICE == 0:
                await asyncio.sleep(0)  # let the rest of the loop (PUBACKs, publishes) run
            item = self._inbox.popleft()
            self._handling_since = loop.time()
            try:
                if isinstance(item, Incoming):
                    if self.on_message is not None:
                        await self._guard(self.on_message(item), f"message on {item.topic}")
                else:
                    await self._guard(item(), "on_connect")
            finally:
                self._handling_since = None

    async def _guard(self, awaitable: Awaitable[None], what: str) -> None:
        """A handler's failure is logged and the daemon keeps serving."""
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except BusUnavailable as exc:
            log.info("%s: not finished, the broker went away (%s)", what, exc.message)
        except Exception:  # noqa: BLE001 - the daemon must keep serving
            log.exception("handler failed for %s", what)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish outbox items oldest first, a batch at a time without waiting for one PUBACK
        before the next is sent; delete the confirmed ones (the longest confirmed run from the
        oldest, so order holds) in one transaction. Runs for one connection; any failure is
        logged and retried, never fatal: delivery is at least once."""
        while True:
            try:
                items = await self.outbox.apeek(DRAIN_BATCH)
                if not items:
                    await self.outbox.wait_nonempty()
                    continue
                sends = [asyncio.ensure_future(client.publish(
                    item.topic, item.payload, qos=item.qos, retain=item.retain, timeout=self.publish_timeout))
                    for item in items]
                try:
                    results = await asyncio.gather(*sends, return_exceptions=True)
                finally:
                    for send in sends:
                        send.cancel()
                confirmed = []
                for item, result in zip(items, results):
                    if isinstance(result, BaseException):
                        break
                    confirmed.append(item.id)
                await self.outbox.aack_many(confirmed)
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if failed is not None:
                    raise failed
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttError as exc:
                log.debug("outbox publish failed (%s); will retry", exc)
                await asyncio.sleep(0.5)
            except Exception:  # noqa: BLE001 - e.g. a SQLite error: keep the messages, retry
                log.exception("outbox drain failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def close(self, final: Sequence[tuple[str, Payload, bool]] = ()) -> None:
        """Publish ``final`` messages (topic, payload, retain) if connected, then disconnect
        cleanly (a clean DISCONNECT means the broker does not send the will)."""
        for topic, payload, retain in final:
            await self.try_publish(topic, payload, retain=retain)
        self._stopping = True
        task = self._run_task
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait(task)


class BusThread:
    """Serves ``bus`` on an event loop in a thread of its own, so its messages are read, handled
    and answered however busy the caller's loop is (central's read-only actions must not wait
    behind a burst of writes: bench/central_load.py). The bus's handlers then run in that thread
    and may touch only what is safe to touch from there."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._final: Sequence[tuple[str, Payload, bool]] = ()
        self._ended: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Serve until cancelled or :meth:`close` (the bus stops cleanly) or until the bus fails
        (its error is raised here)."""
        main = asyncio.get_running_loop()
        self._ended = ended = main.create_future()
        started = threading.Event()

        def serve() -> None:
            error: BaseException | None = None
            try:
                asyncio.run(self._serve(started))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's loop
                error = exc
            finally:
                started.set()
                main.call_soon_threadsafe(_end, ended, error)

        threading.Thread(target=serve, name=f"bus-{self.bus.client_id}", daemon=True).start()
        await asyncio.to_thread(started.wait)
        try:
            await asyncio.shield(ended)
        except asyncio.CancelledError:
            await self.close()
            raise

    async def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        started.set()
        run = asyncio.create_task(self.bus.run())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            await self.bus.close(self._final)
        await cancel_and_wait(stop)
        if not run.cancelled():
            run.result()  # a failure of the bus is raised to run()

    async def close(self, final: Sequence[tuple[str, Payload, bool]] = ()) -> None:
        """Publish ``final`` and disconnect (as :meth:`Bus.close`), then wait for the thread to end."""
        loop, stop, ended = self._loop, self._stop, self._ended
        if loop is None or stop is None or ended is None:
            return
        self._final = final
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # its loop has closed: the thread is ending anyway
            pass
        await asyncio.wait({ended})


def _end(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if not fut.done():
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class _Gate:
    """Holds a connection's first messages until its on_connect is queued, then lets them through."""

    def __init__(self) -> None:
        self._held: list[Any] = []
        self._to: Callable[[Any], None] | None = None

    def deliver(self, item: Any) -> None:
        if self._to is None:
            self._held.append(item)
        else:
            self._to(item)

    def open(self, to: Callable[[Any], None]) -> None:
        for item in self._held:
            to(item)
        self._held.clear()
        self._to = to


def _handing_queue(deliver: Callable[[Any], None]) -> type[asyncio.Queue[Any]]:
    """aiomqtt's incoming queue class for one connection: each message is handed over as paho
    reads it, as an :class:`Incoming`. (aiomqtt's own iterator costs a task and a loop
    iteration per message: a backlog of 1,000 requests then took seconds to route.)"""

    class HandingQueue(asyncio.Queue[Any]):
        def put_nowait(self, item: Any) -> None:
            payload = item.payload
            deliver(Incoming(
                str(item.topic),
                bytes(payload) if isinstance(payload, (bytes, bytearray)) else _bytes_of(payload),
                bool(item.retain),
                int(item.qos),
            ))

    return HandingQueue


def _bytes_of(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return str(payload).encode("utf-8")
