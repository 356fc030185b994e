"""The bytes of QSystem-type RS485 keypads (QSystem's ``ub485`` server; no vendor manual exists).

Every fact is from QSystem's source, summarised in shared/reference/protocols.md §3.8:
[QS] binali-rustamov/apertum-qsystem (ub485 at 6fc493e = 1.3.4, feb3f58 = 1.3.7, d57d9dd = 1.4.1),
[QSC] GuzIlya/QSYSTEM-core (the same logic, 2020).

Keypad -> host, a key press, exactly 4 bytes ([QS] ``ActionTransmit.java:28-39``)::

    01 AA KK 07          AA address (a byte >= 0x20), KK the key in ASCII: '1'..'4'

Host -> keypad, never acknowledged ([QS] ``ButtonDevice.java``, ``UBForm.java:892-929``)::

    01 AA CC 07          LED: CC = 0x30 + state (+ 7 with a 500 ms beep), see LED_STATES
    01 AA BL t.. 07      display: BL 0x20 steady, 0x21 blinking; t.. cp1251 text
    03 old new 07        change a keypad's address (QSystem's test tool, UBForm.java:1033-1037)
    04 AA 07             poll (test tool only; what a keypad answers is unknown)

Bytes below 0x20 are framing codes, so an address or a text byte is never one of them.
This module does no I/O; :class:`PressFramer` (the host's side) and :class:`HostFrameReader`
(the keypad's side, for the emulator) take a byte stream in any chunking, with noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "START", "END", "RENUMBER", "POLL", "ADDRESS_MIN", "ADDRESS_MAX", "LED_STATES", "BLANK",
    "KeyPress", "LedCommand", "DisplayCommand", "Renumber", "Poll", "Garbage", "CodecError",
    "key_frame", "led_frame", "parse_led_code", "display_frame", "fit_text", "renumber_frame",
    "poll_frame", "PressFramer", "HostFrameReader",
]

START, END, RENUMBER, POLL = 0x01, 0x07, 0x03, 0x04
#: the address range QSystem's host can use: qub.adr's value is parsed as a signed Java byte and
#: bytes below 0x20 are framing codes ([QS] AddrProp.java:33,55-62)
ADDRESS_MIN, ADDRESS_MAX = 0x20, 0x7F
#: LED state -> CC offset from 0x30 ([QS] ButtonDevice.java:59-76, the table in its comment);
#: "blink" is the 200 ms period, "blink_slow" 500 ms
LED_STATES: dict[str, int] = {
    "off": 0, "red": 1, "green": 2, "red_blink": 3, "green_blink": 4, "red_blink_slow": 5,
    "green_blink_slow": 6,
}
_LED_NAMES = {v: k for k, v in LED_STATES.items()}
_LED_BASE, _BEEP = 0x30, 7
BLINK_STEADY, BLINK_ON = 0x20, 0x21
#: a blank display is sent as four spaces, not three: 01 AA 20 20 20 20 20 07 ([QS] d57d9dd
#: ButtonDevice.lightDown, "123    7")
BLANK = b"    "
#: the longest host frame the keypad side accepts before calling it noise
_MAX_HOST_FRAME = 64


class CodecError(ValueError):
    """A value that cannot be put on the wire (an address out of range, text cp1251 lacks)."""


@dataclass(frozen=True)
class KeyPress:
    address: int
    key: str


@dataclass(frozen=True)
class LedCommand:
    address: int
    state: str
    beep: bool
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class DisplayCommand:
    """``blink``: 0 steady, 1 blinking; 2.. = blinks ``blink - 1`` times (BL 0x22..0x7F, per
    the comment in [QS] d57d9dd ButtonDevice.java; QSystem itself sends only 0x20 and 0x21)."""

    address: int
    text: str
    blink: int
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class Renumber:
    old: int
    new: int


@dataclass(frozen=True)
class Poll:
    address: int


@dataclass(frozen=True)
class Garbage:
    """Bytes that are no frame (line noise, a collision, a frame cut short)."""

    data: bytes


def _address(address: int) -> int:
    if isinstance(address, bool) or not isinstance(address, int) or not ADDRESS_MIN <= address <= ADDRESS_MAX:
        raise CodecError(f"keypad address must be 0x{ADDRESS_MIN:02X}..0x{ADDRESS_MAX:02X}, got {address!r}")
    return address


def key_frame(address: int, key: str) -> bytes:
    """What a keypad sends when ``key`` ('1'..'4') is pressed: ``01 AA KK 07``."""
    if len(key) != 1 or not 0x21 <= ord(key) <= 0x7E:
        raise CodecError(f"a key is one printable ASCII character, got {key!r}")
    return bytes([START, _address(address), ord(key), END])


def led_frame(address: int, state: str, beep: bool = False) -> bytes:
    """The LED command, e.g. ``led_frame(0x22, "green_blink_slow") == 01 22 36 07``."""
    if state not in LED_STATES:
        raise CodecError(f"LED state must be one of {', '.join(LED_STATES)}, got {state!r}")
    return bytes([START, _address(address), _LED_BASE + LED_STATES[state] + (_BEEP if beep else 0), END])


def parse_led_code(cc: int) -> tuple[str, bool] | None:
    """``(state, beep)`` of an LED command byte 0x30..0x3D, else None."""
    n = cc - _LED_BASE
    if not 0 <= n <= 13:
        return None
    return _LED_NAMES[n % _BEEP], n >= _BEEP


def fit_text(text: str, width: int = 3) -> str:
    """What the keypad shows of ``text``: the first ``width`` characters, padded with spaces, as
    QSystem cuts a ticket number ([QS] d57d9dd: ``(number + "    ").substring(0, 3)``); ``""`` is
    blank."""
    return "" if text == "" else text[:width].ljust(width)


def display_frame(address: int, text: str, blink: bool = False, width: int = 3) -> bytes:
    """The display frame: ``display_frame(0x22, "A12", blink=True) == 01 22 21 41 31 32 07``.
    Text is cut to ``width`` (:func:`fit_text`); empty text blanks the display with four spaces.
    Raises CodecError for a character cp1251 lacks or a control character (it would end the
    frame early)."""
    shown = fit_text(text, width)
    for ch in shown:
        if ord(ch) < 0x20 or ch == "\x7f":
            raise CodecError(f"control character {ch!r} cannot be shown")
        try:
            ch.encode("cp1251")
        except UnicodeEncodeError:
            raise CodecError(f"the keypad's display (cp1251) has no {ch!r}") from None
    body = shown.encode("cp1251") if shown else BLANK
    return bytes([START, _address(address), BLINK_ON if blink else BLINK_STEADY]) + body + bytes([END])


def renumber_frame(old: int, new: int) -> bytes:
    """``03 old new 07``: the keypad at ``old`` takes ``new`` (QSystem's test tool)."""
    return bytes([RENUMBER, _address(old), _address(new), END])


def poll_frame(address: int) -> bytes:
    """``04 AA 07`` (QSystem's test tool; the keypad's answer is not documented anywhere)."""
    return bytes([POLL, _address(address), END])


class PressFramer:
    """The host's reader: finds ``01 AA KK 07`` in a stream, whatever the chunking, and skips
    anything else (noise, collisions, our own LED frames echoed by a half-duplex adapter are
    the caller's to drop). Holds at most 3 bytes between calls; :meth:`reset` drops them (the
    driver does so when the line has been quiet: a frame is written at once, never in pieces
    seconds apart)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        #: bytes skipped as noise since the start
        self.skipped = 0

    def reset(self) -> None:
        self.skipped += len(self._buf)
        self._buf.clear()

    def feed(self, chunk: bytes) -> list[KeyPress]:
        buf = self._buf
        buf += chunk
        out: list[KeyPress] = []
        i = 0
        while len(buf) - i >= 4:
            if buf[i] == START and buf[i + 3] == END and buf[i + 1] >= ADDRESS_MIN and 0x21 <= buf[i + 2] <= 0x7E:
                out.append(KeyPress(buf[i + 1], chr(buf[i + 2])))
                i += 4
            else:
                i += 1
                self.skipped += 1
        # keep a possible frame start only: a tail without 01 can never become a frame
        tail = buf[i:]
        start = tail.find(START)
        self.skipped += len(tail) if start < 0 else start
        self._buf = bytearray(tail[start:]) if start >= 0 else bytearray()
        return out


class HostFrameReader:
    """The keypad's reader (for the emulator): frames start with 01, 03 or 04 and end at the next
    07; anything else, or a frame longer than 64 bytes, comes out as :class:`Garbage`."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, chunk: bytes) -> list[LedCommand | DisplayCommand | Renumber | Poll | Garbage]:
        buf = self._buf
        buf += chunk
        out: list[LedCommand | DisplayCommand | Renumber | Poll | Garbage] = []
        while buf:
            if buf[0] not in (START, RENUMBER, POLL):
                n = next((j for j, b in enumerate(buf) if b in (START, RENUMBER, POLL)), len(buf))
                out.append(Garbage(bytes(buf[:n])))
                del buf[:n]
                continue
            end = buf.find(END, 1)
            if end < 0:
                if len(buf) > _MAX_HOST_FRAME:
                    out.append(Garbage(bytes(buf)))
                    buf.clear()
                break  # the rest of the frame is still on its way
            frame = bytes(buf[: end + 1])
            del buf[: end + 1]
            out.append(_host_frame(frame))
        return out


def _host_frame(frame: bytes) -> LedCommand | DisplayCommand | Renumber | Poll | Garbage:
    op, n = frame[0], len(frame)
    if op == RENUMBER and n == 4 and frame[1] >= ADDRESS_MIN and frame[2] >= ADDRESS_MIN:
        return Renumber(frame[1], frame[2])
    if op == POLL and n == 3 and frame[1] >= ADDRESS_MIN:
        return Poll(frame[1])
    if op != START or n < 4 or frame[1] < ADDRESS_MIN:
        return Garbage(frame)
    if n == 4:  # by length: 01 AA 3x 07 is an LED command (protocols.md §3.8, "Unknown")
        led = parse_led_code(frame[2])
        return LedCommand(frame[1], *led, raw=frame) if led else Garbage(frame)
    text = frame[3:-1]
    if not 0x20 <= frame[2] <= 0x7F or any(b < 0x20 for b in text):
        return Garbage(frame)
    return DisplayCommand(frame[1], text.decode("cp1251", errors="replace"), frame[2] - BLINK_STEADY, raw=frame)
