"""The conformance run's MQTT connection: a clean-session client like any outside system's, which
publishes raw bytes (a check must be able to send what no well-behaved client would) and keeps
every message it reads, in order, raw (a duplicate's answer is compared byte for byte).

It reads the topics the contract calls public and the ones a hall manager or technician reads
(a broker's ACL may withhold those: then they simply never arrive), never ``central/req/#``
(other clients' requests) except the one topic the unanswerable-request check sends on.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from hallctl.bus.client import Bus, Incoming
from hallctl.bus.topics import parse
from hallctl.diag.session import Connection, start_bus, stop_bus


@dataclass
class Seen:
    """One message as it arrived: ``index`` is its place in the run's log."""

    index: int
    topic: str
    payload: bytes
    retain: bool
    kind: str | None
    _doc: Any = field(default=None, repr=False)
    _decoded: bool = field(default=False, repr=False)

    def doc(self) -> Any:
        """The payload as JSON, or None when it is empty or not JSON."""
        if not self._decoded:
            self._decoded = True
            try:
                self._doc = json.loads(self.payload) if self.payload else None
            except (ValueError, UnicodeDecodeError):
                self._doc = None
        return self._doc

    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


def mqtt_client_id(prefix: str = "conformance") -> str:
    """A client id of its own for each connection: it never takes over a daemon's session."""
    return f"{prefix}-{os.getpid()}-{os.urandom(3).hex()}"


class Probe:
    """``async with Probe(conn, filters) as p:`` connected, subscribed, logging into ``p.seen``."""

    def __init__(self, conn: Connection, filters: list[str]) -> None:
        self.conn = conn
        self.filters = filters
        self.seen: list[Seen] = []
        self._arrived = asyncio.Condition()
        self.bus = Bus(conn.host, conn.port, mqtt_client_id(), subscriptions=[(f, 1) for f in filters],
                       on_message=self._on_message, clean_session=True, username=conn.username,
                       password=conn.password, reconnect_max=1.0, tls=conn.tls)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Probe":
        self._task = await start_bus(self.bus, self.conn)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await stop_bus(self.bus, self._task)

    async def _on_message(self, incoming: Incoming) -> None:
        parsed = parse(incoming.topic)
        async with self._arrived:
            self.seen.append(Seen(len(self.seen), incoming.topic, incoming.payload, incoming.retain,
                                  parsed.kind if parsed else None))
            self._arrived.notify_all()

    def mark(self) -> int:
        """Where the log stands now: messages from here on arrived after this call."""
        return len(self.seen)

    def since(self, mark: int, pred: Callable[[Seen], bool] = lambda s: True) -> list[Seen]:
        return [s for s in self.seen[mark:] if pred(s)]

    async def wait(self, pred: Callable[[Seen], bool], *, since: int = 0, timeout: float | None = None) -> Seen:
        """The first message from ``since`` on that satisfies ``pred``; TimeoutError if none comes."""
        async with asyncio.timeout(self.conn.timeout if timeout is None else timeout):
            async with self._arrived:
                while True:
                    hit = next((s for s in self.seen[since:] if pred(s)), None)
                    if hit is not None:
                        return hit
                    await self._arrived.wait()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await self.bus.publish(topic, payload, retain=retain)

    async def retained_at_broker(self, topic: str, marker: str | None = None) -> list[bytes]:
        """What a new subscriber to ``topic`` gets from the broker as retained (non-empty payloads).
        ``marker`` is a topic known to hold a retained message, subscribed after ``topic``: the
        broker sends retained messages in subscription order, so once the marker is in, so is
        anything retained on ``topic``. Without one, ``topic`` is its own marker: nothing retained
        there then costs the whole timeout. Nothing when the marker never came."""
        marker = marker or topic
        got: list[Incoming] = []
        marked = asyncio.Event()

        async def on_message(incoming: Incoming) -> None:
            got.append(incoming)
            if incoming.topic == marker:
                marked.set()

        fresh = Bus(self.conn.host, self.conn.port, mqtt_client_id("conformance-fresh"),
                    subscriptions=list(dict.fromkeys([(topic, 1), (marker, 1)])), on_message=on_message, clean_session=True,
                    username=self.conn.username, password=self.conn.password, reconnect_max=1.0, tls=self.conn.tls)
        task = asyncio.create_task(fresh.run())
        try:
            async with asyncio.timeout(self.conn.timeout):
                await marked.wait()
        except TimeoutError:
            return []
        finally:
            await fresh.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return [m.payload for m in got if m.topic == topic and m.retain and m.payload]
