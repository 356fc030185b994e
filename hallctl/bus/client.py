"""The MQTT connection: the only module in hallctl that imports aiomqtt.

One :class:`Bus` per process. It connects, subscribes, announces (``on_connect``), drains the
store-and-forward outbox and hands every message to ``on_message``; when the broker goes away it
reconnects by itself (backoff capped at ``reconnect_max`` seconds) and does all of that again, so
subscriptions are never lost on a reconnect (mqtt-io #333) and a dead broker is noticed from the
read side at once, not at the next publish (mqtt-io #187).

A fresh aiomqtt client is made for each connection so that the will can carry the current
``bd_seq``. Sessions are persistent (``clean_session=False``, fixed client id) so QoS 1 messages
queued at the broker while we were away still reach us.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import aiomqtt

from hallctl.bus.messages import encode
from hallctl.errors import HallctlError
from hallctl.runtime.tasks import cancel_and_wait

log = logging.getLogger("hallctl.bus")
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
        outbox: Any = None,  # hallctl.runtime.outbox.Outbox (duck-typed: peek/ack/wait_nonempty/put)
        keepalive: int = 15,
        clean_session: bool = False,
        username: str | None = None,
        password: str | None = None,
        reconnect_max: float = 2.0,
        publish_timeout: float = 10.0,
    ) -> None:
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
        self.connected = asyncio.Event()
        if _paho_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            _paho_log.setLevel(logging.CRITICAL)
        self.connections = 0  # how many times we have connected; tests and the demo read it
        self.dropped_retained = 0  # retained requests dropped by skip_request
        self._client: aiomqtt.Client | None = None
        self._stopping = False
        self._down_logged = False
        self._run_task: asyncio.Task[Any] | None = None
        self._lost: asyncio.Event | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self._handling_since: float | None = None

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

    async def skip_request(self, incoming: Incoming) -> bool:
        """True when a message on a request/command topic must not run.

        An empty payload is a retained-message clear (MQTT convention), not a request. A request
        that arrives with the retain flag is one the broker kept and replays to every new
        subscriber, so it would run again after every restart (Tasmota's ghost switching): it is
        dropped, logged, counted and cleared from the broker. (MQTT clears the flag on messages
        forwarded live, so a live request is never mistaken for one.)"""
        if not incoming.payload:
            return True
        if incoming.retain:
            self.dropped_retained += 1
            log.warning("dropped a retained request on %s and cleared it from the broker", incoming.topic)
            await self.try_publish(incoming.topic, b"", retain=True)
            return True
        return False

    def healthy(self, stuck_after_s: float = 60.0) -> bool:
        """False when a handler has been busy with one message for too long (for the watchdog)."""
        since = self._handling_since
        return since is None or asyncio.get_running_loop().time() - since < stuck_after_s

    def publish_reliable(self, topic: str, payload: Payload, *, retain: bool = False) -> int:
        """Store in the outbox (durable when this returns); the drainer publishes it at QoS 1."""
        if self.outbox is None:
            raise RuntimeError("publish_reliable needs an outbox")
        return self.outbox.put(topic, _bytes(payload), qos=1, retain=retain)

    # -- connection loop ------------------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
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
        )

    async def run(self) -> None:
        """Connect and serve until cancelled or :meth:`close`; reconnects on any broker loss.

        Messages are handed, in order, to one handler task, so the read loop sees a dead
        connection at once even while a handler is busy (mqtt-io #187)."""
        self._run_task = asyncio.current_task()
        handler = asyncio.create_task(self._handle_inbox(), name=f"handler-{self.client_id}")
        try:
            await self._connection_loop()
        finally:
            await cancel_and_wait(handler)

    async def _connection_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            client = self._make_client()
            lost = asyncio.Event()
            drain: asyncio.Task[None] | None = None
            try:
                async with client:
                    for topic_filter, qos in self.subscriptions:
                        await client.subscribe(topic_filter, qos=qos)
                    self._client, self._lost = client, lost
                    self.connections += 1
                    self.connected.set()
                    backoff = 0.1
                    if self._down_logged or self.connections == 1:
                        log.info("connected to mqtt://%s:%d as %s", self.host, self.port, self.client_id)
                    self._down_logged = False
                    if self.outbox is not None:
                        drain = asyncio.create_task(self._drain(client), name=f"outbox-{self.client_id}")
                    if self.on_connect is not None:
                        await self._inbox.put(self.on_connect)  # runs before this connection's messages
                    async for message in client.messages:
                        payload = message.payload
                        await self._inbox.put(Incoming(
                            str(message.topic),
                            bytes(payload) if isinstance(payload, (bytes, bytearray)) else _bytes_of(payload),
                            bool(message.retain),
                            int(message.qos),
                        ))
                        if self._stopping:
                            break  # close() was called; its cancellation may have been lost
            except aiomqtt.MqttError as exc:
                if not self._stopping and not self._down_logged:
                    log.warning("mqtt connection to %s:%d lost or refused (%s); reconnecting", self.host, self.port, exc)
                    self._down_logged = True
            finally:
                lost.set()
                self.connected.clear()
                self._client = None
                if drain is not None:
                    await cancel_and_wait(drain)
            if self._stopping:
                break
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, self.reconnect_max)

    async def _handle_inbox(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._inbox.get()
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
        """Publish outbox items oldest first; delete each only after the broker's PUBACK.
        Runs for one connection; any failure is logged and retried, never fatal."""
        while True:
            try:
                items = self.outbox.peek(50)
                if not items:
                    await self.outbox.wait_nonempty()
                    continue
                for item in items:
                    await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain,
                                         timeout=self.publish_timeout)
                    self.outbox.ack(item.id)
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


def _bytes_of(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return str(payload).encode("utf-8")
