"""``hallctl demo --out DIR``: the demo's citizens take their tickets at the kiosk's page, the
emulated printer prints them, and every printed ticket is in DIR as a PNG whose QR zbar reads and
as the raw bytes the printer received; the kiosk page's address is printed."""

from __future__ import annotations

import re
import subprocess

from conftest import PYTHON, spawn_env
from escpos_samples import zbar


def test_demo_prints_its_tickets_at_the_kiosk_and_saves_them(tmp_path) -> None:
    out_dir = tmp_path / "tickets"
    proc = subprocess.run([PYTHON, "-m", "hallctl", "demo", "--seed", "3", "--rate", "3", "--service", "1",
                           "--duration", "5", "--kiosk-port", "0", "--out", str(out_dir)],
                          env=spawn_env(), capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out[-2000:] + proc.stderr[-2000:]
    assert re.search(r"kiosk page \(取号机\): http://127\.0\.0\.1:\d+/", out)
    issued = int(re.search(r"tickets issued: (\d+)", out).group(1))
    printed = int(re.search(r"tickets printed: (\d+)", out).group(1))
    assert issued > 0 and printed >= issued  # one may have been printing as the demo stopped
    pngs, bins = sorted(out_dir.glob("*.png")), sorted(out_dir.glob("*.bin"))
    assert len(pngs) == len(bins) == printed
    assert bins[0].read_bytes().startswith(b"\x1b@")  # ESC @: the bytes the printer received
    (link,) = zbar(pngs[0])
    assert link.startswith("https://hall.example.cn/t/")
    numbers = re.findall(r"取号 ([ABC]\d{3}) .*号票第 (\d+) 张", out)
    assert len(numbers) == issued
    assert not re.search(r"\b1[3-9]\d{9}\b", out)
