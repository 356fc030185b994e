"""Onbon BX-5K/6K wire format: constants, CRC-16/ARC, escaping, frames, a streaming reader (§3-§7)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import AbstractSet

from hallctl.errors import (
    BadRequest,
    DeviceError,
)


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
