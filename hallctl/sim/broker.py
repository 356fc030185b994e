"""An MQTT broker inside the current process (amqtt), for the zero-install ``hallctl demo``.

Production and the test suite use Mosquitto (:mod:`hallctl.sim.mosquitto`); this broker exists so
that a fresh machine needs nothing but ``pip install hallctl`` to watch a simulated hall.

What amqtt 0.12.1 does with an aiomqtt 2.5 / paho 2.x client speaking MQTT 3.1.1, found by
experiment (tests/test_brokers.py runs the same checks against both brokers):

Works
  * connect, subscribe with ``+`` and ``#`` (``a/#`` also matches ``a``), unsubscribe.
  * QoS 1 publish and delivery, in order.
  * retained messages delivered to a later subscriber (retain flag set), cleared by an empty
    retained payload.
  * last will published when the client's socket dies (SIGKILL), at the will's QoS; a will with
    retain=True is also retained. No will after a clean DISCONNECT.
  * clean_session=False with a fixed client id: subscriptions survive a disconnect and QoS 1
    messages published meanwhile are delivered on reconnect -- only with this module's auth
    plugin (see fix 1).
  * two brokers in one process on different ports.

Fixed here (subclass :class:`_HallBroker`, pinned to amqtt 0.12.x)
  1. amqtt's ``AnonymousAuthPlugin`` marks every client anonymous, and amqtt drops the session and
     never queues messages for an anonymous client, so clean_session=False silently does nothing.
     :class:`OpenAuthPlugin` lets everyone in without that mark.
  2. Messages queued for an offline persistent session were delivered with RETAIN=1, which breaks
     [MQTT-3.3.1-9] and would make hallctl drop queued commands as retained ghosts. Sent with 0.
  3. On every CONNECT amqtt sent the new client every retained message matching *any* client's
     subscription (a client that subscribed to nothing received the whole board state). Retained
     messages now only go to sessions that hold a matching subscription.
  4. A connection that closed before sending CONNECT left its socket open, and Python 3.11's
     ``Server.wait_closed()`` does not wait for connection handlers: :meth:`EmbeddedBroker.stop`
     now closes every socket and awaits every handler, so stopping leaves no task or transport.

Does not work (left as is; Mosquitto does all of these). [test] = strict xfail in
tests/test_brokers.py, [seen] = observed in an experiment, [source] = read in amqtt's code.
  * nothing survives a broker restart: retained messages and sessions live in memory only [test].
  * delivery QoS is the subscription's QoS, not min(publish, subscription): a QoS 0 publish
    reaches a QoS 1 subscriber as QoS 1 (harmless for hallctl, but not the spec) [test].
  * a reconnecting persistent session is sent the retained messages of its subscriptions again,
    with RETAIN=1 (hallctl treats retained state as state, so this is harmless) [seen].
  * an outgoing QoS 1 message still unacknowledged when the subscriber disconnects is not
    redelivered on reconnect (at-most-once for that one message) [source].
  * a persistent session that reconnects keeps the will *retain* flag of its first CONNECT [source].
  * a peer that closes without sending CONNECT is logged at ERROR by amqtt ("No data from") [seen].
  * no $SYS tree: amqtt's $SYS plugin is deprecated in 0.12 and not loaded here.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from hallctl.errors import HallctlError

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError", "OpenAuthPlugin"]

#: amqtt logs every connection at INFO and ``transitions`` (its state machine library) every state
#: change; we keep both at WARNING unless the application configured them itself.
QUIET_LOGGERS = ("amqtt", "transitions")
#: How long stop() lets connection handlers finish after amqtt's shutdown before cancelling them.
HANDLER_DRAIN_S = 2.0


class EmbeddedBrokerError(HallctlError, RuntimeError):
    """The embedded broker could not start (port taken, bad address)."""

    code = "internal"


class OpenAuthPlugin(BaseAuthPlugin):
    """Lets every client in, like Mosquitto's ``allow_anonymous true``.

    Unlike amqtt's AnonymousAuthPlugin it does not set ``session.is_anonymous``, which would stop
    amqtt from keeping persistent sessions (clean_session=False) and their queued messages.
    """

    async def authenticate(self, *, session: Session) -> bool:
        return True


class _HallBroker(Broker):
    """amqtt's broker with fixes 2-4 of the module docstring."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        # Every open TCP connection: its handler task and its writer, so stop() can end them.
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()  # idempotent; amqtt skips it when the peer never sent CONNECT

    async def _publish_session_retained_messages(self, session: Session) -> None:
        # Same as amqtt's, but queued messages go out with RETAIN=0 [MQTT-3.3.1-9].
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            publish = handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
            sends.append(asyncio.ensure_future(publish))
        if sends:
            await asyncio.wait(sends)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt calls this on CONNECT for every filter any client subscribed to; only the
        # session's own subscriptions should bring it retained messages.
        topic_filter = subscription[0]
        own = self._subscriptions.get(topic_filter, [])
        if any(sub_session.client_id == session.client_id for sub_session, _qos in own):
            await super()._publish_retained_messages_for_subscription(subscription, session)

    async def drain_connections(self, timeout: float) -> None:
        """After shutdown: end the connections amqtt does not know about (no CONNECT yet).

        Closing the socket lets the handler finish on its own. Cancelling is the last resort:
        on Python 3.11 asyncio logs an error for a cancelled connection handler.
        """
        pending = [task for task in self._connections if not task.done()]
        if not pending:
            return
        for task in pending:
            self._connections[task].close()
        _done, stuck = await asyncio.wait(pending, timeout=timeout)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)


def _quiet_amqtt_logging() -> None:
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


class EmbeddedBroker:
    """An amqtt broker on ``host``:``port`` in this process's event loop.

    ``port=0`` (the default) lets the kernel pick a free port; read it from :attr:`port` after
    :meth:`start`. No authentication, no persistence. Use as ``async with EmbeddedBroker() as b:``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._broker: _HallBroker | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedBrokerError("the embedded broker has no port yet: await start() first")
        return self._port

    @property
    def running(self) -> bool:
        return self._broker is not None

    def config(self) -> dict[str, Any]:
        """The amqtt 0.12 BrokerConfig dict this broker runs with."""
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self._requested_port}"}},
            # Plugins listed here replace amqtt's defaults (event/packet loggers, anonymous auth,
            # $SYS). At least one auth plugin must answer True or every CONNECT is refused.
            "plugins": {f"{OpenAuthPlugin.__module__}.{OpenAuthPlugin.__qualname__}": {}},
            # Never expire a disconnected persistent session (Mosquitto's default too).
            "session_expiry_interval": None,
        }

    async def start(self) -> None:
        """Bind the port and start serving. Raises :class:`EmbeddedBrokerError` if it cannot."""
        if self._broker is not None:
            return
        _quiet_amqtt_logging()
        broker = _HallBroker(self.config())
        try:
            await broker.start()
        except BrokerError as exc:
            raise EmbeddedBrokerError(
                f"embedded MQTT broker could not listen on {self.host}:{self._requested_port}: "
                f"{exc.__cause__ or exc}"
            ) from exc
        self._broker = broker
        self._port = self._bound_port(broker)

    async def stop(self) -> None:
        """Disconnect every client and release the port. Idempotent."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            await broker.shutdown()
        finally:
            await broker.drain_connections(HANDLER_DRAIN_S)

    async def restart(self) -> None:
        """Stop, then start again on the same port. Like amqtt itself, keeps nothing in between:
        retained messages and persistent sessions are lost (Mosquitto keeps them)."""
        port = self._port
        await self.stop()
        if port is not None:
            self._requested_port = port
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port else self.host
        return f"<EmbeddedBroker {where} {'running' if self.running else 'stopped'}>"

    @staticmethod
    def _bound_port(broker: Broker) -> int:
        # amqtt keeps its asyncio.Server in a private map; pinned to amqtt 0.12.x in pyproject.
        server = broker._servers["default"].instance  # noqa: SLF001
        return int(server.sockets[0].getsockname()[1])
