"""The text-to-speech engine: pyttsx3 with espeak-ng, in a worker process (:mod:`.worker`).

Every synthesis is bounded by ``synth_timeout_s``. A worker that hangs or dies is killed and
restarted at once (event ``engine_restarted``) and the synthesis tried again; if that fails too
the announcement fails with ``timeout`` (hung) or ``device_error`` (died), the node restarts the
device, and the next announcement goes on with a fresh worker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Any, Mapping

from hallctl.errors import BadRequest, DeviceError, DeviceOffline, DeviceTimeout
from hallctl_drivers.voice.audio import Audio, Format, chime, concat, read_wav, silence
from hallctl_drivers.voice.driver import VoiceDriver
from hallctl_drivers.voice.protocol import MAX_TEXT
from hallctl_drivers.voice.schemas import TTS_OPTIONS, TTS_SETTINGS
from hallctl_drivers.voice.speech import SpeechWorker, SynthesisFailed, WorkerFailed, worker_argv
from hallctl_drivers.voice.tokens import CHIME, PAUSE, text_of

#: espeak-ng's output (22,050 Hz mono), used for a chime-only announcement before any synthesis
ESPEAK_FORMAT = Format(22050, 1)
#: seconds the worker gets to answer a probe's ping
PING_TIMEOUT_S = 2.0


class TtsVoice(VoiceDriver):
    """Mandarin from espeak-ng through pyttsx3; see firmware_profiles/espeak-ng-mandarin.toml."""

    engine = "pyttsx3"
    settings_schema = TTS_SETTINGS
    options_schema = TTS_OPTIONS

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None) -> None:
        super().__init__(settings, options, features=features)
        s = self.settings
        self.synth_timeout = float(self.options.get("synth_timeout_s", s["synth_timeout_s"]))
        self.start_timeout = float(s["start_timeout_s"])
        self.pause_ms = int(s["pause_ms"])
        self.worker = SpeechWorker(worker_argv(s["voice"], int(s["rate"])))
        self._tmp: str | None = None
        self._fmt = ESPEAK_FORMAT
        self._chime: Audio | None = None

    async def open_engine(self) -> None:
        self._tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="hallctl-voice-")
        await self._start_worker()

    async def close_engine(self) -> None:
        await self.worker.kill()
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _start_worker(self) -> None:
        try:
            await self.worker.start(self.start_timeout)
        except WorkerFailed as exc:
            raise DeviceOffline(f"speech engine: {exc.reason}") from None

    async def _restart(self, reason: str, retry: bool) -> None:
        self.restarts += 1
        await self._start_worker()
        self.emit("engine_restarted", {"engine": self.engine, "reason": reason, "retry": retry})

    async def engine_health(self) -> str | None:
        try:
            await self.worker.ping(PING_TIMEOUT_S)
        except WorkerFailed as exc:
            try:
                await self._restart(exc.reason, retry=False)
            except DeviceOffline as down:
                return down.message
        return None

    def longest_s(self, tokens: list[str]) -> float:
        chars = len(text_of(tokens))
        per_char = 60 / int(self.settings["rate"]) * 1.5  # a Chinese syllable is about one "word"
        rest = tokens.count(CHIME) * 1.0 + tokens.count(PAUSE) * self.pause_ms / 1000
        sentences = max(1, sum(s not in (CHIME, PAUSE) for s in _segments(tokens)))
        # each sentence may take a hung try, a restart of the worker and a second try
        return chars * per_char + rest + sentences * (2 * self.synth_timeout + self.start_timeout)

    async def render(self, tokens: list[str]) -> Audio:
        texts: dict[str, Audio] = {}
        for segment in _segments(tokens):
            if segment not in (CHIME, PAUSE) and segment not in texts:
                texts[segment] = await self._synth(segment)
        if texts:
            self._fmt = next(iter(texts.values())).fmt
        if CHIME in tokens and (self._chime is None or self._chime.fmt != self._fmt):
            self._chime = await asyncio.to_thread(chime, self._fmt)
        parts = [self._chime if s == CHIME else silence(self._fmt, self.pause_ms) if s == PAUSE else texts[s]
                 for s in _segments(tokens)]
        return await asyncio.to_thread(concat, parts)

    async def _synth(self, text: str) -> Audio:
        if self._tmp is None:
            raise DeviceOffline("the speech engine is not started")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"a sentence of {len(text)} characters; at most {MAX_TEXT} between two pauses",
                             field="data.parts")
        path = os.path.join(self._tmp, "segment.wav")
        for attempt in (1, 2):
            try:
                if not self.worker.alive:
                    await self._restart("the worker was not running", retry=True)
                await self.worker.synth(text, path, self.synth_timeout)
                return await asyncio.to_thread(read_wav, path)
            except SynthesisFailed as exc:
                raise DeviceError(f"espeak-ng could not say {text!r}: {exc}") from None
            except WorkerFailed as exc:
                if attempt == 2:
                    error = DeviceTimeout if exc.reason.startswith("hung") else DeviceError
                    raise error(f"speech engine failed twice ({exc.reason}); the device is restarted") from None
                await self._restart(exc.reason, retry=True)
        raise AssertionError("unreachable")


def _segments(tokens: list[str]) -> list[str]:
    """Chimes, pauses and the sentences between them (each one synthesis)."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, PAUSE]:
        if token in (CHIME, PAUSE):
            text = text_of(run)
            if text:
                out.append(text)
            run.clear()
            out.append(token)
        else:
            run.append(token)
    return out[:-1]
