"""The window display app's decisions, on its own (the device is a recorder of what the app asks;
the node, the drivers and Mosquitto are in test_candle_e2e.py and test_window_display_e2e.py):
when a show blinks, what it carries, and the brightness schedule (a pure function, and the
app applying it at start, at each change and when the device is back)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, time as dtime, timedelta
from typing import Any, Callable

import pytest
from conftest import PYTHON, spawn_env, write_toml

from hallctl.apps.base import AppContext
from hallctl.apps.daily_schedule import level_at, parse_schedule, seconds_to_next_change
from hallctl.apps.window_display import WindowDisplayApp
from hallctl.bus.topics import Topics
from hallctl.errors import DeviceOffline, HallctlError, UnknownCommand
from hallctl_drivers.schema import SchemaError

SCHEDULE = parse_schedule([{"at": "18:00", "level": 3}, {"at": "08:00", "level": 15}, {"at": "12:30", "level": 9}],
                          "brightness")


# -- the schedule, pure ------------------------------------------------------------------------


@pytest.mark.parametrize("at, level", [
    ("00:00", 3), ("07:59", 3),  # before the day's first change: last evening's level holds
    ("08:00", 15), ("12:29", 15), ("12:30", 9), ("17:59", 9), ("18:00", 3), ("23:59", 3),
])
def test_level_at(at, level):
    h, m = map(int, at.split(":"))
    assert level_at(SCHEDULE, dtime(h, m, 59 if m == 59 else 0)) == level


def test_level_at_edge_cases():
    assert level_at((), dtime(9)) is None
    one = parse_schedule([{"at": "08:00", "level": 5}], "brightness")
    assert level_at(one, dtime(0)) == level_at(one, dtime(23)) == 5


def test_seconds_to_next_change_wraps_to_tomorrow():
    assert seconds_to_next_change(SCHEDULE, datetime(2026, 11, 30, 7, 59, 30)) == 30
    assert seconds_to_next_change(SCHEDULE, datetime(2026, 11, 30, 8, 0)) == 4.5 * 3600
    assert seconds_to_next_change(SCHEDULE, datetime(2026, 11, 30, 23, 0)) == 9 * 3600
    assert seconds_to_next_change((), datetime(2026, 11, 30)) is None


def test_a_time_given_twice_is_named():
    with pytest.raises(SchemaError) as err:
        parse_schedule([{"at": "08:00", "level": 1}, {"at": "18:00", "level": 2}, {"at": "08:00", "level": 3}],
                       "brightness")
    assert err.value.path == "brightness[2].at" and "brightness[0]" in err.value.problem


NODE = """
    [node]
    id = "window-3"
    hall = "h1"
    [mqtt]
    host = "127.0.0.1"
    port = 1
    [store]
    path = "n.db"
    [[device]]
    id = "display"
    profile = "candle-4d-arrow"
    app = "window_display"
    [device.options]
    port = "/dev/ttyUSB0"
    window = "3"
    {extra}
    """


@pytest.mark.parametrize("extra, key, problem", [
    ('brightness = [{at = "08:00", level = 15}, {at = "8:00", level = 3}]', "options.brightness[1].at", "HH:MM"),
    ('brightness = [{at = "08:00", level = 16}]', "options.brightness[0].level", "0..15"),
    ('brightness = [{at = "08:00", level = 1}, {at = "08:00", level = 2}]', "options.brightness[1].at", "given twice"),
    ('brightness = [{at = "08:00"}]', "options.brightness[0].level", "missing"),
    ("blink = 95", "options.blink", "-1..94"),
])
def test_a_bad_schedule_or_blink_exits_78_naming_the_key(tmp_path, extra, key, problem):
    import subprocess

    path = write_toml(tmp_path / "node.toml", NODE.format(extra=extra))
    proc = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(path)], env=spawn_env(),
                          capture_output=True, text=True, timeout=60)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 78 and f"{path}: device[0].{key}: " in line and problem in line, proc.stderr


# -- the app with a recording device -----------------------------------------------------------


class Device:
    """What the app asked, in order; ``fail[action]`` makes that action raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, HallctlError] = {}
        self.changed = asyncio.Event()
        #: while set, a show waits for it (a slow bus)
        self.gate: asyncio.Event | None = None

    async def submit(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((action, dict(args)))
        self.changed.set()
        if self.gate is not None and action == "show":
            await self.gate.wait()
        if action in self.fail:
            raise self.fail[action]
        return {}

    def shows(self) -> list[dict[str, Any]]:
        return [a for n, a in self.calls if n == "show"]

    async def wait(self, pred: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


def state(status: str | None, number: str = "A012", recalls: int = 0, called_at: str = "2026-11-30T09:00:00+08:00"):
    ticket = None if status is None else {"number": number, "queue": "a", "status": status,
                                          "called_at": called_at, "recalls": recalls}
    return {"v": 1, "window": "5", "name": "5号窗口", "state": "open", "ticket": ticket}


async def running(options: dict[str, Any], clock: Callable[[], datetime] | None = None):
    dev = Device()
    ctx = AppContext("window-5", "display", Topics("h1"), dev.submit, logging.getLogger("test"))
    app = WindowDisplayApp(ctx, {"window": "5", **options})
    if clock is not None:
        app.clock = clock
    task = asyncio.create_task(app.run())
    await app.on_up()
    return app, dev, task


async def test_a_new_call_and_a_recall_blink_a_republished_state_does_not():
    app, dev, task = await running({})
    try:
        app.on_window_state(state(None))
        await dev.wait(lambda: len(dev.shows()) == 1)
        assert dev.shows()[0] == {"lines": ["5号窗口", "欢迎光临"], "number": "", "window": "5"}
        app.on_window_state(state("called"))
        await dev.wait(lambda: len(dev.shows()) == 2)
        assert dev.shows()[1] == {"lines": ["请A012号", "到5号窗口办理"], "number": "A012", "window": "5", "blink": 3}
        app.on_window_state(state("called"))  # central re-publishes on reconnect: not a new call
        app.on_window_state(state("called", recalls=1))  # a recall: same lines, blinking again
        await dev.wait(lambda: len(dev.shows()) == 3)
        assert dev.shows()[2]["blink"] == 3
        app.on_window_state(state("serving", recalls=1))
        await dev.wait(lambda: len(dev.shows()) == 4)
        assert "blink" not in dev.shows()[3] and dev.shows()[3]["number"] == "A012"
        await app.on_up()  # the device came back: the truth again, steady
        await dev.wait(lambda: len(dev.shows()) == 5)
        assert dev.shows()[4] == dev.shows()[3]
        app.on_window_state(state("called", "A013", called_at="2026-11-30T09:05:00+08:00"))
        await dev.wait(lambda: len(dev.shows()) == 6)
        assert dev.shows()[5]["blink"] == 3 and dev.shows()[5]["number"] == "A013"
    finally:
        task.cancel()


async def test_a_call_arriving_while_a_show_is_on_its_way_keeps_its_blinks():
    app, dev, task = await running({})
    try:
        dev.gate = asyncio.Event()
        app.on_window_state(state(None))
        await dev.wait(lambda: len(dev.shows()) == 1)  # on the wire, not finished
        app.on_window_state(state("called"))
        dev.gate.set()
        await dev.wait(lambda: len(dev.shows()) == 2)
        assert dev.shows()[1]["number"] == "A012" and dev.shows()[1]["blink"] == 3
    finally:
        task.cancel()


async def test_a_call_the_device_missed_blinks_when_it_is_back():
    app, dev, task = await running({"blink": 2})
    try:
        dev.fail["show"] = DeviceOffline("unplugged")
        app.on_window_state(state("called"))
        await dev.wait(lambda: len(dev.shows()) == 1)
        del dev.fail["show"]
        await app.on_up()
        await dev.wait(lambda: len(dev.shows()) == 2)
        assert dev.shows()[1]["blink"] == 2
    finally:
        task.cancel()


async def test_blink_until_served_and_never():
    app, dev, task = await running({"blink": -1})
    try:
        app.on_window_state(state("called"))
        await dev.wait(lambda: len(dev.shows()) == 1)
        await app.on_up()  # still called: still blinking
        await dev.wait(lambda: len(dev.shows()) == 2)
        assert [s["blink"] for s in dev.shows()] == [-1, -1]
        app.on_window_state(state("serving"))
        await dev.wait(lambda: len(dev.shows()) == 3)
        assert "blink" not in dev.shows()[2]
    finally:
        task.cancel()
    app, dev, task = await running({"blink": 0})
    try:
        app.on_window_state(state("called"))
        await dev.wait(lambda: len(dev.shows()) == 1)
        assert "blink" not in dev.shows()[0]
    finally:
        task.cancel()


class Clock:
    """Hall time that runs on with real time from where the test puts it."""

    def __init__(self, at: datetime) -> None:
        self.at, self.t0 = at, time.monotonic()

    def __call__(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self.t0)


async def test_brightness_at_start_at_each_change_and_when_the_device_is_back():
    clock = Clock(datetime(2026, 11, 30, 17, 59, 59, 800000))  # 0.2 s before the evening change
    schedule = [{"at": "08:00", "level": 15}, {"at": "18:00", "level": 3}]
    app, dev, task = await running({"brightness": schedule}, clock)
    try:
        levels = lambda: [a["level"] for n, a in dev.calls if n == "brightness"]  # noqa: E731
        await dev.wait(lambda: levels() == [15, 3])  # at start, then at 18:00 by itself
        await app.on_up()
        await dev.wait(lambda: levels() == [15, 3, 3])
        app.after_command("brightness")  # a technician's level stays until the next change
        await asyncio.sleep(0)
        assert levels() == [15, 3, 3]
    finally:
        task.cancel()


async def test_a_device_without_brightness_is_not_asked_again():
    app, dev, task = await running({"brightness": [{"at": "08:00", "level": 15}]})
    try:
        dev.fail["brightness"] = UnknownCommand("no brightness")
        await dev.wait(lambda: len(dev.calls) == 1)
        await app.on_up()
        app.on_window_state(state("called"))
        await dev.wait(lambda: len(dev.shows()) == 1)
        assert [n for n, _ in dev.calls] == ["brightness", "show"]
    finally:
        task.cancel()
