"""The clip engine: joins the hall's own recordings, one WAV file per token (``chime.wav``,
``0.wav`` .. ``9.wav``, ``A.wav``, ``号.wav``, ``窗口.wav`` ...), with the ``wave`` module.

Every clip the reading rules can need (the profile's ``required`` tokens, the ``letters`` the
hall's tickets use, its ``extra_clips``) is checked when the node starts: a missing or unreadable
file is a configuration error naming it (exit 78), not a silent gap in a call. Chinese text is
split into the fewest recordings that spell it, so 窗口 is said from ``窗口.wav`` when the hall
recorded it and from ``窗.wav`` + ``口.wav`` otherwise.
"""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from hallctl.errors import BadRequest, ConfigError
from hallctl_drivers.voice.audio import Audio, BadWav, Format, concat, read_wav, silence, wav_info
from hallctl_drivers.voice.driver import VoiceDriver
from hallctl_drivers.voice.schemas import CLIP_OPTIONS, CLIP_SETTINGS
from hallctl_drivers.voice.tokens import PAUSE, is_text, segment

_SUFFIX = ".wav"


class ClipVoice(VoiceDriver):
    """Announcements joined from recordings; see firmware_profiles/voice-clips.toml."""

    engine = "clips"
    settings_schema = CLIP_SETTINGS
    options_schema = CLIP_OPTIONS

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any], *,
                 features: frozenset[str] | None = None) -> None:
        super().__init__(settings, options, features=features)
        o, s = self.options, self.settings
        self.directory = Path(o["clips_dir"])
        self.gap_ms, self.pause_ms = int(s["gap_ms"]), int(s["pause_ms"])
        named: dict[str, str] = dict(o.get("clip_files") or {})
        needed = [*s["required"], *o["letters"], *(o.get("extra_clips") or ()), *named]
        self.files = {t: self._path(t, named) for t in dict.fromkeys(_nfc(t) for t in needed)}
        # Checked here, when the node builds its devices, so a missing recording exits 78 at once
        # (reading a few WAV headers; the escpos driver checks its font file the same way).
        self.fmt, self._longest_clip_s = self._check(named)
        self.clips: dict[str, Audio] = {}

    def _path(self, token: str, named: Mapping[str, str]) -> Path:
        name = named.get(token) or token + _SUFFIX
        if "/" in name or name in (".", "..") or "\x00" in name:
            raise ConfigError(f"clip name {name!r} for {token!r} must be a file name in clips_dir",
                              key=f"options.clip_files.{token}" if token in named else "options.extra_clips")
        return self.directory / name

    def _check(self, named: Mapping[str, str]) -> tuple[Format, float]:
        if not self.directory.is_dir():
            raise ConfigError(f"clips directory {self.directory} does not exist", key="options.clips_dir")
        missing = [t for t, p in self.files.items() if not p.is_file()]
        if missing:
            first = self.files[missing[0]]
            more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])}{' ...' if len(missing) > 6 else ''})" \
                if len(missing) > 1 else ""
            raise ConfigError(f"missing clip {first} for {missing[0]!r}{more}; record it, or set options.letters "
                              "to the letters your tickets use", key=self._key(missing[0], named))
        fmt: Format | None = None
        longest = 0.0
        for token, path in self.files.items():
            try:
                this, seconds = wav_info(str(path))
            except BadWav as exc:
                raise ConfigError(f"clip {path}: {exc}", key=self._key(token, named)) from None
            if fmt is not None and this != fmt:
                first = next(iter(self.files.values()))
                raise ConfigError(f"clip {path} is {this}, {first} is {fmt}: record every clip alike "
                                  f"(sox in.wav -r {fmt.rate} -c {fmt.channels} -b 16 out.wav)",
                                  key=self._key(token, named))
            fmt = this
            longest = max(longest, seconds)
        return fmt or Format(22050), longest

    @staticmethod
    def _key(token: str, named: Mapping[str, str]) -> str:
        return f"options.clip_files.{token}" if token in named else "options.clips_dir"

    async def open_engine(self) -> None:
        self.clips = await asyncio.to_thread(self._load)

    def _load(self) -> dict[str, Audio]:
        clips: dict[str, Audio] = {}
        try:
            found = sorted(self.directory.glob("*" + _SUFFIX))
        except OSError:
            found = []
        # recordings the hall added beyond the required ones: usable words too, if they match
        for path in found:
            token = _nfc(path.name[: -len(_SUFFIX)])
            if token not in self.files:
                try:
                    audio = read_wav(str(path))
                except (BadWav, OSError):
                    continue
                if audio.fmt == self.fmt:
                    clips[token] = audio
        for token, path in self.files.items():
            try:
                clips[token] = read_wav(str(path))
            except (BadWav, OSError) as exc:
                raise ConfigError(f"clip {path} cannot be read: {exc}", key="options.clips_dir") from None
        return clips

    async def close_engine(self) -> None:
        self.clips = {}

    def longest_s(self, tokens: list[str]) -> float:
        return len(tokens) * (self._longest_clip_s + (self.gap_ms + self.pause_ms) / 1000) + 1.0

    async def render(self, tokens: list[str]) -> Audio:
        pieces = self.pieces(tokens)
        return await asyncio.to_thread(self._join, pieces)

    def pieces(self, tokens: list[str]) -> list[str]:
        """The clips (and pauses) that say ``tokens``; BadRequest naming a word with no recording."""
        out: list[str] = []
        run: list[str] = []
        for token in [*tokens, PAUSE]:
            token = _nfc(token.upper() if len(token) == 1 and token.isascii() else token)
            if is_text(token):
                run.append(token)
                continue
            if run:
                out += self._spell("".join(run))
                run.clear()
            if token in self.clips or token == PAUSE:
                out.append(token)
            else:
                raise BadRequest(f"no recording for {token!r}: add {self.directory / (token + _SUFFIX)}",
                                 field="data.parts")
        return out[:-1]

    def _spell(self, text: str) -> list[str]:
        words = {t for t in self.clips if is_text(t)}
        found = segment(text, words)
        if isinstance(found, int):
            rest = text[found:]
            raise BadRequest(f"no recording to say {rest!r} (in {text!r}): add {self.directory / (rest[0] + _SUFFIX)} "
                             f"or a clip of a word it starts with", field="data.parts")
        return found

    def _join(self, pieces: list[str]) -> Audio:
        parts: list[Audio] = []
        gap = silence(self.fmt, self.gap_ms)
        for i, piece in enumerate(pieces):
            if piece == PAUSE:
                parts.append(silence(self.fmt, self.pause_ms))
                continue
            if i and pieces[i - 1] != PAUSE and self.gap_ms:
                parts.append(gap)
            parts.append(self.clips[piece])
        return concat(parts) if parts else Audio(self.fmt)


def _nfc(text: str) -> str:
    """One spelling of a token whatever the file system or the sender used (macOS writes NFD names)."""
    return unicodedata.normalize("NFC", text)
