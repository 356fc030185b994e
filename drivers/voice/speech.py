"""The node's side of the speech worker (:mod:`hallctl_drivers.voice.worker`): start it, ask it
one thing at a time, each answer awaited with a timeout, and kill it when it hangs or dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from hallctl_drivers.voice.protocol import MAX_LINE, parse_answer


class WorkerFailed(Exception):
    """The worker hung, died or answered nonsense: it has been killed. ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SynthesisFailed(Exception):
    """The worker is fine but could not synthesise this text (it said why)."""


def worker_argv(voice: str, rate: int) -> list[str]:
    return [sys.executable, "-m", "hallctl_drivers.voice.worker", "--voice", voice, "--rate", str(rate)]


class SpeechWorker:
    """One worker process. Not safe for concurrent use: the driver asks one thing at a time."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.hello: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float) -> dict[str, Any]:
        """Spawn the worker and read its hello; :class:`WorkerFailed` if it does not say ready."""
        await self.kill()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True, limit=MAX_LINE)
        except OSError as exc:
            raise WorkerFailed(f"cannot start the speech worker: {exc.strerror}") from None
        hello = await self._read(timeout, "start")
        if hello.get("ready") is not True:
            await self.kill()
            raise WorkerFailed(str(hello.get("error") or f"the speech worker did not start: {hello}"))
        self.hello = hello
        return hello

    async def synth(self, text: str, path: str, timeout: float) -> None:
        await self._ask({"text": text, "path": path}, timeout, "synthesis")

    async def ping(self, timeout: float) -> None:
        await self._ask({"ping": True}, timeout, "ping")

    async def _ask(self, doc: dict[str, Any], timeout: float, what: str) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            raise WorkerFailed("the speech worker is not running")
        self._next_id += 1
        rid = self._next_id
        try:
            proc.stdin.write((json.dumps({"id": rid, **doc}, ensure_ascii=False) + "\n").encode("utf-8"))
            async with asyncio.timeout(timeout):
                await proc.stdin.drain()
        except (OSError, TimeoutError):
            await self.kill()
            raise WorkerFailed(f"the speech worker stopped reading ({what})") from None
        answer = await self._read(timeout, what)
        if answer.get("id") != rid:
            await self.kill()
            raise WorkerFailed(f"the speech worker answered request {answer.get('id')!r}, not {rid}")
        if answer.get("ok") is not True:
            raise SynthesisFailed(str(answer.get("error") or "failed"))

    async def _read(self, timeout: float, what: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await self._proc.stdout.readline()
        except TimeoutError:
            await self.kill()
            raise WorkerFailed(f"hung: no answer to the {what} within {timeout:g} s") from None
        except (ValueError, asyncio.LimitOverrunError):
            await self.kill()
            raise WorkerFailed(f"the speech worker wrote a line over {MAX_LINE} bytes") from None
        if not line:
            code = await self._reap()
            raise WorkerFailed(f"the speech worker exited (code {code}) during the {what}")
        try:
            return parse_answer(line)
        except ValueError as exc:
            await self.kill()
            raise WorkerFailed(str(exc)) from None

    async def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            async with asyncio.timeout(2.0):
                return await proc.wait()
        except TimeoutError:
            await _kill(proc)
            return proc.returncode

    async def kill(self) -> None:
        """Kill the worker (SIGKILL also ends a stopped or hung process) and reap it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await _kill(proc)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.stdin is not None:
        proc.stdin.close()
    await proc.wait()
