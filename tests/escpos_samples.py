"""What the ESC/POS tests share: the sample tickets, the shipped printer profiles, a QR decoder.

The QR decoder is zbar's ``zbarimg`` (Debian's zbar-tools, installed by scripts/test): a reader
that knows nothing of our code, so a QR it reads from the emulator's PNG is a QR a phone reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hallctl.profiles import Profile, load_profiles
from hallctl_drivers.escpos.codec import PrinterModel

FIXTURES = Path(__file__).parent / "fixtures" / "escpos"
PROFILES = ("epson-tm-t88v", "hprt-tp809", "snbc-bt-t080", "zijiang-zj-5870")
LINK = "https://hall.example.cn/t/Zx8Kq2"

#: the kiosk's ticket, as the kiosk app will send it
SAMPLE = [
    {"text": "北京市政务服务中心", "align": "center", "bold": True},
    {"rule": True},
    {"text": "A012", "size": 4, "align": "center", "bold": True},
    {"text": "不动产登记", "size": 2, "align": "center"},
    {"text": "请到3号窗口办理", "align": "center"},
    {"text": "前面还有 5 人，预计等待 12 分钟"},
    {"text": "取号时间 2024-05-06 09:30\n手机 138****5678"},
    {"qr": LINK, "align": "center"},
    {"text": "请留意叫号，过号请重新取号", "align": "center"},
]
#: the same ticket for a printer without a Chinese font's native path
SAMPLE_ASCII = [
    {"text": "Beijing Service Center", "align": "center", "bold": True},
    {"rule": True},
    {"text": "A012", "size": 4, "align": "center", "bold": True},
    {"text": "Real estate", "size": 2, "align": "center"},
    {"text": "Please go to window 3", "align": "center"},
    {"text": "5 ahead, about 12 min\nIssued 2024-05-06 09:30\nPhone 138****5678"},
    {"qr": LINK, "align": "center"},
    {"feed": 1},
]


def profile(pid: str) -> Profile:
    return load_profiles().get(pid)


def model(pid: str) -> PrinterModel:
    p = profile(pid)
    return PrinterModel.from_settings(p.settings, p.features)


def sample_for(pid: str, path: str) -> list[dict]:
    """The Chinese sample, except on the native path of a model without a Chinese font."""
    return SAMPLE if path == "raster" or profile(pid).supports("chinese_native") else SAMPLE_ASCII


def zbar(png: Path) -> list[str]:
    """The QR codes zbar reads in ``png``."""
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(png)],
                         capture_output=True, text=True, timeout=30)
    return [line for line in out.stdout.splitlines() if line]
