"""PCM audio as the engines make it and the outputs play it: 16-bit little-endian samples, read
and written with the standard ``wave`` module. Pure functions, no device I/O (the WAV helpers
read or write the file they are given)."""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array
from dataclasses import dataclass
from typing import Sequence

#: bytes per sample: 16-bit PCM, what espeak-ng makes and what every recorder can save
WIDTH = 2


@dataclass(frozen=True)
class Format:
    rate: int
    channels: int = 1

    def __str__(self) -> str:
        return f"{self.rate} Hz, {'mono' if self.channels == 1 else f'{self.channels} channels'}, 16-bit"


@dataclass(frozen=True)
class Audio:
    fmt: Format
    frames: bytes = b""

    @property
    def nframes(self) -> int:
        return len(self.frames) // (WIDTH * self.fmt.channels)

    @property
    def duration_s(self) -> float:
        return self.nframes / self.fmt.rate


def silence(fmt: Format, ms: float) -> Audio:
    return Audio(fmt, bytes(int(fmt.rate * ms / 1000) * WIDTH * fmt.channels))


def chime(fmt: Format) -> Audio:
    """A two-tone 叮咚 (E6 then C6, each fading out), then a breath before the words."""
    out = array("h")
    for freq, ms in ((1318.5, 280), (1046.5, 520)):
        n = int(fmt.rate * ms / 1000)
        for i in range(n):
            t = i / fmt.rate
            v = int(0.45 * 32767 * math.exp(-4.0 * t / (ms / 1000)) * math.sin(2 * math.pi * freq * t))
            out.extend([v] * fmt.channels)
    return Audio(fmt, _le(out) + silence(fmt, 200).frames)


def concat(parts: Sequence[Audio]) -> Audio:
    """One recording of ``parts`` in order; all must share one format (ValueError otherwise)."""
    if not parts:
        raise ValueError("nothing to join")
    fmt = parts[0].fmt
    for p in parts:
        if p.fmt != fmt:
            raise ValueError(f"cannot join {p.fmt} to {fmt}")
    return Audio(fmt, b"".join(p.frames for p in parts))


def gain_of(volume: int) -> float:
    """Volume 0..100 as an amplitude factor, by a square law close to how loudness is heard:
    50 is a quarter of full amplitude (-12 dB), 0 is silence."""
    return (max(0, min(100, volume)) / 100) ** 2


def scaled(audio: Audio, volume: int) -> Audio:
    """``audio`` at ``volume`` (100: unchanged)."""
    if volume >= 100:
        return audio
    g = gain_of(volume)
    samples = array("h")
    samples.frombytes(audio.frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return Audio(audio.fmt, _le(array("h", [int(s * g) for s in samples])))


def _le(samples: array) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def wav_bytes(audio: Audio) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(audio.fmt.channels)
        w.setsampwidth(WIDTH)
        w.setframerate(audio.fmt.rate)
        w.writeframes(audio.frames)
    return buf.getvalue()


class BadWav(ValueError):
    """A file that is not a WAV file hallctl can join (16-bit PCM)."""


def wav_info(path: str) -> tuple[Format, float]:
    """The format and duration (s) from a WAV file's header; :class:`BadWav` for anything else
    than 16-bit PCM."""
    try:
        with wave.open(path, "rb") as w:
            width, fmt, n = w.getsampwidth(), Format(w.getframerate(), w.getnchannels()), w.getnframes()
    except (wave.Error, EOFError) as exc:
        raise BadWav(f"not a PCM WAV file ({exc})") from None
    if width != WIDTH:
        raise BadWav(f"{8 * width}-bit samples; convert it to 16-bit PCM (sox in.wav -b 16 out.wav)")
    return fmt, n / fmt.rate


def read_wav(path: str) -> Audio:
    try:
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != WIDTH:
                raise BadWav(f"{8 * w.getsampwidth()}-bit samples; convert it to 16-bit PCM (sox in.wav -b 16 out.wav)")
            return Audio(Format(w.getframerate(), w.getnchannels()), w.readframes(w.getnframes()))
    except (wave.Error, EOFError) as exc:
        raise BadWav(f"not a PCM WAV file ({exc})") from None
