"""TcpTransport against a local asyncio TCP server on 127.0.0.1 (a network printer or an
RS485-to-Ethernet server, as far as the transport can tell)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
from conftest import line_reader

from hallctl.errors import DeviceOffline, DeviceTimeout
from hallctl_drivers.transports.tcp import TcpTransport


class LineServer:
    """Answers ``X\\n`` with ``ok X\\n``; ``bye\\n`` closes the connection; ``mute\\n`` is not
    answered. Keeps what it heard and how many connections it accepted."""

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                self.heard.append(line)
                if line == b"bye\n":
                    break
                if line != b"mute\n":
                    writer.write(b"ok " + line)
                    await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> "LineServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()



@pytest.fixture
async def server() -> AsyncIterator[LineServer]:
    async with LineServer() as s:
        yield s


async def test_transact_over_tcp(server: LineServer) -> None:
    t = TcpTransport("127.0.0.1", server.port)
    assert t.name == f"tcp://127.0.0.1:{server.port}"
    await t.open()
    assert await t.transact(b"hello\n", line_reader(), timeout=2) == b"ok hello"
    assert await t.transact(b"again\n", line_reader(), timeout=2) == b"ok again"
    assert server.heard == [b"hello\n", b"again\n"] and server.connections == 1
    await t.close()
    await t.close()


async def test_silence_is_a_timeout(server: LineServer) -> None:
    t = TcpTransport("127.0.0.1", server.port)
    await t.open()
    with pytest.raises(DeviceTimeout):
        await t.transact(b"mute\n", line_reader(), timeout=0.1)
    await t.close()


async def test_a_dropped_connection_is_offline_and_the_next_transaction_reconnects(server: LineServer) -> None:
    t = TcpTransport("127.0.0.1", server.port)
    await t.open()
    with pytest.raises(DeviceOffline, match="closed the connection") as exc:
        await t.transact(b"bye\n", line_reader(), timeout=5)  # the device hangs up
    assert exc.value.code == "device_offline"
    assert await t.transact(b"back\n", line_reader(), timeout=2) == b"ok back"
    assert server.connections == 2
    await t.close()


async def test_nothing_listening_is_offline(server: LineServer) -> None:
    port = server.port
    await server.__aexit__()
    await server.server.wait_closed()  # type: ignore[union-attr]
    t = TcpTransport("127.0.0.1", port, connect_timeout=2)
    with pytest.raises(DeviceOffline, match="cannot connect"):
        await t.open()
    with pytest.raises(DeviceOffline, match="not open"):
        await t.transact(b"x\n", line_reader(), timeout=1)


async def test_transactions_take_turns(server: LineServer) -> None:
    t = TcpTransport("127.0.0.1", server.port)
    await t.open()

    async def talk(tag: str) -> list[bytes]:
        return [await t.transact(f"{tag}{i}\n".encode(), line_reader(), timeout=2) for i in range(20)]

    a, b = await asyncio.gather(talk("a"), talk("b"))
    assert a == [f"ok a{i}".encode() for i in range(20)]  # each got its own reply, never the other's
    assert b == [f"ok b{i}".encode() for i in range(20)]
    await t.close()
