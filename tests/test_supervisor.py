"""Supervisor and device workers, driven by small fake drivers defined here.

The fakes stand in for a device so that the *supervisor's* behaviour can be observed: restarts,
backoff, state transitions, isolation between devices, logging.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Mapping

import pytest

from hallctl.errors import (
    BadRequest,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    HallctlError,
    NotFound,
    UnknownDevice,
)
from hallctl.runtime.supervisor import DeviceState, DeviceWorker, Supervisor
from hallctl_drivers.base import Driver, Health, ProbeResult

LOGGER = "hallctl.runtime.supervisor"
WAIT = 10  # generous: only there to turn a hang into a failure


class FakeHardware:
    """The 'physical' device: it outlives each driver instance the worker builds."""

    def __init__(self, start_failures: int = 0) -> None:
        self.start_failures = start_failures
        self.starts = 0
        self.stops = 0
        self.shown: list[str] = []
        self.health = Health.OK
        self.hanging = asyncio.Event()


class FakeDriver(Driver):
    kind = "fake_display"
    actions = ("show", "fail", "bad", "missing", "hang", "bug")

    def __init__(self, hw: FakeHardware) -> None:
        super().__init__({}, {})
        self.hw = hw

    async def start(self) -> None:
        self.hw.starts += 1
        if self.hw.start_failures > 0:
            self.hw.start_failures -= 1
            raise OSError(2, "No such file or directory: '/dev/ttyUSB0'")

    async def stop(self) -> None:
        self.hw.stops += 1

    async def probe(self) -> ProbeResult:
        return ProbeResult(self.hw.health, "" if self.hw.health is Health.OK else "cover open")

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "show":
            self.hw.shown.append(args["text"])
            return {"shown": args["text"]}
        if action == "fail":
            raise DeviceError("NACK 05 (checksum)")
        if action == "bad":
            raise BadRequest("text must be a string")
        if action == "missing":
            raise NotFound("no such area")
        if action == "hang":
            self.hw.hanging.set()
            await asyncio.Event().wait()
        if action == "bug":
            raise KeyError("oops")
        raise AssertionError(action)


class StateLog:
    """Collects on_state calls; lets a test wait for a state."""

    def __init__(self) -> None:
        self.states: list[DeviceState] = []
        self._changed = asyncio.Condition()

    async def __call__(self, state: DeviceState) -> None:
        async with self._changed:
            self.states.append(state)
            self._changed.notify_all()

    async def wait(self, pred: Callable[[DeviceState], bool], after: int = 0) -> DeviceState:
        async def _wait() -> DeviceState:
            async with self._changed:
                while True:
                    for s in self.states[after:]:
                        if pred(s):
                            return s
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), WAIT)

    def transitions(self) -> list[tuple[bool, str]]:
        return [(s.available, s.health) for s in self.states]


def up(s: DeviceState) -> bool:
    return s.available


def down(s: DeviceState) -> bool:
    return not s.available and s.health == "fault"


def make_worker(hw: FakeHardware, states: StateLog, device_id: str = "display", **kw: Any) -> DeviceWorker:
    kw.setdefault("backoff_initial", 0.001)
    kw.setdefault("backoff_max", 0.01)
    kw.setdefault("probe_interval", 3600)
    return DeviceWorker(device_id, lambda: FakeDriver(hw), on_state=states, **kw)


def messages(caplog, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == level and text in r.getMessage()]


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)


async def test_failing_start_is_retried_with_backoff(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    hw, states = FakeHardware(start_failures=3), StateLog()
    worker = make_worker(hw, states)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        assert hw.starts == 4
        assert hw.stops == 3  # each failed start is cleaned up
        assert states.transitions() == [(False, "fault"), (True, "ok")]
        assert "No such file or directory" in states.states[0].reason
        assert len(messages(caplog, logging.WARNING, "offline")) == 1
        assert len(messages(caplog, logging.DEBUG, "restart attempt")) == 3
        assert len(messages(caplog, logging.INFO, "back online")) == 1
        assert [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == LOGGER] \
            == [r for r in caplog.records if "offline" in r.getMessage() and r.levelno == logging.WARNING]
    finally:
        await stop(task)


async def test_a_driver_that_cannot_be_built_is_a_fault_not_an_endless_retry(caplog):
    from hallctl.errors import ConfigError

    built = []

    def factory() -> Driver:
        built.append(1)
        raise ConfigError("must be 1..65534, got 70000", key="options.address")

    states = StateLog()
    worker = DeviceWorker("display", factory, on_state=states, backoff_initial=0.001, backoff_max=0.01)
    task = asyncio.create_task(worker.run())
    try:
        state = await states.wait(down)
        assert state.reason == "configuration: options.address: must be 1..65534, got 70000"
        await asyncio.sleep(0.2)  # a hundred backoff periods
        assert built == [1] and len(states.states) == 1
        with pytest.raises(DeviceOffline):
            await worker.submit("show", {"text": "x"})
    finally:
        await stop(task)


def test_backoff_doubles_with_jitter_and_is_capped():
    worker = DeviceWorker("d", lambda: FakeDriver(FakeHardware()), on_state=lambda s: None,
                          backoff_initial=0.5, backoff_max=30.0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        for _ in range(50):
            assert base * 0.8 <= worker.backoff_delay(attempt) <= base * 1.2
    assert all(worker.backoff_delay(50) <= 30.0 for _ in range(50))
    assert len({worker.backoff_delay(3) for _ in range(50)}) > 1  # jittered


async def test_job_failure_takes_device_down_and_it_comes_back(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    hw, states = FakeHardware(), StateLog()
    ups = 0

    async def on_up() -> None:
        nonlocal ups
        ups += 1
        # re-apply what the device should show, through the same worker
        await worker.submit("show", {"text": "请A012号到3号窗口"})

    worker = make_worker(hw, states, on_up=on_up)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        assert await worker.submit("show", {"text": "欢迎光临"}) == {"shown": "欢迎光临"}
        with pytest.raises(DeviceError, match="NACK 05"):
            await worker.submit("fail", {})
        mark = len(states.states)
        await states.wait(up, after=mark)
        for _ in range(100):  # on_up runs in its own task; let it finish
            if hw.shown.count("请A012号到3号窗口") == 2:
                break
            await asyncio.sleep(0.01)
        assert states.transitions() == [(True, "ok"), (False, "fault"), (True, "ok")]
        assert states.states[1].reason == "fail: NACK 05 (checksum)"
        assert hw.starts == 2 and hw.stops == 1
        assert ups == 2
        assert hw.shown.count("请A012号到3号窗口") == 2
        assert len(messages(caplog, logging.WARNING, "offline")) == 1
        assert len(messages(caplog, logging.INFO, "back online")) == 1
        assert await worker.submit("show", {"text": "再次"}) == {"shown": "再次"}
    finally:
        await stop(task)


async def test_command_timeout_takes_device_down():
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states, command_timeout=0.05)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        with pytest.raises(DeviceTimeout, match="did not answer 'hang'"):
            await worker.submit("hang", {})
        state = await states.wait(down)
        assert "did not answer" in state.reason
        await states.wait(up, after=states.states.index(state))
        assert hw.starts == 2
    finally:
        await stop(task)


async def test_caller_errors_do_not_take_device_down(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        with pytest.raises(BadRequest) as bad:
            await worker.submit("bad", {})
        assert bad.value.code == "bad_request"
        with pytest.raises(NotFound):
            await worker.submit("missing", {})
        with pytest.raises(HallctlError) as bug:
            await worker.submit("bug", {})
        assert bug.value.code == "internal"
        assert await worker.submit("show", {"text": "仍在线"}) == {"shown": "仍在线"}
        assert worker.state.available and worker.state.health == "ok"
        assert hw.starts == 1 and hw.stops == 0
        assert messages(caplog, logging.WARNING, "offline") == []
    finally:
        await stop(task)


async def test_probe_fault_takes_device_down_until_it_recovers():
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states, probe_interval=0.01)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        hw.health = Health.FAULT
        state = await states.wait(down)
        assert state.reason == "probe: cover open"
        with pytest.raises(DeviceOffline, match="offline: probe: cover open"):
            await worker.submit("show", {"text": "x"})
        hw.health = Health.DEGRADED
        state = await states.wait(up, after=states.states.index(state))
        assert state.health == "degraded"
    finally:
        await stop(task)


async def test_hung_device_does_not_delay_another():
    hung_hw, fine_hw = FakeHardware(), FakeHardware()
    hung_states, fine_states = StateLog(), StateLog()
    sup = Supervisor()
    sup.add(make_worker(hung_hw, hung_states, "display-1", command_timeout=3600))
    sup.add(make_worker(fine_hw, fine_states, "display-2"))
    task = asyncio.create_task(sup.run())
    try:
        await hung_states.wait(up)
        await fine_states.wait(up)
        stuck = asyncio.create_task(sup.get("display-1").submit("hang", {}))
        await asyncio.wait_for(hung_hw.hanging.wait(), WAIT)
        for n in range(5):
            result = await asyncio.wait_for(sup.get("display-2").submit("show", {"text": f"B00{n}"}), WAIT)
            assert result == {"shown": f"B00{n}"}
        assert not stuck.done()
        assert fine_hw.shown == [f"B00{n}" for n in range(5)]
        assert {d: s.available for d, s in sup.states().items()} == {"display-1": True, "display-2": True}
    finally:
        await stop(task)
    with pytest.raises(DeviceOffline, match="stopping"):
        await stuck


async def test_full_queue_answers_busy_at_once():
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states, queue_size=1, command_timeout=3600)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        in_flight = asyncio.create_task(worker.submit("hang", {}))
        await asyncio.wait_for(hw.hanging.wait(), WAIT)
        queued = asyncio.create_task(worker.submit("show", {"text": "排队"}))
        await asyncio.sleep(0)
        with pytest.raises(DeviceOffline, match="busy") as busy:
            await worker.submit("show", {"text": "too many"})
        assert busy.value.code == "device_offline" and busy.value.detail["reason"] == "busy"
    finally:
        await stop(task)
    for t in (in_flight, queued):
        with pytest.raises(DeviceOffline, match="stopping"):
            await t


async def test_stop_is_clean():
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states, command_timeout=3600)
    task = asyncio.create_task(worker.run())
    await states.wait(up)
    pending = asyncio.create_task(worker.submit("hang", {}))
    await asyncio.wait_for(hw.hanging.wait(), WAIT)
    await stop(task)
    with pytest.raises(DeviceOffline, match="stopping"):
        await pending
    assert hw.stops == 1
    assert (worker.state.available, worker.state.health, worker.state.reason) == (False, "unknown", "stopped")
    assert states.states[-1] == worker.state
    with pytest.raises(DeviceOffline):
        await worker.submit("show", {"text": "x"})


async def test_supervisor_lookup_and_duplicates():
    sup = Supervisor()
    sup.add(make_worker(FakeHardware(), StateLog(), "display"))
    with pytest.raises(UnknownDevice) as err:
        sup.get("printer")
    assert err.value.code == "unknown_device"
    with pytest.raises(HallctlError):
        sup.add(make_worker(FakeHardware(), StateLog(), "display"))
    assert sup.get("display").actions == ()  # no driver built yet
    state = sup.states()["display"]
    assert (state.available, state.health) == (False, "unknown")


async def test_sync_on_state_callback_and_actions():
    hw, seen = FakeHardware(), []
    worker = DeviceWorker("display", lambda: FakeDriver(hw), on_state=seen.append,
                          probe_interval=3600)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(1000):
            if worker.state.available:
                break
            await asyncio.sleep(0.01)
        assert worker.state.available
        assert [s.available for s in seen] == [True]
        assert worker.actions == FakeDriver.actions
    finally:
        await stop(task)


async def test_a_fault_the_device_reports_is_looked_at_again_every_probe_interval():
    """Paper out or a cover open: the printer answers, it says fault. Once the fault is cleared the
    device is back at the next probe, not after a backoff grown through a long outage (here the
    backoff is 100 s: the test would wait for it and fail)."""
    hw, states = FakeHardware(), StateLog()
    worker = make_worker(hw, states, probe_interval=0.01, backoff_initial=100, backoff_max=100)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        hw.health = Health.FAULT
        fault = await states.wait(down)
        while hw.starts < 4:  # several restarts while the fault lasts
            await asyncio.sleep(0.01)
        hw.health = Health.OK
        state = await states.wait(up, after=states.states.index(fault))
        assert state.health == "ok"
    finally:
        await stop(task)


async def test_a_job_the_driver_allows_more_time_is_not_cut_off():
    """A driver may say a job takes longer than the node's command timeout (a ticket on a slow
    serial line); other jobs keep the node's timeout."""
    class SlowPrinter(FakeDriver):
        def time_allowed(self, action, args):
            return 5.0 if action == "show" else None

        async def execute(self, action, args):
            if action == "show":
                await asyncio.sleep(0.2)
            return await super().execute(action, args)

    hw, states = FakeHardware(), StateLog()
    worker = DeviceWorker("printer", lambda: SlowPrinter(hw), on_state=states, command_timeout=0.05,
                          backoff_initial=0.001, backoff_max=0.01, probe_interval=3600)
    task = asyncio.create_task(worker.run())
    try:
        await states.wait(up)
        assert await worker.submit("show", {"text": "A001"}) == {"shown": "A001"}
        with pytest.raises(DeviceTimeout):
            await worker.submit("hang", {})
    finally:
        await stop(task)
