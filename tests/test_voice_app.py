"""The voice caller app with the node's real device worker (supervisor) and real voice drivers:
hall messages are handed to it as the node would hand them over (the documents central publishes;
tests/test_voice_e2e.py runs the same over Mosquitto with a real central). What is checked is what
the hall hears: the WAV files, in their order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from test_voice_engines import FLOOR, make_tone_clips, read_wav, rms

from hallctl.apps.base import AppContext
from hallctl.apps.voice.app import VoiceCallerApp
from hallctl.bus.topics import Topics
from hallctl.profiles import load_profiles
from hallctl.runtime.supervisor import DeviceWorker
from hallctl.runtime.tasks import cancel_and_wait
from hallctl_drivers.voice import ClipVoice, TtsVoice

T = Topics("test-hall")


def called(seq: int, number: str, window: str, type_: str = "ticket.called", **data: Any) -> tuple[str, dict]:
    doc = {"v": 1, "seq": seq, "type": type_, "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
           "data": {"ticket": f"2026-11-30-{number}", "number": number, "queue": "a", "window": window,
                    "window_name": f"{window}号窗口", **data}}
    return T.event(type_), doc


def ended(seq: int, type_: str, number: str, window: str) -> tuple[str, dict]:
    return T.event(type_), {"v": 1, "seq": seq, "type": type_, "ts": datetime.now(timezone.utc).isoformat(),
                            "data": {"ticket": f"2026-11-30-{number}", "number": number, "queue": "a", "window": window}}


class Rig:
    """One voice device: its driver in a DeviceWorker, the app on top; ``drivers`` lists every
    driver the worker built (a new one each time the device is restarted)."""

    def __init__(self, make_driver: Callable[[], Any], options: dict[str, Any]) -> None:
        self.drivers: list[Any] = []
        self.events: list[tuple[str, dict]] = []
        self.submitted: list[dict] = []
        self.on_submit: Callable[[int], None] = lambda n: None

        def factory() -> Any:
            driver = make_driver()
            driver.on_event = lambda t, d: self.events.append((t, d))
            self.drivers.append(driver)
            return driver

        self.worker = DeviceWorker("voice", factory, on_state=lambda s: self.app.on_device_state(s.to_dict()),
                                   on_up=lambda: self.app.on_up(), backoff_initial=0.1)
        ctx = AppContext("voice-node", "voice", T, self._submit, logging.getLogger("test.voice"))
        self.app = VoiceCallerApp(ctx, options)

    async def _submit(self, action: str, args: dict) -> dict:
        self.submitted.append(args)
        self.on_submit(len(self.submitted))
        return await self.worker.submit(action, args)

    def hall(self, *messages: tuple[str, dict]) -> None:
        for topic, doc in messages:
            self.app.on_hall_message(topic, doc)

    async def up(self, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not self.worker.state.available:
                await asyncio.sleep(0.02)

    async def wait_spoken(self, count: int, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while len(self.app.spoken) < count:
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def rig(make_driver: Callable[[], Any], **options: Any) -> AsyncIterator[Rig]:
    r = Rig(make_driver, options)
    tasks = [asyncio.create_task(r.worker.run()), asyncio.create_task(r.app.run())]
    try:
        yield r
    finally:
        for task in tasks:
            await cancel_and_wait(task)


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return make_tone_clips(tmp_path_factory.mktemp("tones"))


def clip_voice(out: Path, tones: Path, pace: bool = False) -> Callable[[], ClipVoice]:
    settings = load_profiles().get("voice-clips").settings
    return lambda: ClipVoice(settings, {"out_dir": str(out), "pace": pace, "clips_dir": str(tones), "letters": "AB"})


def wavs(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*.wav"))


async def test_a_call_no_longer_true_when_its_turn_comes_is_not_said(tmp_path, tones):
    out = tmp_path / "out"
    async with rig(clip_voice(out, tones), repeat=1) as r:
        r.hall(called(1, "A001", "1"), called(2, "A002", "2"), called(3, "A003", "3"), called(4, "A004", "5"))

        def meanwhile(n: int) -> None:
            if n == 1:  # while A001 is being said: A002 completed, A003 called again at window 4
                r.hall(ended(5, "ticket.completed", "A002", "2"), called(6, "A003", "4"))

        r.on_submit = meanwhile
        await r.wait_spoken(3)
    assert wavs(out) == ["00001-A001-w1.wav", "00002-A004-w5.wav", "00003-A003-w4.wav"]
    assert [(d.call.label, d.reason) for d in r.app.dropped] == [
        ("A002-w2", "completed before its turn"),
        ("A003-w3", "called again elsewhere, or the window called another ticket")]
    assert all(rms(read_wav(out / f)[3]) > FLOOR for f in wavs(out))


async def test_a_hung_engine_is_restarted_and_the_queue_goes_on_in_order(tmp_path):
    """The worker process is stopped (SIGSTOP) while the first call is being synthesised, and the
    one started in its place too: the announcement fails, the device is restarted, the call is said
    after all, and the calls behind it follow in order."""
    out = tmp_path / "out"
    settings = load_profiles().get("espeak-ng-mandarin").settings
    make = lambda: TtsVoice(settings, {"out_dir": str(out), "pace": False, "synth_timeout_s": 0.5})  # noqa: E731
    async with rig(make, repeat=1) as r:
        await r.up()
        first = r.drivers[0]

        def hang(n: int) -> None:
            if n == 1:
                os.kill(first.worker.pid, signal.SIGSTOP)
                first.on_event = lambda t, d: (r.events.append((t, d)), os.kill(first.worker.pid, signal.SIGSTOP))

        r.on_submit = hang
        r.hall(called(1, "A001", "1"), called(2, "A002", "2"), called(3, "B003", "3"))
        await r.wait_spoken(3, timeout=30)
    assert wavs(out) == ["00001-A001-w1.wav", "00002-A002-w2.wav", "00003-B003-w3.wav"]
    assert [e for e, _ in r.events] == ["engine_restarted"] and r.events[0][1]["reason"].startswith("hung")
    assert len(r.drivers) == 2, "the device was restarted once"
    assert [s.number for s in r.app.spoken] == ["A001", "A002", "B003"] and not r.app.dropped
    for f in wavs(out):
        rate, _, _, samples = read_wav(out / f)
        assert rms(samples) > FLOOR and 3.0 < len(samples) / rate < 12.0


async def test_the_volume_follows_the_time_of_day_and_a_zone_hears_only_its_windows(tmp_path, tones):
    out = tmp_path / "out"
    async with rig(clip_voice(out, tones), repeat=1, windows=["1", "2"],
                   volume=[{"at": "08:00", "volume": 100}, {"at": "18:00", "volume": 50}]) as r:
        r.app.clock = lambda: datetime(2026, 11, 30, 9, 30)
        await r.up()
        r.hall(called(1, "A001", "1"), called(2, "A002", "7"))
        await r.wait_spoken(1)
        r.app.clock = lambda: datetime(2026, 11, 30, 18, 45)
        r.hall(called(3, "A003", "2"))
        await r.wait_spoken(2)
    assert wavs(out) == ["00001-A001-w1.wav", "00002-A003-w2.wav"], "window 7 is another zone's"
    assert [a.get("volume") for a in r.submitted] == [100, 50]
    # the evening's call at a quarter of the amplitude of the same call said at full volume
    solo = clip_voice(tmp_path / "solo", tones)()
    async with solo:
        full = await solo.execute("announce", {"parts": r.submitted[1]["parts"]})
    assert list(read_wav(out / "00002-A003-w2.wav")[3]) == [int(s * 0.25) for s in read_wav(full["file"])[3]]


async def test_an_old_call_and_one_for_a_device_that_is_down_are_handled(tmp_path, tones):
    """Calls made while the device cannot speak wait for it (and are dropped if they grow too old)."""
    out = tmp_path / "out"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = load_profiles().get("voice-clips").settings
    target = {"dir": blocker}
    make = lambda: ClipVoice(settings, {"out_dir": str(target["dir"]), "pace": False,  # noqa: E731
                                        "clips_dir": str(tones), "letters": "AB"})
    async with rig(make, repeat=1, max_age_s=5) as r:
        old = called(1, "A001", "1")
        old[1]["ts"] = (datetime.now(timezone.utc) - timedelta(seconds=30)).isoformat()
        r.hall(old, called(2, "A002", "2"))
        await asyncio.sleep(0.3)
        assert not r.app.spoken and not r.worker.state.available
        target["dir"] = out  # the output is writable again: the device starts, the call is said
        await r.wait_spoken(1)
    assert wavs(out) == ["00001-A002-w2.wav"]
    assert [(d.call.label, d.reason.split(",")[0]) for d in r.app.dropped] == [("A001-w1", "30 s old")]
