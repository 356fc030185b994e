"""Device workers: one task and one bounded queue per device, so a slow or dead device never
blocks another.

A :class:`DeviceWorker` owns one driver. It starts it (retrying with exponential backoff and
jitter), then serves submitted commands one at a time (drivers assume a single outstanding
request) and probes the device between commands. When the device fails it is marked offline,
its driver is stopped and restarted with backoff; callers get a coded error at once instead of
waiting through the outage. A fault the device reports itself (a printer out of paper) is looked at
again every probe interval instead: it answers, and it should be back as soon as paper is in.

Logging follows the Home Assistant rule: one WARNING when a device goes offline, one INFO when
it is back; each retry in between is DEBUG only.

A driver that cannot even be built (a :class:`ConfigError` from its constructor) is a wrong
configuration, not an outage: the device is marked in fault with the reason once and not retried.
The node checks every driver before it starts, so this is a last guard.

Example::

    worker = DeviceWorker("display-3", lambda: OnbonBxDisplay(settings, options),
                          on_state=publish_state, on_up=show_current_ticket)
    sup = Supervisor()
    sup.add(worker)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(sup.run())
        ...
        await sup.get("display-3").submit("show", {"text": "请A012号到3号窗口"})
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterator, Mapping, TypeVar

from hallctl.errors import (
    BadRequest,
    ConfigError,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    HallctlError,
    UnknownCommand,
    UnknownDevice,
)
from hallctl.runtime.tasks import run_together
from hallctl_drivers.base import Driver, Health, ProbeResult

__all__ = ["DeviceState", "DeviceWorker", "Supervisor"]

_LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: a queued command: action, args, and the future the caller is waiting on
_Job = tuple[str, dict[str, Any], "asyncio.Future[dict[str, Any]]"]


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` without its Python 3.11 flaw: there it can swallow a cancellation when
    the awaited call finishes in the same loop step, and a node then ignores SIGTERM.
    ``asyncio.timeout`` does not."""
    async with asyncio.timeout(seconds):
        return await awaitable


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class DeviceState:
    """What the node publishes as ``.../dev/<dev>/state``.

    ``health`` is one of ok / degraded / fault / unknown; ``since`` (ISO 8601, UTC) is when the
    current availability and health began.
    """

    device: str
    available: bool
    health: str
    reason: str
    since: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeviceWorker:
    """Runs one device: start with backoff, serve commands, probe, restart on failure.

    ``factory`` builds a fresh driver for every (re)start; a driver's constructor does no I/O.
    ``on_state`` is called (and awaited if it returns an awaitable) on every state change.
    ``on_up`` runs in its own task each time the device (re)starts, so it may ``submit``
    commands to this same worker (for example to re-show the ticket being served).
    """

    def __init__(
        self,
        device_id: str,
        factory: Callable[[], Driver],
        *,
        on_state: Callable[[DeviceState], Awaitable[None] | None],
        on_up: Callable[[], Awaitable[None]] | None = None,
        queue_size: int = 32,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        probe_interval: float = 15.0,
        command_timeout: float = 10.0,
        start_timeout: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.device_id = device_id
        self.queue_size = queue_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.probe_interval = probe_interval
        self.command_timeout = command_timeout
        self.start_timeout = start_timeout
        self._factory = factory
        self._on_state = on_state
        self._on_up = on_up
        self._log = logger or _LOG
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._state = DeviceState(device_id, False, Health.UNKNOWN.value, "not started", _now())
        self._driver: Driver | None = None
        self._actions: tuple[str, ...] = ()
        self._current: _Job | None = None
        self._on_up_task: asyncio.Task[None] | None = None
        self._attempt = 0  # consecutive failures; reset once the device serves something
        self._outage_logged = False  # the WARNING for the current outage was already written
        self._misconfigured = False  # the driver cannot be built: never retried
        #: the last outage was the device itself saying fault (paper out, cover open): its link
        #: works, so it is looked at again every probe interval, not after a growing backoff
        self._reported_fault = False

    # -- public --------------------------------------------------------------------------

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def actions(self) -> tuple[str, ...]:
        """Actions the device's driver implements (empty until the driver was first built)."""
        return self._actions

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1, 2, ...): doubling from
        ``backoff_initial`` with +-20 % jitter (so a hall's devices do not retry in lockstep),
        never more than ``backoff_max``."""
        base = self.backoff_initial * 2 ** max(0, attempt - 1)
        return min(self.backoff_max, base * random.uniform(0.8, 1.2))

    async def submit(self, action: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Queue one command and wait for its result.

        Raises :class:`DeviceOffline` at once when the device is down or its queue is full, and
        whatever :class:`HallctlError` the command ended with otherwise.
        """
        if not self._state.available:
            raise DeviceOffline(
                f"device {self.device_id} is offline: {self._state.reason}",
                device=self.device_id,
                reason=self._state.reason,
            )
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((action, dict(args or {}), fut))
        except asyncio.QueueFull:
            raise DeviceOffline(
                f"device {self.device_id} is busy: {self.queue_size} commands are already waiting",
                device=self.device_id,
                reason="busy",
            ) from None
        return await fut

    async def run(self) -> None:
        """Run until cancelled. Never raises anything but :class:`asyncio.CancelledError`, so
        one device cannot bring down the task group of the others."""
        try:
            while True:
                try:
                    await self._cycle()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug here must not end the worker
                    self._log.exception("device %s: worker error", self.device_id)
                    await self._went_down(f"internal error: {type(exc).__name__}")
                    await self._stop_driver()
                    self._attempt += 1
        finally:
            await self._shutdown()

    # -- the cycle: (backoff) start, serve until failure, go down ---------------------------

    async def _cycle(self) -> None:
        if self._misconfigured:
            await asyncio.Event().wait()  # until cancelled: retrying cannot fix a configuration
        if self._attempt:
            delay = self.backoff_delay(self._attempt)
            if self._reported_fault:
                delay = min(delay, self.probe_interval)
            self._log.debug(
                "device %s: restart attempt %d in %.2f s", self.device_id, self._attempt, delay
            )
            await asyncio.sleep(delay)
        health = await self._start()
        if health is None:
            self._attempt += 1
            return
        await self._came_up(health)
        reason = await self._serve()
        await self._went_down(reason)
        await self._stop_driver()
        self._attempt += 1

    async def _start(self) -> ProbeResult | None:
        """Build and start a driver and probe it once; None (device down) on failure."""
        try:
            driver = self._factory()
        except ConfigError as exc:
            self._misconfigured = True
            self._log.error("device %s: cannot be built, not retried: %s", self.device_id, exc.message)
            await self._went_down(f"configuration: {exc.message}")
            return None
        except Exception as exc:
            await self._went_down(f"cannot create driver: {_describe(exc)}")
            return None
        self._driver = driver
        self._actions = tuple(getattr(driver, "actions", ()))
        self._reported_fault = False
        try:
            await _within(driver.start(), self.start_timeout)
            result = await _within(driver.probe(), self.command_timeout)
            health = Health(result.health)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            reason = _describe(exc) if isinstance(exc, HallctlError) else "start timed out"
            await self._went_down(reason)
        except Exception as exc:
            await self._went_down(f"start failed: {_describe(exc)}")
        else:
            if health is not Health.FAULT:
                return result
            self._reported_fault = True
            await self._went_down(f"probe: {result.reason or 'fault'}")
        await self._stop_driver()
        return None

    async def _serve(self) -> str:
        """Serve jobs and probe until the device fails; returns why it failed."""
        loop = asyncio.get_running_loop()
        next_probe = loop.time() + self.probe_interval
        while True:
            wait = next_probe - loop.time()
            if wait <= 0:
                reason = await self._probe()
                if reason is not None:
                    return reason
                next_probe = loop.time() + self.probe_interval
                continue
            try:
                job = await _within(self._queue.get(), wait)
            except TimeoutError:
                continue
            reason = await self._run_job(job)
            if reason is not None:
                return reason

    async def _run_job(self, job: _Job) -> str | None:
        """Run one command; returns a reason when it took the device down, else None."""
        action, args, fut = job
        if fut.done():  # the caller gave up while it was queued
            return None
        assert self._driver is not None
        self._current = job  # stays set if we are cancelled: the shutdown answers this caller
        try:
            allowed = max(self.command_timeout, self._driver.time_allowed(action, args) or 0.0)
            result = await _within(self._driver.execute(action, args), allowed)
        except Exception as exc:
            self._current = None
            return self._job_failed(fut, action, exc)
        self._current = None
        self._attempt = 0
        _settle(fut, result=result)
        return None

    def _job_failed(
        self, fut: asyncio.Future[dict[str, Any]], action: str, exc: Exception
    ) -> str | None:
        """Answer the caller; returns a reason when the failure takes the device down."""
        if isinstance(exc, (BadRequest, UnknownCommand)):
            _settle(fut, exc=exc)  # the caller's mistake, not the device's
            return None
        if isinstance(exc, (DeviceError, DeviceTimeout, OSError)):  # OSError: TimeoutError too
            err = self._as_device_error(exc, action)
            _settle(fut, exc=err)
            return f"{action}: {err.message}"
        if isinstance(exc, HallctlError):  # not_found, conflict, ...: answered, device is fine
            _settle(fut, exc=exc)
            return None
        # A driver bug: answer "internal" and keep serving; the next probe still checks health.
        self._log.error(
            "device %s: driver bug running %r", self.device_id, action, exc_info=exc
        )
        _settle(fut, exc=HallctlError(
            f"internal error in the driver of device {self.device_id}: {type(exc).__name__}",
            device=self.device_id,
        ))
        return None

    async def _probe(self) -> str | None:
        """Probe the running driver; returns a reason when the device is down, else None."""
        assert self._driver is not None
        try:
            result = await _within(self._driver.probe(), self.command_timeout)
            health = Health(result.health)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            return "probe: " + (_describe(exc) if isinstance(exc, HallctlError) else "no answer")
        except Exception as exc:
            return f"probe: {_describe(exc)}"
        if health is Health.FAULT:
            self._reported_fault = True
            return f"probe: {result.reason or 'fault'}"
        self._attempt = 0
        if health.value != self._state.health:
            self._log.info(
                "device %s health %s%s", self.device_id, health.value,
                f": {result.reason}" if result.reason else "",
            )
        await self._set_state(True, health.value, result.reason)
        return None

    # -- transitions -------------------------------------------------------------------------

    async def _came_up(self, result: ProbeResult) -> None:
        if self._outage_logged:
            self._log.info("device %s is back online", self.device_id)
        else:
            self._log.info("device %s is online", self.device_id)
        self._outage_logged = False
        await self._set_state(True, Health(result.health).value, result.reason)
        if self._on_up is not None:
            self._on_up_task = asyncio.create_task(
                self._run_on_up(self._on_up), name=f"on_up:{self.device_id}"
            )

    async def _went_down(self, reason: str) -> None:
        if not self._outage_logged:
            self._log.warning(
                "device %s is offline: %s (restarting with backoff)", self.device_id, reason
            )
            self._outage_logged = True
        else:
            self._log.debug("device %s still offline: %s", self.device_id, reason)
        # Unavailable first, so no new command is queued while the waiting ones are answered.
        changed = self._change_state(False, Health.FAULT.value, reason)
        await self._cancel_on_up()
        self._fail_pending(reason)
        if changed:
            await self._emit_state()

    async def _shutdown(self) -> None:
        """Clean stop (cancellation): answer everyone waiting, stop the driver."""
        changed = self._change_state(False, Health.UNKNOWN.value, "stopped")
        await self._cancel_on_up()
        self._fail_pending("stopping", stopping=True)
        await self._stop_driver()
        self._log.debug("device %s stopped", self.device_id)
        if changed:
            await self._emit_state()

    # -- helpers -------------------------------------------------------------------------------

    async def _set_state(self, available: bool, health: str, reason: str) -> None:
        if self._change_state(available, health, reason):
            await self._emit_state()

    def _change_state(self, available: bool, health: str, reason: str) -> bool:
        old = self._state
        if (old.available, old.health, old.reason) == (available, health, reason):
            return False
        same = (old.available, old.health) == (available, health)
        self._state = DeviceState(
            self.device_id, available, health, reason, old.since if same else _now()
        )
        return True

    async def _emit_state(self) -> None:
        try:
            maybe = self._on_state(self._state)
            if inspect.isawaitable(maybe):
                await maybe
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("device %s: on_state callback failed", self.device_id)

    async def _run_on_up(self, on_up: Callable[[], Awaitable[None]]) -> None:
        try:
            await on_up()
        except HallctlError as exc:  # e.g. the device went down again meanwhile
            self._log.debug("device %s: on_up ended with %s", self.device_id, exc.code)
        except Exception:
            self._log.exception("device %s: on_up callback failed", self.device_id)

    async def _cancel_on_up(self) -> None:
        task, self._on_up_task = self._on_up_task, None
        if task is None or task.done():
            return
        if task is asyncio.current_task():
            return
        task.cancel()
        # asyncio.wait never raises the task's own CancelledError, only this worker's.
        await asyncio.wait([task])

    def _fail_pending(self, reason: str, *, stopping: bool = False) -> None:
        message = (
            f"device {self.device_id} is stopping"
            if stopping
            else f"device {self.device_id} is offline: {reason}"
        )
        jobs = [self._current] if self._current is not None else []
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        for _, _, fut in jobs:
            _settle(fut, exc=DeviceOffline(message, device=self.device_id, reason=reason))

    async def _stop_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            await _within(driver.stop(), self.command_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.debug("device %s: stop failed: %s", self.device_id, _describe(exc))

    def _as_device_error(self, exc: BaseException, action: str) -> HallctlError:
        if isinstance(exc, HallctlError):
            return exc
        if isinstance(exc, TimeoutError):
            return DeviceTimeout(
                f"device {self.device_id} did not answer {action!r} within "
                f"{self.command_timeout:g} s",
                device=self.device_id,
            )
        return DeviceError(f"device {self.device_id}: {exc}", device=self.device_id)


class Supervisor:
    """Holds the node's device workers and runs them side by side."""

    def __init__(self) -> None:
        self._workers: dict[str, DeviceWorker] = {}

    def add(self, worker: DeviceWorker) -> None:
        """Register a worker before :meth:`run`. Device ids must be unique."""
        if worker.device_id in self._workers:
            raise ConfigError(f"device id {worker.device_id!r} is used twice", key="device")
        self._workers[worker.device_id] = worker

    async def run(self) -> None:
        """Run every worker until cancelled (workers never raise, so none stops the others)."""
        await run_together((f"device:{w.device_id}", w.run()) for w in self._workers.values())

    def get(self, device_id: str) -> DeviceWorker:
        try:
            return self._workers[device_id]
        except KeyError:
            raise UnknownDevice(
                f"no device {device_id!r} on this node", device=device_id
            ) from None

    def states(self) -> dict[str, DeviceState]:
        """Current state of every device, by id."""
        return {d: w.state for d, w in self._workers.items()}

    def __iter__(self) -> Iterator[DeviceWorker]:
        return iter(self._workers.values())

    def __len__(self) -> int:
        return len(self._workers)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HallctlError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _settle(
    fut: asyncio.Future[dict[str, Any]],
    *,
    result: dict[str, Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result if result is not None else {})
