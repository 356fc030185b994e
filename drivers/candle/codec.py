"""Candle/QSystem-type RS485 window boards: frames, glyphs and a stream parser. Bytes only, no I/O.

Facts from the vendor manual [CANDLE] ("Электронное табло управления очередью. Техническое
описание", Candle 2010-2012, in ``alkumaish/apertum-qsystem.rs485-plugin:protokol.pdf``) and
QSystem's production driver [PLUG] (same repository, ``Sender485.java``); summary in
shared/reference/protocols.md §3.7. Host -> board only: there is no checksum and no reply.

    set data     01 AA BL d0 .. dN 07     AA address 20..7F, BL blink mode 20..7F   [CANDLE] §3 p.5
    brightness   02 AA LV 07              LV 20 (max) .. 23 (min), kept in EEPROM   [CANDLE] §4 p.8
    new address  03 AA|FF NN 07           FF = every board on the bus, kept         [CANDLE] §5 p.8

Bytes below 0x20 are only start and end markers, so they never occur inside a frame ([CANDLE]
§3 p.5): the parser resynchronises on ``01``/``02``/``03`` and ends a frame at ``07``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from hallctl.errors import BadRequest

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

SET_DATA, SET_BRIGHTNESS, SET_ADDRESS, END = 0x01, 0x02, 0x03, 0x07
STARTS = frozenset({SET_DATA, SET_BRIGHTNESS, SET_ADDRESS})
#: the board address range, and the "every board" address of a renumbering frame
ADDRESS_MIN, ADDRESS_MAX, ADDRESS_ALL = 0x20, 0x7F, 0xFF
#: brightness codes: 20 is the brightest, 23 the dimmest ([CANDLE] §4 p.8)
BRIGHTEST, DIMMEST = 0x20, 0x23
#: blink mode byte: 20 steady, 21 blink until the next frame, 22..7F blink (byte - 0x21) times
BLINK_STEADY, BLINK_CONTINUOUS = 0x20, 0x21
#: the kind's ``blink`` argument for "until the next show" (the board's 21)
BLINK_FOREVER = -1
MAX_BLINKS = 0x7F - BLINK_CONTINUOUS  # 94
#: longer than any real frame (QSystem sends 11 bytes); a longer run is line noise
MAX_FRAME = 64

#: the glyphs the manual's table lists ([CANDLE] p.7), as the character each byte shows. Space is
#: not in the table but every driver blanks a position with it ([PLUG] Sender485.java).
GLYPHS: dict[str, int] = {
    " ": 0x20,
    **{str(d): 0x30 + d for d in range(10)},
    **{c: ord(c) for c in "ABCEFHILOPSU" "bcdlo"},
    **{c: c.encode("cp1251")[0] for c in "АБВГЕЗНОПРСУЧ" "ос"},
}
#: what the arrow module shows ([CANDLE] p.5; [PLUG] Sender485.java:47-48)
ARROWS: dict[str, int] = {"<": 0x3C, ">": 0x3E, "-": 0x2D, " ": 0x20}
_GLYPH_OF = {b: c for c, b in GLYPHS.items()}
_ARROW_OF = {b: c for c, b in ARROWS.items()}


class GlyphError(BadRequest):
    """A character the board has no glyph for (``detail.character``)."""


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def glyph_byte(ch: str) -> int:
    """The byte that shows ``ch`` on a digit module. A Latin or Cyrillic letter the table has
    only in the other case is shown in that case ('D' as 'd', 'a' as 'A'): that is how every
    7-segment display writes them. Anything else raises :class:`GlyphError` naming it."""
    if ch in GLYPHS:
        return GLYPHS[ch]
    other = ch.swapcase()
    if len(ch) == 1 and len(other) == 1 and other in GLYPHS and other != " ":
        return GLYPHS[other]
    shown = "".join(c for c in GLYPHS if c != " ")
    raise GlyphError(f"character {ch!r} cannot be shown on a 7-segment window board (it shows {shown} "
                     "and space)", character=ch)


def encode_glyphs(text: str) -> bytes:
    """``text`` as digit-module bytes (cp1251, restricted to the manual's glyph table)."""
    return bytes(glyph_byte(ch) for ch in text)


def arrow_byte(ch: str) -> int:
    """The byte for the arrow module: '<' left, '>' right, '-' no direction, ' ' dark."""
    try:
        return ARROWS[ch]
    except KeyError:
        raise GlyphError(f"the arrow module shows '<', '>', '-' or a space, not {ch!r}", character=ch) from None


def glyph_of(byte: int) -> str | None:
    """What a digit module shows for ``byte``; None for a byte outside the manual's table."""
    return _GLYPH_OF.get(byte)


def arrow_of(byte: int) -> str | None:
    """What the arrow module shows for ``byte``; None for anything but < > - and space."""
    return _ARROW_OF.get(byte)


# --------------------------------------------------------------------------------------------
# Frames (host -> board)
# --------------------------------------------------------------------------------------------


def _address(value: int, *, allow_all: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"a board address is an integer, got {value!r}")
    if ADDRESS_MIN <= value <= ADDRESS_MAX or (allow_all and value == ADDRESS_ALL):
        return value
    allowed = "0x20..0x7F" + (" or 0xFF (every board)" if allow_all else "")
    raise BadRequest(f"board address must be {allowed}, got 0x{value:X}" if value >= 0
                     else f"board address must be {allowed}, got {value}")


def blink_code(times: int) -> int:
    """The blink mode byte for the kind's ``blink``: 0 steady, -1 until the next frame, n > 0
    blink n times then steady (byte 0x21 + n, at most 94 times)."""
    if isinstance(times, bool) or not isinstance(times, int) or not BLINK_FOREVER <= times <= MAX_BLINKS:
        raise BadRequest(f"blink must be -1 (until the next show), 0 (steady) or 1..{MAX_BLINKS} times, got {times!r}")
    if times == 0:
        return BLINK_STEADY
    if times == BLINK_FOREVER:
        return BLINK_CONTINUOUS
    return BLINK_CONTINUOUS + times


def blink_times(code: int) -> int:
    """Inverse of :func:`blink_code`: 0 steady, -1 continuous, n times."""
    if not BLINK_STEADY <= code <= 0x7F:
        raise BadRequest(f"blink mode byte must be 0x20..0x7F, got 0x{code:02X}")
    if code == BLINK_STEADY:
        return 0
    if code == BLINK_CONTINUOUS:
        return BLINK_FOREVER
    return code - BLINK_CONTINUOUS


def set_data_frame(address: int, data: bytes, blink: int = BLINK_STEADY) -> bytes:
    """``01 AA BL data 07``: the board overwrites, left to right, as many positions as ``data``
    has bytes; the rest keep what they showed ([CANDLE] p.6). ``blink`` is the mode byte."""
    data = bytes(data)
    if not BLINK_STEADY <= blink <= 0x7F:
        raise BadRequest(f"blink mode byte must be 0x20..0x7F, got 0x{blink:02X}")
    low = [b for b in data if b < 0x20]
    if low:
        raise BadRequest(f"data byte 0x{low[0]:02X} is below 0x20: such bytes only mark a frame's start and end")
    if len(data) > MAX_FRAME - 4:
        raise BadRequest(f"{len(data)} data bytes is more than any board shows")
    return bytes([SET_DATA, _address(address), blink]) + data + bytes([END])


def brightness_frame(address: int, code: int) -> bytes:
    """``02 AA LV 07``, LV 0x20 (brightest) .. 0x23 (dimmest)."""
    if isinstance(code, bool) or not isinstance(code, int) or not BRIGHTEST <= code <= DIMMEST:
        raise BadRequest(f"brightness code must be 0x20 (max) .. 0x23 (min), got {code!r}")
    return bytes([SET_BRIGHTNESS, _address(address), code, END])


def brightness_code(level: int) -> int:
    """The kind's ``level`` 0..15 on the board's four steps: 12..15 -> 20 (max), 8..11 -> 21,
    4..7 -> 22, 0..3 -> 23 (min). Level 0 is the dimmest step, not dark: the board cannot go dark."""
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 15:
        raise BadRequest(f"level must be an integer 0..15, got {level!r}")
    return DIMMEST - level // 4


def address_frame(current: int, new: int) -> bytes:
    """``03 AA NN 07`` (``current`` = 0xFF: every board on the bus takes ``new``)."""
    return bytes([SET_ADDRESS, _address(current, allow_all=True), _address(new), END])


# --------------------------------------------------------------------------------------------
# Parsing (the emulator's side)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetData:
    address: int
    blink: int  # the mode byte
    data: bytes
    raw: bytes


@dataclass(frozen=True)
class SetBrightness:
    address: int
    code: int
    raw: bytes


@dataclass(frozen=True)
class SetAddress:
    address: int  # 0xFF: every board
    new: int
    raw: bytes


Frame = Union[SetData, SetBrightness, SetAddress]


class FrameError(ValueError):
    """A run of bytes that is not a valid frame (``reason``: cut, control, too_long, invalid)."""

    def __init__(self, message: str, *, reason: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.reason, self.raw = reason, raw


def parse_frame(raw: bytes) -> Frame:
    """Decode exactly one frame (start byte .. 07); :class:`FrameError` otherwise."""
    raw = bytes(raw)
    if len(raw) < 2 or raw[0] not in STARTS or raw[-1] != END:
        raise FrameError("a frame starts with 01, 02 or 03 and ends with 07", reason="invalid", raw=raw)
    body = raw[1:-1]
    if any(b < 0x20 for b in body):
        raise FrameError("a byte below 0x20 inside a frame", reason="control", raw=raw)

    def bad(message: str) -> FrameError:
        return FrameError(message, reason="invalid", raw=raw)

    def address_ok(b: int) -> bool:
        return ADDRESS_MIN <= b <= ADDRESS_MAX

    if raw[0] == SET_DATA:
        if len(body) < 2:
            raise bad("a data frame needs an address and a blink mode")
        if not address_ok(body[0]):
            raise bad(f"address 0x{body[0]:02X} outside 0x20..0x7F")
        if not BLINK_STEADY <= body[1] <= 0x7F:
            raise bad(f"blink mode 0x{body[1]:02X} outside 0x20..0x7F")
        return SetData(body[0], body[1], body[2:], raw)
    if len(body) != 2:
        raise bad(f"a {'brightness' if raw[0] == SET_BRIGHTNESS else 'new-address'} frame has 2 bytes "
                  f"between start and end, not {len(body)}")
    if raw[0] == SET_BRIGHTNESS:
        if not address_ok(body[0]):
            raise bad(f"address 0x{body[0]:02X} outside 0x20..0x7F")
        if not BRIGHTEST <= body[1] <= DIMMEST:
            raise bad(f"brightness 0x{body[1]:02X} outside 0x20..0x23")
        return SetBrightness(body[0], body[1], raw)
    if not (address_ok(body[0]) or body[0] == ADDRESS_ALL):
        raise bad(f"address 0x{body[0]:02X} is neither 0x20..0x7F nor 0xFF")
    if not address_ok(body[1]):
        raise bad(f"new address 0x{body[1]:02X} outside 0x20..0x7F")
    return SetAddress(body[0], body[1], raw)


class FrameParser:
    """A board's receiver: feed any chunks, get frames and errors back (never raised).

    Bytes before a start byte are dropped. A start byte inside a frame cuts the frame short and
    begins the next one (resynchronisation); another byte below 0x20 breaks the frame; a frame
    longer than :data:`MAX_FRAME` is noise. Memory is bounded by ``MAX_FRAME``.
    """

    def __init__(self) -> None:
        self._buf: bytearray | None = None

    def reset(self) -> None:
        """Forget a frame in progress (a framing error, a power cycle)."""
        self._buf = None

    def feed(self, chunk: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        for b in bytes(chunk):
            buf = self._buf
            if buf is None:
                if b in STARTS:
                    self._buf = bytearray([b])
                continue
            if b == END:
                buf.append(b)
                self._buf = None
                try:
                    out.append(parse_frame(bytes(buf)))
                except FrameError as exc:
                    out.append(exc)
            elif b in STARTS:
                out.append(FrameError(f"frame cut short after {len(buf)} bytes (a new start byte 0x{b:02X})",
                                      reason="cut", raw=bytes(buf)))
                self._buf = bytearray([b])
            elif b < 0x20:
                buf.append(b)
                out.append(FrameError(f"control byte 0x{b:02X} inside a frame", reason="control", raw=bytes(buf)))
                self._buf = None
            else:
                buf.append(b)
                if len(buf) > MAX_FRAME:
                    out.append(FrameError(f"no end byte within {MAX_FRAME} bytes", reason="too_long", raw=bytes(buf)))
                    self._buf = None
        return out
