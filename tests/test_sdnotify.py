"""systemd notify over a real AF_UNIX datagram socket (path and abstract namespace)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

from hallctl.runtime.sdnotify import Notifier


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


@pytest.fixture
def path_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()


@pytest.fixture
def abstract_socket():
    name = f"hallctl-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    yield "@" + name, sock
    sock.close()


def test_path_socket_receives_ready_status_watchdog_stopping(path_socket):
    path, sock = path_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("3 devices, broker connected")
    assert _recv(sock) == "READY=1\nSTATUS=3 devices, broker connected"
    assert n.status("显示屏 display 离线")
    assert _recv(sock) == "STATUS=显示屏 display 离线"
    assert n.watchdog()
    assert _recv(sock) == "WATCHDOG=1"
    assert n.stopping()
    assert _recv(sock) == "STOPPING=1"
    n.close()


def test_abstract_socket(abstract_socket):
    name, sock = abstract_socket
    n = Notifier({"NOTIFY_SOCKET": name})
    n.ready()
    assert _recv(sock) == "READY=1"
    n.watchdog()
    assert _recv(sock) == "WATCHDOG=1"
    n.close()


def test_status_is_kept_on_one_line(path_socket):
    path, sock = path_socket
    Notifier({"NOTIFY_SOCKET": path}).status("line one\nREADY=1")
    assert _recv(sock) == "STATUS=line one READY=1"


def test_no_socket_is_a_noop():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.watchdog_interval() is None


def test_missing_receiver_does_not_raise(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert n.ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 15.0
    pid = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}).watchdog_interval() == 1.0
    # WATCHDOG_PID names another process: the watchdog is not ours
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "garbage"}).watchdog_interval() is None


async def test_run_watchdog_pings_only_while_healthy(path_socket):
    path, sock = path_socket
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})  # ping every 10 ms
    healthy = True
    unhealthy_checks = 0
    three_unhealthy_checks = asyncio.Event()

    def is_healthy() -> bool:
        nonlocal unhealthy_checks
        if not healthy:
            unhealthy_checks += 1
            if unhealthy_checks >= 3:
                three_unhealthy_checks.set()
        return healthy

    task = asyncio.create_task(n.run_watchdog(is_healthy))
    try:
        for _ in range(3):
            assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 10) == b"WATCHDOG=1"
        healthy = False
        while True:  # drop pings sent before the flip (sendto is synchronous: all are queued)
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
        await asyncio.wait_for(three_unhealthy_checks.wait(), 10)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)  # three checks said "unhealthy": no ping was sent
        healthy = True
        assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 10) == b"WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    n.close()


async def test_run_watchdog_returns_without_watchdog(path_socket):
    path, _ = path_socket
    await asyncio.wait_for(Notifier({"NOTIFY_SOCKET": path}).run_watchdog(lambda: True), 10)
