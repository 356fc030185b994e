"""Where an announcement goes: a player (``aplay`` on the Pi's ALSA device) or a directory of WAV
files (tests, the demo's ``--out``). Each plays one announcement at a time and returns once it
has finished, so nothing is ever cut off by the next one; every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hallctl.errors import DeviceError, DeviceOffline, DeviceTimeout
from hallctl_drivers.voice.audio import Audio, wav_bytes

#: seconds a player may take beyond the announcement's length (opening the device, draining)
PLAYER_MARGIN_S = 3.0
_FILE_RE = re.compile(r"^(\d{5,})-")
_LABEL_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Played:
    started_at: str
    file: str | None = None


class WavDirSink:
    """Each announcement as one WAV file, ``00001-A012-w5.wav``: the number says the order (it
    goes on after the files already there). With ``pace`` it is held for as long as it lasts, as
    a speaker would, so the queue behaves as it does in the hall."""

    def __init__(self, directory: str, pace: bool) -> None:
        self.directory = Path(directory)
        self.pace = pace
        self._seq = 0

    @property
    def name(self) -> str:
        return f"wav files in {self.directory}"

    async def open(self) -> None:
        self._seq = await asyncio.to_thread(self._scan)

    def _scan(self) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = os.listdir(self.directory)
        except OSError as exc:
            raise DeviceOffline(f"cannot write announcements to {self.directory}: {exc.strerror}") from None
        return max((int(m.group(1)) for n in names if (m := _FILE_RE.match(n))), default=0)

    async def play(self, audio: Audio, label: str) -> Played:
        self._seq += 1
        name = f"{self._seq:05d}-{_LABEL_RE.sub('_', label)[:48] or 'announce'}.wav"
        started = now_iso()
        path = await asyncio.to_thread(self._write, name, wav_bytes(audio))
        if self.pace:
            await asyncio.sleep(audio.duration_s)
        return Played(started, path)

    def _write(self, name: str, data: bytes) -> str:
        final = self.directory / name
        tmp = self.directory / f".{name}.part"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)  # a reader never sees half an announcement
        except OSError as exc:
            raise DeviceError(f"cannot write {final}: {exc.strerror}") from None
        return str(final)

    def health(self) -> str | None:
        return None if os.access(self.directory, os.W_OK) else f"{self.directory} is not writable"


class PlayerSink:
    """Plays through a command that reads a WAV file on its standard input (default ``aplay -q
    -D <device> -t wav -``) and exits when it has played it. A player that is still busy
    ``PLAYER_MARGIN_S`` after the announcement's length is killed (``timeout``); one that fails
    is a ``device_error`` with what it said."""

    def __init__(self, argv: list[str], alsa_device: str) -> None:
        self.argv = [a.replace("{device}", alsa_device) for a in argv]
        self.alsa_device = alsa_device
        self.margin_s = PLAYER_MARGIN_S

    @property
    def name(self) -> str:
        return f"{os.path.basename(self.argv[0])} on {self.alsa_device}"

    async def open(self) -> None:
        if shutil.which(self.argv[0]) is None:
            hint = " (Debian: apt install alsa-utils)" if os.path.basename(self.argv[0]) == "aplay" else ""
            raise DeviceOffline(f"player {self.argv[0]!r} not found{hint}")

    async def play(self, audio: Audio, label: str) -> Played:
        data = wav_bytes(audio)
        started = now_iso()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise DeviceOffline(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(audio.duration_s + self.margin_s):
                _, err = await proc.communicate(data)
        except TimeoutError:
            await _kill(proc)
            raise DeviceTimeout(f"{self.name} had not finished a {audio.duration_s:.1f} s announcement "
                                f"{self.margin_s:g} s after its end; killed") from None
        except BaseException:
            await _kill(proc)
            raise
        if proc.returncode != 0:
            said = err.decode("utf-8", "replace").strip().splitlines()
            raise DeviceError(f"{self.name} failed (exit {proc.returncode}): {said[-1] if said else 'no message'}")
        return Played(started)

    def health(self) -> str | None:
        return sound_card_problem() if os.path.basename(self.argv[0]) == "aplay" else None


def sound_card_problem() -> str | None:
    """Why ALSA has nothing to play on, or None when it lists a sound card (blocking: a /proc read)."""
    try:
        cards = Path("/proc/asound/cards").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no ALSA (/proc/asound/cards cannot be read)"
    return "no sound card (/proc/asound/cards lists none)" if "no soundcards" in cards or not cards.strip() else None


def speaker_present() -> bool:
    """A sound card and aplay: what the demo asks before playing through the speaker."""
    return shutil.which("aplay") is not None and sound_card_problem() is None


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        await proc.wait()
