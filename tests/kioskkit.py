"""Building blocks for the kiosk's end-to-end tests: central with a catalogue worth a menu, and a
kiosk node whose ticket printer is the real ESC/POS emulator on a pty, on a real Mosquitto; the
page is the app's own aiohttp server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
from escpos_samples import profile
from hallkit import HALL, Running

from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.escpos.emulator import PtyPrinter

KIOSK = "kiosk-1"
LINK = "https://hall.example.cn/t/{token}"


def kiosk_hall() -> HallSpec:
    return HallSpec(
        HALL,
        {"general": QueueSpec("general", "A", "综合受理"), "house": QueueSpec("house", "B", "不动产")},
        {"1": WindowSpec("1", "1号窗口"), "2": WindowSpec("2", "2号窗口", ("house",))},
        matters={"licence": MatterSpec("licence", "营业执照设立登记", "general", "amr"),
                 "food": MatterSpec("food", "食品经营许可", "general", "amr")},
        departments={"amr": DepartmentSpec("amr", "市场监管")},
        name="萧山区行政服务中心", ticket_link=LINK,
    )


def kiosk_config(host: str, port: int, tmp: Path, printer_port: str, **options: Any) -> dict[str, Any]:
    return {
        "node": {"id": KIOSK, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{KIOSK}.db")},
        "device": [{"id": "printer", "profile": "snbc-bt-t080", "app": "kiosk", "probe_interval_s": 0.2,
                    "options": {"port": printer_port, "status_timeout_s": 0.5, "print_timeout_s": 2.0,
                                "http_port": 0, "next_kiosk": "一楼大厅东侧2号取号机", **options}}],
    }


@contextlib.asynccontextmanager
async def kiosk_node(host: str, port: int, tmp: Path, **options: Any) -> AsyncIterator[tuple[Node, PtyPrinter]]:
    with PtyPrinter.for_profile(profile("snbc-bt-t080"), out_dir=tmp / "tickets") as emu:
        node = Node(parse_node_config(kiosk_config(host, port, tmp, emu.port, **options)))
        run = Running(node)
        try:
            async with asyncio.timeout(10):
                await node.ready.wait()
            yield node, emu
        finally:
            async with asyncio.timeout(10):
                await run.stop()


class Page:
    """The kiosk page's API as its JavaScript uses it."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def view(self) -> dict[str, Any]:
        async with self.session.get(self.url + "api/view") as r:
            assert r.status == 200
            return await r.json()

    async def press(self, **action: Any) -> dict[str, Any]:
        async with self.session.post(self.url + "api/press", data=json.dumps(action)) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def wait_screen(self, *screens: str, timeout: float = 15.0) -> dict[str, Any]:
        """Follow the page's event stream until it shows one of ``screens``."""
        async with asyncio.timeout(timeout):
            async with self.session.get(self.url + "api/events") as r:
                async for line in r.content:
                    if line.startswith(b"data: "):
                        view = json.loads(line[6:])
                        if view["screen"] in screens:
                            return view
        raise AssertionError(f"the event stream ended before {screens}")
