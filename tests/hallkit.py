"""Building blocks for the end-to-end tests: a central and window nodes in this process, each
window display a real BX emulator on a pty, all on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiomqtt

from hallctl.central.model import HallSpec, QueueSpec, WindowSpec
from hallctl.central.service import CentralService, MqttSettings
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl.runtime.tasks import cancel_and_wait
from hallctl_drivers.onbon_bx.emulator import BxEmulator

HALL = "test-hall"


def hall_spec(windows: int = 3) -> HallSpec:
    return HallSpec(
        HALL,
        {"a": QueueSpec("a", "A", "综合受理"), "b": QueueSpec("b", "B", "不动产")},
        {str(i): WindowSpec(str(i), f"{i}号窗口", ("*",)) for i in range(1, windows + 1)},
    )


def node_config(host: str, port: int, tmp: Path, window: str, emu_port: str, node_id: str | None = None,
                extra_devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    nid = node_id or f"window-{window}"
    return {
        "node": {"id": nid, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{nid}.db")},
        "device": [{"id": "display", "profile": "onbon-bx-6k", "app": "window_display",
                    "options": {"port": emu_port, "address": 1, "window": window}}] + (extra_devices or []),
    }


class RunningClock:
    """Hall time that runs on with real time from wherever a test sets it (central's ``clock=``)."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        self._at, self._t0 = at, time.monotonic()

    def __call__(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._t0)


class Running:
    """A started asyncio task for a daemon, stopped cleanly by ``stop()``."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.task = asyncio.create_task(daemon.run())

    async def stop(self) -> None:
        await self.daemon.stop()
        await cancel_and_wait(self.task)


@contextlib.asynccontextmanager
async def central(host: str, port: int, tmp: Path, windows: int = 3, hall: HallSpec | None = None,
                  **kw: Any) -> AsyncIterator[CentralService]:
    svc = CentralService(hall or hall_spec(windows), str(tmp / "central.db"), MqttSettings(host, port, keepalive=5),
                         **kw)
    run = Running(svc)
    try:
        async with asyncio.timeout(10):
            await svc.ready.wait()
        yield svc
    finally:
        await run.stop()


@contextlib.asynccontextmanager
async def window_node(host: str, port: int, tmp: Path, window: str, emu: BxEmulator, **kw: Any) -> AsyncIterator[Node]:
    node = Node(parse_node_config(node_config(host, port, tmp, window, emu.port, **kw)))
    run = Running(node)
    try:
        async with asyncio.timeout(10):
            await node.ready.wait()
        yield node
    finally:
        await run.stop()


class Observer:
    """Subscribes like any other system would and remembers every message it saw."""

    def __init__(self, host: str, port: int, filters: list[str]) -> None:
        self.host, self.port, self.filters = host, port, filters
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self.client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> "Observer":
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=f"observer-{os.urandom(3).hex()}") as client:
                    self.client = client
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self._ready.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, (bytes, bytearray)) else str(m.payload or "").encode()
                        async with self._changed:
                            self.messages.append((str(m.topic), bytes(payload), bool(m.retain)))
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.2)

    async def publish(self, topic: str, payload: Any, *, retain: bool = False, qos: int = 1) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload, ensure_ascii=False)
        async with asyncio.timeout(10):
            while self.client is None:
                await asyncio.sleep(0.05)
            await self.client.publish(topic, payload, qos=qos, retain=retain)

    def docs(self, topic: str) -> list[dict]:
        out = []
        for t, p, _ in self.messages:
            if t == topic and p:
                try:
                    out.append(json.loads(p))
                except ValueError:
                    pass
        return out

    async def wait_for(self, topic: str, pred: Callable[[dict], bool] = lambda d: True, timeout: float = 10.0,
                       count: int = 1) -> list[dict]:
        """Wait until ``count`` JSON messages on ``topic`` satisfy ``pred``; return them."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    hits = [d for d in self.docs(topic) if pred(d)]
                    if len(hits) >= count:
                        return hits
                    await self._changed.wait()


