"""What every voice engine shares: the kind's actions, the volume, and the output (a player or a
WAV directory). An engine only turns tokens into audio (:meth:`VoiceDriver.render`).

``announce`` answers once the announcement has finished playing (``duration_ms``,
``started_at``, and the ``file`` when writing WAV files). The node's worker runs one command at a
time, so one announcement never cuts another off.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any, ClassVar, Mapping

from hallctl.errors import BadRequest, UnknownCommand
from hallctl_drivers.base import Driver, Health, ProbeResult
from hallctl_drivers.voice.audio import Audio, scaled
from hallctl_drivers.voice.sinks import PLAYER_MARGIN_S, PlayerSink, WavDirSink
from hallctl_drivers.voice.tokens import CHIME, split_text, tidy


class VoiceDriver(Driver):
    kind: ClassVar[str] = "voice_caller"
    #: the engine's name in answers and probes
    engine: ClassVar[str] = ""
    #: what ``say`` speaks when no text is given: a letter, digits and words after the chime, and
    #: short enough (3 s) to be answered within ``hallctl diag``'s default 5 s
    test_sentence: ClassVar[str] = "请A001号"

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None) -> None:
        super().__init__(settings, options, features=features)
        o = self.options
        self.sink: WavDirSink | PlayerSink = (WavDirSink(o["out_dir"], o["pace"]) if "out_dir" in o
                                              else PlayerSink(list(o["player"]), o["alsa_device"]))
        self.spoken = 0
        self.restarts = 0

    # -- what an engine provides -----------------------------------------------------------------

    @abc.abstractmethod
    async def open_engine(self) -> None: ...

    @abc.abstractmethod
    async def close_engine(self) -> None: ...

    @abc.abstractmethod
    async def render(self, tokens: list[str]) -> Audio:
        """The announcement as one recording; BadRequest for a token the engine cannot say."""

    @abc.abstractmethod
    def longest_s(self, tokens: list[str]) -> float:
        """An upper bound of the time rendering and playing ``tokens`` takes."""

    async def engine_health(self) -> str | None:
        """None when the engine works, else why not."""
        return None

    # -- the Driver contract -----------------------------------------------------------------

    async def start(self) -> None:
        await self.sink.open()
        await self.open_engine()

    async def stop(self) -> None:
        await self.close_engine()

    async def probe(self) -> ProbeResult:
        detail = {"engine": self.engine, "output": self.sink.name, "spoken": self.spoken, "restarts": self.restarts}
        problem = await self.engine_health() or await asyncio.to_thread(self.sink.health)
        if problem:
            return ProbeResult(Health.FAULT, problem, detail)
        return ProbeResult(Health.OK, "", detail)

    def time_allowed(self, action: str, args: Mapping[str, Any]) -> float | None:
        """An announcement takes as long as it lasts (a call said twice with a chime: 10 s or more)."""
        if action not in ("announce", "say"):
            return None
        return self.longest_s(self._tokens(action, args)) + PLAYER_MARGIN_S

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in ("announce", "say"):
            raise UnknownCommand(f"a voice caller has no action {action!r} (it has announce, say)")
        tokens = self._tokens(action, args)
        volume = int(args.get("volume", self.options["default_volume"]))
        audio = await self.render(tokens)
        if volume < 100:
            audio = await asyncio.to_thread(scaled, audio, volume)
        played = await self.sink.play(audio, str(args.get("id") or action))
        self.spoken += 1
        out: dict[str, Any] = {"duration_ms": round(audio.duration_s * 1000), "started_at": played.started_at,
                               "engine": self.engine, "volume": volume}
        if played.file is not None:
            out["file"] = played.file
        return out

    def _tokens(self, action: str, args: Mapping[str, Any]) -> list[str]:
        if action == "announce":
            tokens = [str(t) for t in args.get("parts") or ()]
            if not tokens:
                raise BadRequest("an announcement needs at least one word", field="data.parts")
            return tokens
        tokens = [CHIME, *tidy(split_text(str(args.get("text") or self.test_sentence)))]
        if len(tokens) < 2:
            raise BadRequest("the test sentence has nothing to say", field="data.text")
        return tokens
