"""TCP devices (network ticket printers on port 9100, RS485-to-Ethernet servers), on the loop.

Built on asyncio's protocol API rather than StreamReader: a transaction must be able to drop the
bytes that already arrived (a late reply to an earlier request) without waiting, and StreamReader
has no way to say what it holds. A connection the peer closed is DeviceOffline; the next
transaction connects again.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from hallctl.errors import DeviceOffline
from hallctl_drivers.transports import Channel, Transport, exclusive


class _Connection(asyncio.Protocol):
    """One TCP connection: what arrived, whether the peer is gone, and write flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.inbox = bytearray()
        self.arrived = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.arrived.set()  # wake a reader: it reports the loss
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpTransport(Transport):
    """A TCP device, e.g. ``TcpTransport("192.168.1.50", 9100)``."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0) -> None:
        self.host, self.port = host, port
        self.name = f"tcp://{host}:{port}"
        self.connect_timeout = connect_timeout
        self._open = False
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if not self._open:
            await self._connect()
            self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            async with self._lock:
                self._drop()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Channel]:
        async with exclusive(self.name, self._lock, lambda: self._open):
            if self._conn is None or self._conn.lost:
                await self._connect()
            assert self._conn is not None
            yield _TcpChannel(self, self._conn)

    async def _connect(self) -> None:
        self._drop()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, self._conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise DeviceOffline(f"cannot connect to {self.name}: {exc}", transport=self.name) from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _offline(self) -> DeviceOffline:
        self._drop()
        return DeviceOffline(f"{self.name} closed the connection", transport=self.name)


class _TcpChannel(Channel):
    def __init__(self, owner: TcpTransport, conn: _Connection) -> None:
        self._owner, self._conn = owner, conn

    async def write(self, data: bytes) -> None:
        conn = self._conn
        if conn.lost or conn.transport is None:
            raise self._owner._offline()
        conn.transport.write(bytes(data))
        await conn.writable.wait()
        if conn.lost:
            raise self._owner._offline()

    async def read(self, timeout: float) -> bytes:
        conn = self._conn
        if not conn.inbox and not conn.lost:
            conn.arrived.clear()
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await conn.arrived.wait()
            except TimeoutError:
                pass
        if not conn.inbox and conn.lost:
            raise self._owner._offline()
        data = bytes(conn.inbox)
        conn.inbox.clear()
        return data

    async def discard_input(self) -> None:
        self._conn.inbox.clear()
