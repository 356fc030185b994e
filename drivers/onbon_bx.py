"""Onbon/仰邦 BX-5K/6K font-ROM text controllers (window and queue LED bars).

Source: the vendor's "BX-5K/6K 通讯协议" v1.4 (2021-02-28), https://doc.onbonbx.com/zh/k/potocol
(section numbers below are that document's). Summary in shared/reference/protocols.md §3.

Wire format (§3)::

    PHY0 = A5 x8 | escape(PHY1) | 5A
    PHY1 = header (14 B) | data field (N B) | check (2 B, LSB first, over header + data, unescaped)
    header = DstAddr(2) SrcAddr(2) Reserved(3) BarCodeOption(1) CheckMode(1) DisplayMode(1)
             DeviceType(1) ProtocolVersion(1) DataLen(2)          -- all little-endian (§4)
    data field = CmdGroup Cmd Response|CmdError Reserved(2) Data  (§5.1)

The first half of this module is a pure codec (no I/O) shared by the driver and the emulator in
:mod:`hallctl.sim.bx_emulator`; the second half is :class:`OnbonBxDisplay`.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import AbstractSet, Any, ClassVar, Iterable, Mapping, Sequence

from hallctl.errors import (
    BadRequest,
    ConfigError,
    DeviceError,
    DeviceOffline,
    DeviceTimeout,
    HallctlError,
    UnknownCommand,
)
from hallctl_drivers.base import Driver, Health, ProbeResult

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

FRAME_START = 0xA5
FRAME_END = 0x5A
PREAMBLE = bytes([FRAME_START]) * 8
HEADER_LEN = 14
BARCODE_LEN = 16  # extra header bytes when BarCodeOption bit0 is set (6K set-IP only, §4)
CMD_PREFIX_LEN = 5  # CmdGroup, Cmd, Response/CmdError, Reserved(2)

ADDR_BROADCAST_SILENT = 0xFFFF  # controllers execute but never reply (§4)
ADDR_BROADCAST_REPLY = 0xFFFE  # controllers reply, from FFFE (§4)
ADDR_PC = 0x8000  # default SrcAddr of a PC client (§4)
DEVICE_TYPE_ANY = 0xFE  # wildcard (§4)

RESPONSE_REQUIRED = 0x01
RESPONSE_NONE = 0x02

CHECK_CRC16, CHECK_SUM16, CHECK_NONE = 0, 1, 2
ALL_CHECK_MODES: frozenset[int] = frozenset({CHECK_CRC16, CHECK_SUM16, CHECK_NONE})
#: what a host should accept in replies: one flipped bit turns CheckMode 0 into 2 ("no check"),
#: so a receiver that allows mode 2 cannot detect that corruption
CRC_ONLY: frozenset[int] = frozenset({CHECK_CRC16})

# (cmd_group, cmd) of the commands we use
CMD_ACK = (0xA0, 0x00)  # §7.1
CMD_NACK = (0xA0, 0x01)  # §7.2
CMD_FORMAT = (0xA1, 0x00)  # §8.5
CMD_STATUS = (0xA1, 0x02)  # §8.4
CMD_PING = (0xA2, 0x00)  # §8.7
CMD_TIME_SYNC = (0xA2, 0x03)  # §8.10
CMD_POWER = (0xA3, 0x00)  # §8.13
CMD_BRIGHTNESS = (0xA3, 0x02)  # §8.17
CMD_DYNAMIC_AREA = (0xA3, 0x06)  # §8.2.1
CMD_CLEAR = (0xA3, 0x10)  # §8.16

#: CmdError values (§6)
CMD_ERRORS: dict[int, str] = {
    0: "ERR_NO",
    1: "ERR_OUTOFGROUP",
    2: "ERR_NOCMD",
    3: "ERR_BUSY",
    4: "ERR_MEMORYVOLUME",
    5: "ERR_CHECKSUM",
    6: "ERR_FILENOTEXIST",
    7: "ERR_FLASH",
    8: "ERR_FILE_DOWNLOAD",
    9: "ERR_FILE_NAME",
    10: "ERR_FILE_TYPE",
    11: "ERR_FILE_CRC16",
    12: "ERR_FONT_NOT_EXIST",
    13: "ERR_FIRMWARE_TYPE",
    14: "ERR_DATE_TIME_FORMAT",
    15: "ERR_FILE_EXIST",
    16: "ERR_FILE_BLOCK_NUM",
}
ERR_NOCMD, ERR_MEMORYVOLUME, ERR_CHECKSUM = 2, 4, 5

#: longest escaped PHY1 a FrameReader buffers: every byte of a maximal packet escaped
MAX_ESCAPED_BODY = 2 * (HEADER_LEN + BARCODE_LEN + 0xFFFF + 2)


def cmd_error_name(code: int) -> str:
    return CMD_ERRORS.get(code, f"ERR_UNKNOWN_{code}")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class FrameError(DeviceError):
    """A frame that cannot be trusted: truncated, badly escaped, wrong length or checksum.

    ``reason`` is a short machine word ("truncated", "escape", "length", "checksum", "header",
    "too_long"); ``dst`` is the header's DstAddr when at least that much was readable (an emulator
    uses it to decide who NACKs a corrupted request), else None.
    """

    def __init__(self, message: str, *, reason: str, dst: int | None = None) -> None:
        super().__init__(f"BX frame error ({reason}): {message}", reason=reason)
        self.reason = reason
        self.dst = dst
        #: the PHY0 bytes as received, when a FrameReader produced this error
        self.raw = b""


class NackError(DeviceError):
    """The controller answered NACK (``A0 01 <CmdError>``, §7.2)."""

    def __init__(self, error_code: int, *, request: tuple[int, int] | None = None) -> None:
        name = cmd_error_name(error_code)
        what = f" to {request[0]:02X} {request[1]:02X}" if request else ""
        super().__init__(
            f"display answered NACK{what}: {name} ({error_code})",
            cmd_error=error_code,
            cmd_error_name=name,
        )
        self.error_code = error_code
        self.error_name = name


# --------------------------------------------------------------------------------------------
# CRC-16/ARC and escaping
# --------------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()  # equals the table in the doc's appendix (0x0000, 0xC0C1, 0xC181, ...)


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: reflected poly 0xA001, init 0, no final XOR (doc appendix)."""
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def sum16(data: bytes) -> int:
    """CheckMode 1: byte sum, low 16 bits (§4)."""
    return sum(data) & 0xFFFF


_ESCAPES = {0xA5: b"\xa6\x02", 0xA6: b"\xa6\x01", 0x5A: b"\x5b\x02", 0x5B: b"\x5b\x01"}
_UNESCAPES = {(0xA6, 0x02): 0xA5, (0xA6, 0x01): 0xA6, (0x5B, 0x02): 0x5A, (0x5B, 0x01): 0x5B}


def escape(b: bytes) -> bytes:
    """Escape PHY1 so it contains no A5/5A (§3.3)."""
    out = bytearray()
    for x in b:
        esc = _ESCAPES.get(x)
        if esc is None:
            out.append(x)
        else:
            out += esc
    return bytes(out)


def unescape(b: bytes) -> bytes:
    """Undo :func:`escape`. Raises FrameError on a lone A6/5B or a raw A5/5A."""
    out = bytearray()
    i, n = 0, len(b)
    while i < n:
        x = b[i]
        if x in (0xA6, 0x5B):
            if i + 1 >= n:
                raise FrameError(f"escape byte {x:02X} at the end of the frame", reason="escape")
            y = _UNESCAPES.get((x, b[i + 1]))
            if y is None:
                raise FrameError(
                    f"invalid escape {x:02X} {b[i + 1]:02X} at offset {i}", reason="escape"
                )
            out.append(y)
            i += 2
        elif x in (0xA5, 0x5A):
            raise FrameError(f"unescaped {x:02X} inside the frame at offset {i}", reason="escape")
        else:
            out.append(x)
            i += 1
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One decoded PHY1 packet (request or reply).

    ``status`` is the third data-field byte: Response (01 must reply / 02 no reply) in a request,
    CmdError in a reply (§5.1.1, §5.1.2). ``reserved`` is the two data-field bytes after it; the
    A3 06 dynamic-area request uses the first as ProcessMode (§8.2.1).
    """

    dst: int
    src: int
    device_type: int
    cmd_group: int
    cmd: int
    status: int
    data: bytes = b""
    reserved: bytes = b"\x00\x00"
    protocol_version: int = 0x02
    check_mode: int = CHECK_CRC16
    display_mode: int = 0
    header_reserved: bytes = b"\x00\x00\x00"
    barcode: bytes | None = None
    #: the PHY0 bytes as received (A5 run .. 5A), set by FrameReader / parse_frame
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def command(self) -> tuple[int, int]:
        return (self.cmd_group, self.cmd)

    @property
    def response(self) -> int:
        """Request view of ``status``: 01 = reply required, 02 = no reply."""
        return self.status

    @property
    def error(self) -> int:
        """Reply view of ``status``: CmdError (§6)."""
        return self.status

    @property
    def is_ack(self) -> bool:
        return self.command == CMD_ACK

    @property
    def is_nack(self) -> bool:
        return self.command == CMD_NACK

    @property
    def error_name(self) -> str:
        return cmd_error_name(self.status)


def _u16(name: str, v: int) -> bytes:
    if not isinstance(v, int) or not 0 <= v <= 0xFFFF:
        raise BadRequest(f"{name} must be an integer 0..0xFFFF, got {v!r}")
    return v.to_bytes(2, "little")


def _u8(name: str, v: int) -> int:
    if not isinstance(v, int) or not 0 <= v <= 0xFF:
        raise BadRequest(f"{name} must be an integer 0..0xFF, got {v!r}")
    return v


def _check_value(mode: int, body: bytes) -> int:
    if mode == CHECK_CRC16:
        return crc16_arc(body)
    if mode == CHECK_SUM16:
        return sum16(body)
    return 0  # CHECK_NONE: "校验字节可以为任意值" (§4)


def build_frame(
    cmd_group: int,
    cmd: int,
    data: bytes = b"",
    *,
    dst: int = 0x0001,
    src: int = ADDR_PC,
    device_type: int = DEVICE_TYPE_ANY,
    response: int = RESPONSE_REQUIRED,
    protocol_version: int = 0x02,
    reserved: bytes = b"\x00\x00",
    display_mode: int = 0,
    check_mode: int = CHECK_CRC16,
) -> bytes:
    """Build a complete PHY0 frame: ``A5 x8 | escape(header + data field + check) | 5A``.

    For a reply pass the CmdError as ``response``. ``reserved`` fills the two data-field bytes
    after Response (ProcessMode + Reserved for A3 06).
    """
    data = bytes(data)
    reserved = bytes(reserved)
    if len(reserved) != 2:
        raise BadRequest("reserved must be exactly 2 bytes")
    if check_mode not in (CHECK_CRC16, CHECK_SUM16, CHECK_NONE):
        raise BadRequest(f"check_mode must be 0, 1 or 2, got {check_mode!r}")
    field = (
        bytes([_u8("cmd_group", cmd_group), _u8("cmd", cmd), _u8("response", response)])
        + reserved
        + data
    )
    header = (
        _u16("dst", dst)
        + _u16("src", src)
        + b"\x00\x00\x00"  # Reserved(3)
        + b"\x00"  # BarCodeOption: no barcode
        + bytes([check_mode, _u8("display_mode", display_mode)])
        + bytes([_u8("device_type", device_type), _u8("protocol_version", protocol_version)])
        + _u16("data length", len(field))
    )
    body = header + field
    phy1 = body + _check_value(check_mode, body).to_bytes(2, "little")
    return PREAMBLE + escape(phy1) + bytes([FRAME_END])


def encode_phy0(phy1: bytes) -> bytes:
    """Wrap an (unescaped) PHY1 packet as PHY0. For emulators that need to send odd frames."""
    return PREAMBLE + escape(phy1) + bytes([FRAME_END])


def parse_phy1(phy1: bytes, *, check_modes: AbstractSet[int] = ALL_CHECK_MODES) -> Frame:
    """Decode an unescaped PHY1 packet; check its length and checksum.

    ``check_modes`` are the CheckMode values accepted (§4); pass :data:`CRC_ONLY` where a frame
    that disables its own check must not be trusted."""
    dst = int.from_bytes(phy1[0:2], "little") if len(phy1) >= 2 else None
    if len(phy1) < HEADER_LEN:
        raise FrameError(
            f"{len(phy1)} bytes, shorter than the {HEADER_LEN}-byte header",
            reason="truncated",
            dst=dst,
        )
    barcode_option = phy1[7]
    header_len = HEADER_LEN + (BARCODE_LEN if barcode_option & 1 else 0)
    if len(phy1) < header_len:
        raise FrameError("header with barcode is truncated", reason="truncated", dst=dst)
    barcode = bytes(phy1[8 : 8 + BARCODE_LEN]) if barcode_option & 1 else None
    p = header_len - 6  # CheckMode starts 6 bytes before the header's end
    check_mode, display_mode, device_type, protocol_version = phy1[p : p + 4]
    data_len = int.from_bytes(phy1[p + 4 : p + 6], "little")
    expected = header_len + data_len + 2
    if len(phy1) < expected:
        raise FrameError(
            f"DataLen says {data_len} bytes, only {len(phy1) - header_len - 2} present",
            reason="truncated",
            dst=dst,
        )
    if len(phy1) > expected:
        raise FrameError(
            f"DataLen says {data_len} bytes but the packet carries {len(phy1) - header_len - 2}",
            reason="length",
            dst=dst,
        )
    if check_mode not in ALL_CHECK_MODES:
        raise FrameError(f"unknown CheckMode {check_mode}", reason="header", dst=dst)
    if check_mode not in check_modes:
        raise FrameError(
            f"CheckMode {check_mode} not accepted here (expected {sorted(check_modes)})",
            reason="header",
            dst=dst,
        )
    body, got = phy1[:-2], int.from_bytes(phy1[-2:], "little")
    if check_mode != CHECK_NONE:
        want = _check_value(check_mode, body)
        if got != want:
            kind = "CRC16" if check_mode == CHECK_CRC16 else "SUM16"
            raise FrameError(
                f"{kind} mismatch: frame has {got:04X}, computed {want:04X}",
                reason="checksum",
                dst=dst,
            )
    if data_len < CMD_PREFIX_LEN:
        raise FrameError(
            f"data field of {data_len} bytes, need at least {CMD_PREFIX_LEN}",
            reason="length",
            dst=dst,
        )
    field = phy1[header_len : header_len + data_len]
    return Frame(
        dst=int(dst or 0),
        src=int.from_bytes(phy1[2:4], "little"),
        device_type=device_type,
        cmd_group=field[0],
        cmd=field[1],
        status=field[2],
        reserved=bytes(field[3:5]),
        data=bytes(field[5:]),
        protocol_version=protocol_version,
        check_mode=check_mode,
        display_mode=display_mode,
        header_reserved=bytes(phy1[4:7]),
        barcode=barcode,
    )


def _parse_escaped_body(body: bytes, check_modes: AbstractSet[int] = ALL_CHECK_MODES) -> Frame:
    return parse_phy1(unescape(body), check_modes=check_modes)


def parse_frame(raw: bytes, *, check_modes: AbstractSet[int] = ALL_CHECK_MODES) -> Frame:
    """Decode exactly one PHY0 frame (one or more A5, escaped PHY1, one 5A).

    Raises :class:`FrameError` (a DeviceError) with a clear reason for anything else.
    """
    raw = bytes(raw)
    if not raw:
        raise FrameError("empty input", reason="truncated")
    if raw[0] != FRAME_START:
        raise FrameError(f"frame starts with {raw[0]:02X}, not A5", reason="header")
    i = 0
    while i < len(raw) and raw[i] == FRAME_START:
        i += 1
    if raw[-1] != FRAME_END or i == len(raw):
        raise FrameError("no closing 5A", reason="truncated")
    body = raw[i:-1]
    if not body:
        raise FrameError("empty frame between A5 and 5A", reason="truncated")
    if FRAME_START in body or FRAME_END in body:
        raise FrameError("stray A5/5A inside the frame (more than one frame?)", reason="escape")
    return replace(_parse_escaped_body(body, check_modes), raw=raw)


class FrameReader:
    """Streaming PHY0 decoder: feed arbitrary chunks, get complete frames (or errors) back.

    Hunts for A5 (bytes before it are line garbage and dropped), takes the first non-A5 byte as
    the frame start (§3), and ends the frame at 5A. An A5 in the middle of a frame means the
    previous frame was cut short: it is reported as a "truncated" FrameError and a new frame
    begins. Errors are returned, never raised, so one bad frame cannot stop a reader loop.
    """

    _HUNT, _SYNC, _BODY = 0, 1, 2

    def __init__(
        self, *, max_body: int = MAX_ESCAPED_BODY, check_modes: AbstractSet[int] = ALL_CHECK_MODES
    ) -> None:
        self.max_body = max_body
        self.check_modes = check_modes
        self.reset()

    def reset(self) -> None:
        """Forget any partial frame (e.g. before sending a new request)."""
        self._state = self._HUNT
        self._body = bytearray()
        self._raw = bytearray()

    @property
    def idle(self) -> bool:
        """True when no partial frame is buffered."""
        return self._state == self._HUNT

    def feed(self, chunk: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        for x in bytes(chunk):
            if self._state == self._HUNT:
                if x == FRAME_START:
                    self._state = self._SYNC
                    self._raw = bytearray([x])
            elif self._state == self._SYNC:
                self._raw.append(x)
                if x == FRAME_START:
                    continue
                if x == FRAME_END:
                    out.append(self._error("empty frame between A5 and 5A", "truncated"))
                    self._state = self._HUNT
                    continue
                self._state = self._BODY
                self._body = bytearray([x])
            else:  # _BODY
                if x == FRAME_END:
                    self._raw.append(x)
                    out.append(self._finish())
                    self._state = self._HUNT
                elif x == FRAME_START:
                    out.append(
                        self._error(
                            f"frame cut short after {len(self._body)} bytes (new A5 before 5A)",
                            "truncated",
                        )
                    )
                    self._body = bytearray()
                    self._raw = bytearray([x])
                    self._state = self._SYNC
                else:
                    self._body.append(x)
                    self._raw.append(x)
                    if len(self._body) > self.max_body:
                        out.append(self._error(f"no 5A within {self.max_body} bytes", "too_long"))
                        self._body = bytearray()
                        self._state = self._HUNT
        return out

    def _error(self, message: str, reason: str) -> FrameError:
        err = FrameError(message, reason=reason, dst=_dst_of_escaped(bytes(self._body)))
        err.raw = bytes(self._raw)
        self._raw = bytearray()
        return err

    def _finish(self) -> Frame | FrameError:
        body, self._body = bytes(self._body), bytearray()
        raw, self._raw = bytes(self._raw), bytearray()
        try:
            return replace(_parse_escaped_body(body, self.check_modes), raw=raw)
        except FrameError as exc:
            if exc.dst is None:  # bad escape: still say whom it was for when the start is readable
                exc.dst = _dst_of_escaped(body)
            exc.raw = raw
            return exc


def _dst_of_escaped(body: bytes) -> int | None:
    try:
        head = unescape(body[:4])
    except FrameError:
        try:
            head = unescape(body[:3])
        except FrameError:
            return None
    return int.from_bytes(head[:2], "little") if len(head) >= 2 else None


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
            f"text is {len(text)} bytes, the display's dynamic area holds {max_text_bytes}"
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


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def _serial_io_errors() -> tuple[type[BaseException], ...]:
    """Exceptions pyserial lets out when the port misbehaves or vanishes (a pulled USB adapter
    gives termios.error from tcflush, which is not an OSError)."""
    import serial

    errors: tuple[type[BaseException], ...] = (serial.SerialException, OSError)
    try:
        import termios

        errors += (termios.error,)
    except ImportError:  # pragma: no cover - not POSIX
        pass
    return errors


class _SerialBus:
    """One serial port shared by every display on it (RS485 multi-drop: one DstAddr each).

    Serial I/O runs in worker threads; ``lock`` (asyncio) queues requests and ``io_lock``
    (threading) guarantees one transaction on the wire even if an awaiting task was cancelled
    while its thread still runs.
    """

    _buses: ClassVar[dict[str, "_SerialBus"]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, port: str, baudrate: int) -> None:
        self.port = port
        self.baudrate = baudrate
        self.users = 0
        self.serial: Any = None
        self.reader = FrameReader(check_modes=CRC_ONLY)  # we send CRC; trust only CRC replies
        self.lock = asyncio.Lock()
        self.io_lock = threading.Lock()

    @classmethod
    def acquire(cls, port: str, baudrate: int) -> "_SerialBus":
        with cls._registry_lock:
            bus = cls._buses.get(port)
            if bus is None:
                bus = cls._buses[port] = cls(port, baudrate)
            bus.users += 1
            return bus

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            self._buses.pop(self.port, None)
        self.close_blocking()

    def open_blocking(self) -> None:
        import serial  # pyserial; imported here so importing the module stays cheap

        with self.io_lock:
            if self.serial is not None:
                return
            try:
                self.serial = serial.Serial(
                    self.port, self.baudrate, bytesize=8, parity="N", stopbits=1, timeout=0.1
                )
            except _serial_io_errors() as exc:
                raise DeviceOffline(f"cannot open {self.port}: {exc}", port=self.port) from exc

    def set_baudrate_blocking(self, baudrate: int) -> None:
        with self.io_lock:
            self.baudrate = baudrate
            if self.serial is not None:
                self.serial.baudrate = baudrate

    def close_blocking(self) -> None:
        with self.io_lock:
            ser, self.serial = self.serial, None
            if ser is not None:
                try:
                    ser.close()
                except _serial_io_errors():
                    pass

    def transact_blocking(
        self, frame: bytes, *, expect_reply: bool, timeout: float, accept: Any
    ) -> Frame | None:
        """Write one request and wait for the reply ``accept(frame)`` recognises."""
        with self.io_lock:
            ser = self.serial
            if ser is None:
                raise DeviceOffline(f"{self.port} is not open", port=self.port)
            try:
                ser.reset_input_buffer()  # a late reply to an earlier, timed-out request
                self.reader.reset()
                ser.write(frame)
                ser.flush()
                if not expect_reply:
                    return None
                deadline = time.monotonic() + timeout
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeviceTimeout(
                            f"no reply from the display on {self.port} within {timeout:g} s",
                            port=self.port,
                        )
                    ser.timeout = min(remaining, 0.2)
                    chunk = ser.read(1)
                    if not chunk:
                        continue
                    chunk += ser.read(ser.in_waiting)
                    for item in self.reader.feed(chunk):
                        if isinstance(item, FrameError):
                            raise item
                        if accept(item):
                            return item
                        # else: traffic for another host / our own RS485 echo: ignore
            except HallctlError:
                raise  # (our errors are OSErrors too: DeviceError is an IOError)
            except _serial_io_errors() as exc:
                raise DeviceOffline(f"serial I/O on {self.port} failed: {exc}") from exc


class OnbonBxDisplay(Driver):
    """A BX-5K/6K window bar. One instance per display (DstAddr); displays on one port share it.

    Settings (firmware profile, see firmware_profiles/onbon-bx-*.toml): baudrate,
    fallback_baudrates, device_type, width, height, font, ascii_font, color, text_align,
    reply_timeout_s, retries, area_capacity_bytes, rx_buffer_bytes, max_dynamic_areas.
    Options (node config): port (required), address (DstAddr, default 1), width/height
    overrides, area_id (dynamic area, default 0).
    """

    kind: ClassVar[str] = "window_display"
    actions: ClassVar[tuple[str, ...]] = ("show", "clear", "ping", "status", "brightness")

    def __init__(self, settings: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        super().__init__(settings, options)
        s, o = self.settings, self.options

        def num(src: Mapping[str, Any], key: str, default: Any, lo: float, hi: float) -> Any:
            v = src.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                where = "options" if src is o else "settings"
                raise ConfigError(f"must be a number {lo}..{hi}, got {v!r}", key=f"{where}.{key}")
            return v

        port = o.get("port")
        if not isinstance(port, str) or not port:
            raise ConfigError(
                "a serial port path is required (e.g. /dev/ttyUSB0)", key="options.port"
            )
        self.port: str = port
        # 0x0000 is reserved, 0xFFFF is the broadcast nobody answers (§4, §10.1)
        self.address: int = int(num(o, "address", 1, 1, 0xFFFE))
        self.width: int = int(num(o, "width", num(s, "width", 128, 8, 0x7FFF), 8, 0x7FFF))
        self.height: int = int(num(o, "height", num(s, "height", 32, 8, 0xFFFF), 8, 0xFFFF))
        self.baudrate: int = int(num(s, "baudrate", 57600, 1200, 921600))
        fallbacks = s.get("fallback_baudrates", [9600])
        if not isinstance(fallbacks, list) or not all(isinstance(b, int) for b in fallbacks):
            raise ConfigError("must be a list of integers", key="settings.fallback_baudrates")
        self.fallback_baudrates: list[int] = [b for b in fallbacks if b != self.baudrate]
        self.device_type: int = int(num(s, "device_type", DEVICE_TYPE_ANY, 0, 0xFF))
        self.src_address: int = int(num(s, "src_address", ADDR_PC, 0x8000, 0xDFFF))
        self.reply_timeout: float = float(num(s, "reply_timeout_s", 2.0, 0.01, 60))
        self.retries: int = int(num(s, "retries", 1, 0, 5))
        self.area_capacity: int = int(num(s, "area_capacity_bytes", 512, 16, 0xFFFF))
        self.rx_buffer: int = int(num(s, "rx_buffer_bytes", 512, 32, 0xFFFF))
        max_areas = int(num(s, "max_dynamic_areas", 5, 1, 255))
        self.area_id: int = int(num(o, "area_id", 0, 0, max_areas - 1))
        self.font: str | None = s.get("font", "O000") or None
        self.ascii_font: str | None = s.get("ascii_font") or None
        for key, f in (("font", self.font), ("ascii_font", self.ascii_font)):
            if f is not None and (not isinstance(f, str) or not _FONT_RE.match(f)):
                raise ConfigError(
                    f"font file name like O000 expected, got {f!r}", key=f"settings.{key}"
                )
        color = s.get("color", 1)
        if color is not None and color not in range(1, 8):
            raise ConfigError(
                f"colour code 1..7 expected (§11.1), got {color!r}", key="settings.color"
            )
        self.color: int | None = color
        align = s.get("text_align", "center")
        if align not in ALIGN_H:
            raise ConfigError(
                f"one of {sorted(ALIGN_H)} expected, got {align!r}", key="settings.text_align"
            )
        self.align: int = text_alignment(align, "center")
        self._bus: _SerialBus | None = None
        self._last_lines: list[str] | None = None
        # show/clear/restore of *this* display, so probe() never re-sends lines an app has just
        # replaced (the bus lock alone would let a stale restore queue behind a fresh show)
        self._text_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the port and PING; on silence try the fallback baud rates (§8.8)."""
        if self._bus is not None:
            return
        bus = _SerialBus.acquire(self.port, self.baudrate)
        self._bus = bus
        try:
            await asyncio.to_thread(bus.open_blocking)
            rates = [bus.baudrate]
            if bus.users == 1:  # only re-tune a port nobody else is using
                rates += [b for b in [self.baudrate, *self.fallback_baudrates] if b not in rates]
            last: HallctlError | None = None
            for rate in rates:
                if rate != bus.baudrate:
                    await asyncio.to_thread(bus.set_baudrate_blocking, rate)
                try:
                    await self._request(*CMD_PING)
                    return
                except DeviceTimeout as exc:
                    last = exc
            assert last is not None
            tried = ", ".join(str(r) for r in rates)
            raise DeviceTimeout(
                f"display {self.address} on {self.port} did not answer PING (baud {tried})",
                port=self.port,
                address=self.address,
            ) from last
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            async with bus.lock:
                await asyncio.to_thread(bus.release)

    async def probe(self) -> ProbeResult:
        """PING; if the display answers but has lost what we showed (it rebooted: dynamic
        areas live in RAM, §8.2.1), show it again and report degraded."""
        detail = {"port": self.port, "address": self.address}
        if self._bus is None:
            return ProbeResult(Health.FAULT, "not started", detail)
        try:
            await self._request(*CMD_PING)
        except HallctlError as exc:
            return ProbeResult(Health.FAULT, exc.message, {**detail, "code": exc.code})
        async with self._text_lock:
            if self._last_lines is not None:
                try:
                    status = parse_status((await self._request(*CMD_STATUS)).data)
                except HallctlError:
                    status = {}  # status is optional for health; PING already answered
                if status.get("dynamic_areas") == []:
                    try:
                        await self._send_lines(self._last_lines)
                    except HallctlError as exc:
                        return ProbeResult(
                            Health.FAULT,
                            f"display lost its text; re-sending failed: {exc.message}",
                            detail,
                        )
                    return ProbeResult(
                        Health.DEGRADED, "display had lost its text (reboot?); shown again",
                        {**detail, "restored": True},
                    )
        return ProbeResult(Health.OK, "ping answered", detail)

    async def execute(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action not in self.actions:
            raise UnknownCommand(f"window display does not implement {action!r}")
        if not isinstance(args, Mapping):
            raise BadRequest("arguments must be an object")
        if action == "show":
            lines = args.get("lines")
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise BadRequest('"lines" must be a list of strings')
            n = await self._show(lines)
            return {"acked": True, "bytes": n}
        if action == "clear":
            async with self._text_lock:
                await self._request(*CMD_CLEAR)
                self._last_lines = None
            return {"acked": True}
        if action == "ping":
            await self._request(*CMD_PING)
            return {"acked": True}
        if action == "status":
            return parse_status((await self._request(*CMD_STATUS)).data)
        # brightness (§8.17): type 01 = set now, value 0..15
        level = args.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 15:
            raise BadRequest('"level" must be an integer 0..15')
        await self._request(*CMD_BRIGHTNESS, bytes([0x01, level]))
        return {"acked": True, "level": level}

    async def show_lines(self, lines: list[str]) -> dict[str, Any]:
        """Show ``lines`` (one per row), e.g. ``["A012", "请到3号窗口"]``."""
        return await self.execute("show", {"lines": list(lines)})

    # -- internals --------------------------------------------------------------------------

    def show_payload(self, lines: Sequence[str]) -> bytes:
        """The A3 06 data this driver sends for ``lines`` (public so tests can compare bytes)."""
        payload = dynamic_area_payload(
            lines,
            width=self.width,
            height=self.height,
            area_id=self.area_id,
            font=self.font,
            ascii_font=self.ascii_font,
            color=self.color,
            align=self.align,
            run_mode=1,
            max_text_bytes=self.area_capacity,
        )
        if CMD_PREFIX_LEN + len(payload) > self.rx_buffer:
            raise BadRequest(
                f"request of {CMD_PREFIX_LEN + len(payload)} bytes exceeds the display's "
                f"{self.rx_buffer}-byte receive buffer"
            )
        return payload

    def build(self, cmd_group: int, cmd: int, data: bytes = b"") -> bytes:
        """The exact frame this driver puts on the wire for a command."""
        return build_frame(
            cmd_group, cmd, data, dst=self.address, src=self.src_address,
            device_type=self.device_type,
        )

    async def _show(self, lines: Sequence[str]) -> int:
        async with self._text_lock:
            return await self._send_lines(lines)

    async def _send_lines(self, lines: Sequence[str]) -> int:
        payload = self.show_payload(lines)
        n = len(self.build(*CMD_DYNAMIC_AREA, payload))
        await self._request(*CMD_DYNAMIC_AREA, payload)
        self._last_lines = list(lines)
        return n

    def _accept(self, reply: Frame, request: tuple[int, int]) -> bool:
        if reply.dst != self.src_address:
            return False  # our own echo on a half-duplex adapter, or another host's traffic
        if reply.src not in (self.address, ADDR_BROADCAST_REPLY):
            return False
        return reply.command in (CMD_ACK, CMD_NACK, request)

    async def _request(self, cmd_group: int, cmd: int, data: bytes = b"") -> Frame:
        """Send one command and return the reply; NACK -> NackError (DeviceError)."""
        bus = self._bus
        if bus is None:
            raise DeviceOffline(f"display {self.address} on {self.port} is not started")
        frame = self.build(cmd_group, cmd, data)
        attempts = 1 + self.retries
        for attempt in range(attempts):
            async with bus.lock:
                if bus.serial is None:
                    await asyncio.to_thread(bus.open_blocking)
                try:
                    reply = await asyncio.to_thread(
                        bus.transact_blocking,
                        frame,
                        expect_reply=True,
                        timeout=self.reply_timeout,
                        accept=lambda f: self._accept(f, (cmd_group, cmd)),
                    )
                except FrameError:
                    if attempt + 1 < attempts:
                        continue  # line noise on the reply: ask again
                    raise
                except DeviceOffline:
                    await asyncio.to_thread(bus.close_blocking)  # reopen on the next request
                    raise
            assert reply is not None
            if reply.is_nack or reply.error != 0:
                if reply.error == ERR_CHECKSUM and attempt + 1 < attempts:
                    continue  # our request was garbled on the line: resend
                raise NackError(reply.error, request=(cmd_group, cmd))
            return reply
        raise AssertionError("unreachable")  # pragma: no cover
