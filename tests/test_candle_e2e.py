"""Candle boards on a real node: two boards on one RS485 bus (one pty, one CandleBus), a central
and a real Mosquitto. A call shows the number and the window and blinks; a recall blinks again;
the brightness schedule is applied at start and when the bus comes back; ``hallctl diag run``
drives a board's test actions."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import PYTHON, spawn_env
from hallkit import HALL, Observer, Running, central

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.candle.emulator import CandleBus

T = Topics(HALL)
NODE = "window-12"
BOARDS = (("1", 0x21), ("2", 0x22))


def node_config(host: str, port: int, tmp: Path, bus_port: str, **app: Any) -> dict[str, Any]:
    return {
        "node": {"id": NODE, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{NODE}.db")},
        "device": [{"id": f"display-{w}", "profile": "candle-4d-arrow", "app": "window_display", "probe_interval_s": 0.5,
                    "options": {"port": bus_port, "address": a, "window": w, **app}} for w, a in BOARDS],
    }


class CandleNode:
    def __init__(self, host: str, port: int, tmp: Path, bus: CandleBus, **app: Any) -> None:
        self.node = Node(parse_node_config(node_config(host, port, tmp, bus.port, **app)))

    async def __aenter__(self) -> Node:
        self.run = Running(self.node)
        async with asyncio.timeout(10):
            await self.node.ready.wait()
        return self.node

    async def __aexit__(self, *exc: Any) -> None:
        await self.run.stop()


async def _call(obs: Observer, action: str, data: dict, rid: str) -> dict:
    await obs.publish(T.central_req("clerk", action), {"v": 1, "request_id": rid, "data": data})
    res = (await obs.wait_for(T.central_res("clerk"), lambda d: d["request_id"] == rid))[0]
    assert res["status"] == "ok", res
    return res


async def shows(bus: CandleBus, address: int, text: str, blink: int | None = None, *, count: int = 1) -> bool:
    """Wait until the board's history has ``count`` rows ``text`` (with ``blink``)."""
    def seen() -> bool:
        rows = [h for h in bus.board(address).history if h[0] == text and (blink is None or h[1] == blink)]
        return len(rows) >= count
    return await asyncio.to_thread(bus.wait_for, seen, 10)


async def test_two_boards_on_one_bus_show_the_call_and_blink_on_a_new_call(mosquitto, tmp_path):
    with CandleBus([a for _, a in BOARDS]) as bus:
        async with central(mosquitto.host, mosquitto.port, tmp_path), \
                CandleNode(mosquitto.host, mosquitto.port, tmp_path, bus):
            async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk")]) as obs:
                for w, _ in BOARDS:
                    await _call(obs, "window.open", {"window": w}, f"o{w}")
                assert await shows(bus, 0x21, "    -1 ", 0) and await shows(bus, 0x22, "    -2 ", 0)
                for i in (1, 2):
                    await _call(obs, "ticket.issue", {"queue": "a"}, f"t{i}")

                await _call(obs, "window.call_next", {"window": "1"}, "n1")
                assert await shows(bus, 0x21, "A001-1 ", 3)  # the app's default: 3 blinks, then steady
                await _call(obs, "window.call_next", {"window": "2"}, "n2")
                assert await shows(bus, 0x22, "A002-2 ", 3)
                await _call(obs, "window.recall", {"window": "1"}, "r1")
                assert await shows(bus, 0x21, "A001-1 ", 3, count=2)  # the same row again, blinking again
                await _call(obs, "window.start", {"window": "1"}, "s1")
                assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).history[-1] == ("A001-1 ", 0), 10)
                await _call(obs, "window.complete", {"window": "1"}, "c1")
                assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).text == "    -1 ", 10)

                # window 2's board saw only its own rows; nothing on the bus was undecodable
                assert [h for h in bus.board(0x22).history if h != ("    -2 ", 0)] == [("A002-2 ", 3)]
                assert not any(b.frame_errors or b.unrendered for b in bus.boards)
                assert not [f for f in bus.bus_log if isinstance(f, Exception)]


async def test_blink_until_served_and_no_blink(mosquitto, tmp_path):
    """``blink = -1``: the board blinks (mode 21) for as long as the ticket is called."""
    with CandleBus([a for _, a in BOARDS]) as bus:
        async with central(mosquitto.host, mosquitto.port, tmp_path), \
                CandleNode(mosquitto.host, mosquitto.port, tmp_path, bus, blink=-1):
            async with Observer(mosquitto.host, mosquitto.port, [T.central_res("clerk")]) as obs:
                await _call(obs, "window.open", {"window": "2"}, "o2")
                await _call(obs, "ticket.issue", {"queue": "b"}, "t1")
                await _call(obs, "window.call_next", {"window": "2"}, "n1")
                assert await shows(bus, 0x22, "B001-2 ", -1)
                await _call(obs, "window.start", {"window": "2"}, "s1")
                assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x22).history[-1] == ("B001-2 ", 0), 10)
                assert bus.board(0x22).frames[-1] == bytes.fromhex("01 22 20 42 30 30 31 2D 32 20 07")


async def test_brightness_schedule_is_applied_at_start_and_when_the_bus_is_back(mosquitto, tmp_path):
    now = datetime.now()
    # whatever the time of day: the change two hours ago (level 2) is in force, the next is later
    schedule = [{"at": (now - timedelta(hours=2)).strftime("%H:%M"), "level": 2},
                {"at": (now + timedelta(hours=2)).strftime("%H:%M"), "level": 14}]
    with CandleBus([a for _, a in BOARDS]) as bus:
        async with CandleNode(mosquitto.host, mosquitto.port, tmp_path, bus, brightness=schedule) as node:
            state = T.dev_state(node.id, "display-1")
            brightness = bytes.fromhex("02 21 23 07")  # level 2: the dimmest of the board's 4 steps
            assert await asyncio.to_thread(
                bus.wait_for, lambda: bus.board(0x21).brightness == bus.board(0x22).brightness == 0x23, 10)
            async with Observer(mosquitto.host, mosquitto.port, [state]) as obs:
                bus.unplug()  # the RS485 adapter is pulled: the node notices on its next probe
                await obs.wait_for(state, lambda d: not d["available"], timeout=20)
                bus.replug()
                await obs.wait_for(state, lambda d: d["available"], timeout=30)
            assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x21).frames.count(brightness) == 2, 10)


async def diag(broker, *args: str) -> tuple[int, str, str]:
    env = spawn_env()
    env.update({"HALLCTL_BROKER": f"{broker.host}:{broker.port}", "HALLCTL_HALL": HALL})
    proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "hallctl", "diag", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_diag_runs_a_boards_test_actions(mosquitto, tmp_path):
    with CandleBus([a for _, a in BOARDS]) as bus:
        async with CandleNode(mosquitto.host, mosquitto.port, tmp_path, bus):
            dev = f"{NODE}/display-2"
            rc, out, err = await diag(mosquitto, "run", dev, "--json")
            assert rc == 0, err
            actions = json.loads(out)["actions"]
            assert set(actions) == {"show", "clear", "brightness", "probe"}  # no ping: the board cannot answer
            assert actions["show"].get("test") is True

            rc, out, err = await diag(mosquitto, "run", dev, "show", 'lines=["C123>8"]', "blink=2", "--json")
            assert rc == 0 and json.loads(out)["data"]["confirmed"] is False, out + err
            assert await shows(bus, 0x22, "C123>8 ", 2)
            rc, out, _ = await diag(mosquitto, "run", dev, "show", 'lines=["测试"]')
            assert rc == 1 and "bad_request" in out and "'测'" in out  # refused by name, nothing sent
            rc, out, _ = await diag(mosquitto, "run", dev, "brightness", "level=9", "--json")
            assert rc == 0 and json.loads(out)["data"] == {"level": 9, "code": 0x21, "confirmed": False}
            assert await asyncio.to_thread(bus.wait_for, lambda: bus.board(0x22).brightness == 0x21, 10)
            rc, out, _ = await diag(mosquitto, "run", dev, "probe", "--json")
            data = json.loads(out)["data"]
            assert rc == 0 and data["health"] == "ok" and "write-only" in data["reason"]
            rc, _, err = await diag(mosquitto, "run", dev, "ping")
            assert rc == 2 and "has no action 'ping'" in err
