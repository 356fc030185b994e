"""``hallctl demo`` calls through the devices of issue 10: the clerks press their windows' emulated
QSystem keypads, the hall screen node draws the call-order board (its page's address printed, its
frames in DIR/board with --out) and speaks each call it still can (DIR/voice, WAV)."""

from __future__ import annotations

import re
import subprocess
import wave

from conftest import PYTHON, spawn_env


def _rms(path) -> float:
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        width = w.getsampwidth()
    samples = [int.from_bytes(frames[i:i + width], "little", signed=True) for i in range(0, len(frames), width)]
    return (sum(x * x for x in samples) / max(1, len(samples))) ** 0.5


def test_the_demo_calls_by_keypad_and_shows_and_speaks_the_calls(tmp_path) -> None:
    out_dir = tmp_path / "out"
    proc = subprocess.run([PYTHON, "-m", "hallctl", "demo", "--seed", "5", "--rate", "2", "--service", "1",
                           "--duration", "14", "--kiosk-port", "0", "--board-port", "0", "--out", str(out_dir)],
                          env=spawn_env(), capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out[-2000:] + proc.stderr[-2000:]
    assert re.search(r"call-order board \(叫号屏\): http://127\.0\.0\.1:\d+/", out)
    called = re.findall(r"叫号 请 ([ABC]\d{3}) 号到 (\d)号窗口", out)
    assert called, out[-2000:]
    presses, frames, spoken = map(int, re.search(
        r"keypad presses: (\d+); board frames drawn: (\d+); announcements: (\d+)", out).groups())
    assert presses >= len(called)  # every call was a key 1 on its window's keypad
    assert "request errors" not in out, out[-2000:]
    boards = sorted((out_dir / "board").glob("*.png"))
    assert frames > 0 and boards  # the app drew the board, the driver saved what it showed
    wavs = sorted((out_dir / "voice").glob("*.wav"))
    assert spoken >= 1 and len(wavs) >= spoken
    for wav in wavs[:spoken]:
        number, window = re.match(r"\d+-([ABC]\d{3})-w(\d+)\.wav", wav.name).groups()
        assert (number, window) in called  # spoken: a call the hall made, at its window
        assert _rms(wav) > 300  # not silence
