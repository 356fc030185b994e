"""Onbon BX-5K/6K real-time dynamic areas (A3 06, §8.2.1/§9.1), GB2312 text (§11) and the status reply (A1 02, §8.4)."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from hallctl.errors import (
    BadRequest,
)
from hallctl_drivers.onbon_bx.frame import FrameError, _u16, _u8

# --------------------------------------------------------------------------------------------
# Dynamic area (A3 06) and text
# --------------------------------------------------------------------------------------------

_FONT_RE = re.compile(r"^[A-Z][0-9A-Z]{3}$")

#: TextAlignment bits 1..0 (§9.1); vertical bits 3..2 = 10b (centre) are added by the caller
ALIGN_H = {"left": 0b00, "right": 0b01, "center": 0b10}
ALIGN_V = {"top": 0b00, "bottom": 0b01, "center": 0b10}

DISPLAY_STATIC = 0x01  # §9.1 DisplayMode


def text_alignment(horizontal: str = "left", vertical: str = "top") -> int:
    """TextAlignment byte (§9.1) from words."""
    try:
        return ALIGN_H[horizontal] | (ALIGN_V[vertical] << 2)
    except KeyError as exc:
        raise BadRequest(f"unknown alignment {exc.args[0]!r}") from None


def _gb2312(ch: str) -> bytes:
    try:
        return ch.encode("gb2312")
    except UnicodeEncodeError:
        raise BadRequest(
            f"character {ch!r} (U+{ord(ch):04X}) cannot be shown: it is not in GB2312",
            character=ch,
        ) from None


def encode_text(
    text_lines: Sequence[str],
    *,
    font: str | None = "O000",
    ascii_font: str | None = None,
    color: int | None = None,
) -> bytes:
    """Area text (§11): optional ``\\F<font>`` and ``\\C<n>`` escapes, lines joined by ``\\n``.

    Every character must be in GB2312; one that is not raises BadRequest naming it. A backslash
    or a control character in the text is refused too (it would start an escape / garble the bar).
    With ``ascii_font`` set, ASCII runs switch to that font (``\\FE000``) and back, as in the
    doc's example ``\\FO000...\\FE000onbon``.
    """
    for f in (font, ascii_font):
        if f is not None and not _FONT_RE.match(f):
            raise BadRequest(f"font name must look like O000/E001, got {f!r}")
    if color is not None and color not in range(1, 8):
        raise BadRequest(f"colour must be 1..7 (§11.1), got {color!r}")
    if isinstance(text_lines, str):
        raise BadRequest("text_lines must be a list of strings, not one string")
    lines: list[str] = []
    for item in text_lines:
        if not isinstance(item, str):
            raise BadRequest(f"each line must be a string, got {type(item).__name__}")
        lines.extend(item.split("\n"))
    out = bytearray()
    current = font
    if font:
        out += b"\\F" + font.encode("ascii")
    if color is not None:
        out += b"\\C" + str(color).encode("ascii")
    for n, line in enumerate(lines):
        if n:
            out += b"\\n"
        for ch in line:
            if ch == "\\":
                raise BadRequest("a backslash cannot be shown: it starts a display escape (§11.1)")
            if ord(ch) < 0x20 or ord(ch) == 0x7F:
                raise BadRequest(f"control character U+{ord(ch):04X} cannot be shown")
            if ascii_font:
                want = ascii_font if ord(ch) < 0x80 else font
                if want and want != current:
                    out += b"\\F" + want.encode("ascii")
                    current = want
            out += _gb2312(ch)
    return bytes(out)


def _coord(name: str, px: int, pixel_units: bool) -> bytes:
    """AreaX / AreaWidth: bit 15 set = pixels, clear = units of 8 pixels (§9.1)."""
    if not isinstance(px, int) or px < 0:
        raise BadRequest(f"{name} must be a non-negative integer of pixels, got {px!r}")
    if pixel_units:
        if px > 0x7FFF:
            raise BadRequest(f"{name} {px} px is too large")
        return (px | 0x8000).to_bytes(2, "little")
    if px % 8:
        raise BadRequest(f"{name} {px} px is not a multiple of 8 (byte units)")
    return (px // 8).to_bytes(2, "little")


def area_data(
    text: bytes,
    *,
    width: int,
    height: int,
    area_id: int = 0,
    x: int = 0,
    y: int = 0,
    line_spacing: int = 0,
    run_mode: int = 1,
    timeout_s: int = 10,
    align: int = 0,
    single_line: bool = False,
    auto_newline: bool = False,
    display_mode: int = DISPLAY_STATIC,
    exit_mode: int = 0,
    speed: int = 2,
    stay_time: int = 10,
    pixel_units: bool = True,
) -> bytes:
    """One §9.1 area record (no sound, no extended parameters) around already-encoded text."""
    if run_mode not in (0, 1, 2):
        raise BadRequest(f"run_mode must be 0, 1 or 2, got {run_mode!r}")
    if not 0 <= speed <= 0x18:
        raise BadRequest(f"speed must be 0..24, got {speed!r}")
    return (
        b"\x00"  # AreaType
        + _coord("x", x, pixel_units)
        + _u16("y", y)
        + _coord("width", width, pixel_units)
        + _u16("height", height)
        + bytes([_u8("area_id", area_id), _u8("line_spacing", line_spacing), run_mode])
        + _u16("timeout_s", timeout_s)
        + b"\x00"  # SoundMode: off (so no sound fields follow)
        + b"\x00"  # ExtendParaLen: 0 (so no extended fields follow)
        + bytes([_u8("align", align), 0x01 if single_line else 0x02])
        + bytes([0x02 if auto_newline else 0x01, _u8("display_mode", display_mode)])
        + bytes([_u8("exit_mode", exit_mode), speed, _u8("stay_time", stay_time)])
        + len(text).to_bytes(4, "little")
        + text
    )


def dynamic_area_payload(
    text_lines: Sequence[str],
    *,
    width: int,
    height: int,
    area_id: int = 0,
    x: int = 0,
    y: int = 0,
    font: str | None = "O000",
    ascii_font: str | None = None,
    color: int | None = None,
    run_mode: int = 1,
    timeout_s: int = 10,
    line_spacing: int = 0,
    align: int = 0,
    single_line: bool = False,
    auto_newline: bool = False,
    display_mode: int = DISPLAY_STATIC,
    exit_mode: int = 0,
    speed: int = 2,
    stay_time: int = 10,
    pixel_units: bool = True,
    delete_areas: Iterable[int] = (),
    max_text_bytes: int | None = None,
) -> bytes:
    """Data of an ``A3 06`` real-time dynamic-area request (§8.2.1), from DeleteAreaNum on.

    Send it with ``build_frame(0xA3, 0x06, payload)`` (ProcessMode 0 = the reserved bytes).
    Updates one area with ``text_lines`` (manual line breaks, static display by default; RunMode
    1 keeps the last page up). ``max_text_bytes`` is the model's per-area capacity (§8.2.1:
    1024 B on 6K, 512 B on 5K); longer text raises BadRequest instead of being cut by the card.
    """
    text = encode_text(text_lines, font=font, ascii_font=ascii_font, color=color)
    if max_text_bytes is not None and len(text) > max_text_bytes:
        raise BadRequest(
            f"text is {len(text)} bytes, the display's dynamic area holds {max_text_bytes} "
            "(GB2312: 2 bytes per Chinese character, 1 per ASCII)", field="data.lines"
        )
    record = area_data(
        text,
        width=width,
        height=height,
        area_id=area_id,
        x=x,
        y=y,
        line_spacing=line_spacing,
        run_mode=run_mode,
        timeout_s=timeout_s,
        align=align,
        single_line=single_line,
        auto_newline=auto_newline,
        display_mode=display_mode,
        exit_mode=exit_mode,
        speed=speed,
        stay_time=stay_time,
        pixel_units=pixel_units,
    )
    deletes = [_u8("delete area id", a) for a in delete_areas]
    return (
        bytes([len(deletes)])
        + bytes(deletes)
        + b"\x01"  # AreaNum
        + _u16("area data length", len(record))
        + record
    )


@dataclass(frozen=True)
class DynamicArea:
    """One area of a decoded A3 06 request (emulator side)."""

    area_id: int
    x: int
    y: int
    width: int
    height: int
    run_mode: int
    display_mode: int
    text: bytes


def parse_dynamic_area_payload(data: bytes) -> tuple[list[int] | None, list[DynamicArea]]:
    """Inverse of :func:`dynamic_area_payload`: (areas to delete, None = all; updated areas).

    Raises BadRequest when the lengths do not add up.
    """
    try:
        i = 0
        delete_n = data[i]
        i += 1
        if delete_n == 0xFF:
            deletes: list[int] | None = None
        else:
            deletes = list(data[i : i + delete_n])
            if len(deletes) != delete_n:
                raise IndexError
            i += delete_n
        area_n = data[i]
        i += 1
        areas = []
        for _ in range(area_n):
            rec_len = int.from_bytes(data[i : i + 2], "little")
            rec = data[i + 2 : i + 2 + rec_len]
            if len(rec) != rec_len or len(data[i : i + 2]) != 2:
                raise IndexError
            areas.append(_parse_area_record(rec))
            i += 2 + rec_len
        if i != len(data):
            raise BadRequest(f"{len(data) - i} unexpected bytes after the last area")
        return deletes, areas
    except IndexError:
        raise BadRequest("dynamic area payload is truncated") from None


def _px(v: int) -> int:
    return v & 0x7FFF if v & 0x8000 else v * 8


def _parse_area_record(rec: bytes) -> DynamicArea:
    u16 = lambda o: int.from_bytes(rec[o : o + 2], "little")  # noqa: E731
    if len(rec) < 27:
        raise IndexError
    x, y, w, h = _px(u16(1)), u16(3), _px(u16(5)), u16(7)
    area_id, run_mode = rec[9], rec[11]
    i = 14
    sound = rec[i]
    i += 1
    if sound:
        i += 3  # person/repeat, volume, speed
        if sound == 2:
            i += 4 + int.from_bytes(rec[i : i + 4], "little")
    ext = rec[i]
    i += 1 + ext
    # TextAlignment, SingleLine, NewLine, DisplayMode, ExitMode, Speed, StayTime
    display_mode = rec[i + 3]
    i += 7
    n = int.from_bytes(rec[i : i + 4], "little")
    text = rec[i + 4 : i + 4 + n]
    if len(rec[i : i + 4]) != 4 or len(text) != n or i + 4 + n != len(rec):
        raise IndexError
    return DynamicArea(area_id, x, y, w, h, run_mode, display_mode, bytes(text))


_ESC_RE = re.compile(rb"\\(F....|C.)", re.DOTALL)


def decode_text(text: bytes) -> list[str]:
    """What a person reads on the bar: GB2312 text with ``\\F....``/``\\C.`` removed, split on
    ``\\n``. Undecodable bytes become U+FFFD (the emulator must not crash on them)."""
    parts = text.split(b"\\n")
    return [_ESC_RE.sub(b"", p).decode("gb2312", errors="replace") for p in parts]


# --------------------------------------------------------------------------------------------
# Status reply (A1 02, §8.4)
# --------------------------------------------------------------------------------------------


def _bcd(b: int) -> int | None:
    hi, lo = b >> 4, b & 0x0F
    return None if hi > 9 or lo > 9 else hi * 10 + lo


def encode_status(
    *,
    power_on: bool = True,
    brightness: int = 15,
    clock: _dt.datetime | None = None,
    program_count: int = 0,
    program: bytes = b"\x00\x00\x00\x00",
    dynamic_areas: Sequence[int] = (),
) -> bytes:
    """Data of an A1 02 reply (§8.4) — used by the emulator and tests."""
    t = clock or _dt.datetime.now()

    def bcd(v: int) -> int:
        return ((v // 10) << 4) | (v % 10)

    systime = bytes(
        [bcd(t.year // 100), bcd(t.year % 100), bcd(t.month), bcd(t.day), t.isoweekday()]
        + [bcd(t.hour), bcd(t.minute), bcd(t.second)]
    )
    return (
        bytes([0x01 if power_on else 0x02, brightness & 0xFF])
        + systime
        + bytes([program_count & 0xFF])
        + bytes(program[:4]).ljust(4, b"\x00")
        + b"\x00\x00"  # SpecialDynaArea, PageNum
        + bytes([len(dynamic_areas)])
        + bytes(dynamic_areas)
        + b"\x00" * 16  # BarCode
        + b"\x00" * 12  # CustomId
    )


def parse_status(data: bytes) -> dict[str, Any]:
    """Decode an A1 02 reply's data (§8.4). Tolerant of short replies (older 5K1 firmware
    omits the special-area bytes); needs at least OnOff, Brightness and the clock."""
    if len(data) < 10:
        raise FrameError(f"status reply has {len(data)} data bytes, need 10", reason="length")
    out: dict[str, Any] = {
        "power": {1: "on", 2: "off"}.get(data[0], f"unknown({data[0]})"),
        "brightness": data[1],
        "clock": None,
    }
    parts = [_bcd(b) for b in data[2:10]]
    if None not in parts:
        yh, yl, mo, d, _wk, h, mi, s = parts  # type: ignore[misc]
        try:
            out["clock"] = _dt.datetime(yh * 100 + yl, mo, d, h, mi, s).isoformat()  # type: ignore[operator]
        except ValueError:
            pass
    if len(data) >= 15:
        out["program_count"] = data[10]
        out["program"] = data[11:15].rstrip(b"\x00").decode("ascii", errors="replace")
    if len(data) >= 18:
        out["dynamic_areas"] = list(data[18 : 18 + data[17]])
    return out
