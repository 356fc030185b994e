"""One diagnostics session on the hall's broker: read retained documents, follow live messages,
run a device action. MQTT only (through hallctl.bus): a daemon's serial port is never touched.

The session subscribes with a clean session and a client id of its own (``diag-<host>-<pid>``), so
it leaves nothing behind at the broker and never steals a daemon's queued messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

from hallctl.bus import messages
from hallctl.bus.client import Bus, Incoming
from hallctl.bus.probe import probe_broker
from hallctl.bus.tls import TlsSettings
from hallctl.bus.topics import RETAINED_KINDS, Topics, matches, parse


class BrokerUnreachable(Exception):
    """The broker did not accept the connection in time (down, wrong address, bad credentials)."""


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    hall: str
    username: str | None = None
    password: str | None = None
    timeout: float = 5.0
    #: TLS to the broker (its CA); None: plain TCP
    tls: TlsSettings | None = None

    def __repr__(self) -> str:  # never the password
        over = f", tls ca={self.tls.ca}" if self.tls else ""
        return f"Connection({self.host}:{self.port}, hall={self.hall!r}, user={self.username!r}{over})"


async def start_bus(bus: Bus, conn: Connection) -> asyncio.Task[None]:
    """``bus`` running and connected (its task). One plain attempt first: a refused connection, an
    unknown host or refused credentials are said at once and in their own words, not as a
    time-out. Raises :class:`BrokerUnreachable`."""
    problem = await probe_broker(conn.host, conn.port, username=conn.username, password=conn.password,
                                 timeout=conn.timeout, tls=conn.tls)
    if problem is not None:
        raise BrokerUnreachable(problem)
    task = asyncio.create_task(bus.run())
    try:
        async with asyncio.timeout(conn.timeout):
            await bus.connected.wait()
    except TimeoutError:
        await stop_bus(bus, task)
        raise BrokerUnreachable(f"no MQTT connection to {conn.host}:{conn.port} within {conn.timeout:g} s "
                                "(broker down, wrong address, or credentials refused)") from None
    return task


async def stop_bus(bus: Bus, task: asyncio.Task[None] | None) -> None:
    await bus.close()
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Session:
    """``async with Session(conn, filters) as s:`` connected and subscribed to ``filters``;
    ``s.retained`` holds the last document per topic (empty payloads remove it)."""

    def __init__(self, conn: Connection, filters: list[str], on_live: Callable[[str, Any], None] | None = None) -> None:
        self.conn = conn
        self.topics = Topics(conn.hall)
        self.filters = filters
        self.retained: dict[str, Any] = {}
        self._on_live = on_live
        self._last_message = 0.0
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        client_id = f"diag-{socket.gethostname().lower()[:20]}-{os.getpid()}-{os.urandom(2).hex()}"
        self.client_id = "".join(c if c.isalnum() or c == "-" else "-" for c in client_id)
        self.bus = Bus(conn.host, conn.port, self.client_id, subscriptions=[(f, 1) for f in filters],
                       on_message=self._on_message, clean_session=True,
                       username=conn.username, password=conn.password, reconnect_max=1.0, tls=conn.tls)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Session":
        self._task = await start_bus(self.bus, self.conn)
        self._last_message = asyncio.get_running_loop().time()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await stop_bus(self.bus, self._task)

    async def settle(self, quiet: float = 0.3, longest: float = 3.0) -> None:
        """Wait until the retained copies have arrived: ``quiet`` seconds without a message."""
        loop = asyncio.get_running_loop()
        end = loop.time() + longest
        while loop.time() < end:
            idle = loop.time() - self._last_message
            if idle >= quiet:
                return
            await asyncio.sleep(quiet - idle)

    async def _on_message(self, incoming: Incoming) -> None:
        self._last_message = asyncio.get_running_loop().time()
        if not incoming.payload:
            self.retained.pop(incoming.topic, None)
            return
        try:
            doc: Any = json.loads(incoming.payload)
        except ValueError:
            doc = {"unreadable": incoming.payload[:200].decode("utf-8", "replace")}
        parsed = parse(incoming.topic)
        if parsed is not None and parsed.kind in RETAINED_KINDS:  # live updates come unflagged
            self.retained[incoming.topic] = doc
        rid = doc.get("request_id") if isinstance(doc, dict) else None
        fut = self._waiters.get(f"{incoming.topic}|{rid}")
        if fut is not None and not fut.done():
            fut.set_result(doc)
        if self._on_live is not None and not incoming.retain:
            self._on_live(incoming.topic, doc)

    def docs(self, topic_filter: str) -> dict[str, Any]:
        return {t: d for t, d in self.retained.items() if matches(topic_filter, t)}

    async def command(self, node: str, device: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run a device action; the response document. TimeoutError when nobody answers."""
        res_topic = self.topics.dev_res(node, device, action)
        assert any(matches(f, res_topic) for f in self.filters), "subscribe to the response topic first"
        rid = f"{self.client_id}.{os.urandom(4).hex()}"  # a dot: no digit run that reads as a phone
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[f"{res_topic}|{rid}"] = fut
        try:
            await self.bus.publish(self.topics.dev_cmd(node, device, action), messages.request(rid, data))
            async with asyncio.timeout(self.conn.timeout):
                return await fut
        finally:
            self._waiters.pop(f"{res_topic}|{rid}", None)
