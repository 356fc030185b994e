"""An RS485 bus of Candle window boards, on a pty, for tests and the demo.

Lives beside the codec it shares; the driver never imports it. What it does follows the
"honest emulator" recommendation of shared/reference/protocols.md §3.7:

* every board has its own receiver (:class:`~hallctl_drivers.candle.codec.FrameParser`): it
  resynchronises on 01/02/03, ends a frame at 07 and acts only on frames for its address;
* it never replies, not even to a broken frame;
* a data frame overwrites positions left to right, as many as it has bytes; the rest keep their
  content ([CANDLE] p.6); bytes beyond the board's width are logged and dropped;
* only the manual's glyphs are rendered: a byte outside the table is logged and shows as U+FFFD
  (what the real board shows for it is not documented, so it is not guessed);
* blink mode (steady, a count, until the next frame) and brightness 20..23 are kept per board;
* ``03 AA NN 07`` renumbers board AA, ``03 FF NN 07`` every board; addresses and brightness are
  non-volatile and survive :meth:`CandleBus.power_cycle`; what the board shows does not (what a
  board shows at power-up is not documented: here, blank);
* a board whose jumper speed differs from the host's line speed (read from the pty's termios, as
  pyserial set it) hears only framing noise: nothing it receives decodes.

Nothing here models time: the blink period is not documented, so a board reports the blink mode
it was given (:attr:`Board.blink`), not a phase.
"""

from __future__ import annotations

import logging
import termios
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from hallctl_drivers.candle.codec import (
    ADDRESS_ALL,
    BRIGHTEST,
    Frame,
    FrameError,
    FrameParser,
    SetAddress,
    SetBrightness,
    SetData,
    arrow_of,
    blink_times,
    glyph_of,
)
from hallctl_drivers.candle.layout import Layout
from hallctl_drivers.transports.pty import PtyDevice

log = logging.getLogger(__name__)

#: termios speed constant -> bits per second, for the rates a host might set
_SPEEDS = {getattr(termios, f"B{r}"): r for r in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
           if hasattr(termios, f"B{r}")}
UNKNOWN = "\ufffd"


@dataclass
class CandleFaults:
    """Switches a test flips to make the bus misbehave (the pty's unplug()/replug() pull the
    USB adapter itself)."""

    #: every board hears nothing (the bus cable pulled, the boards' 12 V gone)
    silent: bool = False


@dataclass
class Board:
    """One board: its address, what it shows and what it made of the bytes it heard."""

    address: int
    layout: Layout = field(default_factory=Layout)
    #: the speed its jumper selects ([CANDLE] §1 p.2: 57600 fitted, 19200 without)
    baudrate: int = 57600
    #: brightness code, 0x20 (max) .. 0x23 (min)
    brightness: int = BRIGHTEST
    #: 0 steady, -1 blinking until the next data frame, n: blink n times then steady
    blink: int = 0
    cells: bytearray = field(default_factory=bytearray)
    #: every row it showed after a data frame, with the blink mode it came with
    history: list[tuple[str, int]] = field(default_factory=list)
    #: raw frames it acted on
    frames: list[bytes] = field(default_factory=list)
    #: (position, byte) it was told to show and has no glyph for
    unrendered: list[tuple[int, int]] = field(default_factory=list)
    #: data bytes beyond its width
    overflow: list[bytes] = field(default_factory=list)
    #: broken frames it received (its receiver's errors)
    frame_errors: list[FrameError] = field(default_factory=list)
    #: bytes heard at another speed than its jumper's (framing noise)
    undecodable: int = 0
    _parser: FrameParser = field(default_factory=FrameParser, repr=False)

    def __post_init__(self) -> None:
        if not self.cells:
            self.cells = bytearray(b" " * self.layout.width)

    @property
    def text(self) -> str:
        """What a person reads on the board, one character per position (U+FFFD: no glyph)."""
        out = []
        for i, b in enumerate(self.cells):
            shown = arrow_of(b) if i == self.layout.arrow_index else glyph_of(b)
            out.append(UNKNOWN if shown is None else shown)
        return "".join(out)

    @property
    def brightness_step(self) -> int:
        """0 (brightest) .. 3 (dimmest)."""
        return self.brightness - BRIGHTEST

    # -- what the board does with bytes -------------------------------------------------------

    def hear(self, chunk: bytes) -> None:
        for item in self._parser.feed(chunk):
            if isinstance(item, FrameError):
                self.frame_errors.append(item)
            else:
                self.apply(item)

    def hear_noise(self, n: int) -> None:
        self._parser.reset()  # a framing error breaks any frame in progress
        self.undecodable += n

    def apply(self, frame: Frame) -> None:
        if isinstance(frame, SetAddress):
            if frame.address in (self.address, ADDRESS_ALL):
                self.frames.append(frame.raw)
                log.info("board 0x%02X renumbered to 0x%02X", self.address, frame.new)
                self.address = frame.new
            return
        if frame.address != self.address:
            return
        self.frames.append(frame.raw)
        if isinstance(frame, SetBrightness):
            self.brightness = frame.code
            return
        assert isinstance(frame, SetData)
        width = len(self.cells)
        for i, b in enumerate(frame.data[:width]):
            self.cells[i] = b
            shown = arrow_of(b) if i == self.layout.arrow_index else glyph_of(b)
            if shown is None:
                self.unrendered.append((i, b))
                log.info("board 0x%02X: byte 0x%02X at position %d has no glyph; not shown", self.address, b, i)
        if len(frame.data) > width:
            self.overflow.append(frame.data[width:])
            log.info("board 0x%02X: %d data bytes beyond its %d positions dropped", self.address,
                     len(frame.data) - width, width)
        self.blink = blink_times(frame.blink)
        self.history.append((self.text, self.blink))

    def power_cycle(self) -> None:
        """Power off and on: the row and blink are gone; address and brightness are in EEPROM."""
        self.cells[:] = b" " * len(self.cells)
        self.blink = 0
        self._parser.reset()


class CandleBus(PtyDevice):
    """Candle boards on one pty (a multi-drop RS485 bus); they never answer.

    ``CandleBus([0x21, 0x22, 0x23])`` hosts three 4-digit + arrow + 2-digit boards at 57600
    baud; pass ``layout=Layout(3, False)``, ``baudrate=19200`` or ready-made :class:`Board`
    objects (``boards=[...]``) for other variants on one bus.
    """

    def __init__(self, addresses: Iterable[int] = (0x20,), *, layout: Layout | None = None,
                 baudrate: int = 57600, boards: Iterable[Board] = (), name: str | None = None) -> None:
        super().__init__(name=name)
        self.boards: list[Board] = [Board(a, layout or Layout(), baudrate) for a in addresses] + list(boards)
        self.faults = CandleFaults()
        #: what a sniffer at the host's speed reads on the bus (frames and broken runs), bounded
        self.bus_log: deque[Frame | FrameError] = deque(maxlen=1000)
        self._sniffer = FrameParser()

    def board(self, address: int) -> Board:
        """The (first) board answering to ``address`` now; KeyError if none."""
        with self.cond:
            for b in self.boards:
                if b.address == address:
                    return b
        raise KeyError(f"no board at address 0x{address:02X} (boards: "
                       f"{', '.join(f'0x{b.address:02X}' for b in self.boards)})")

    def power_cycle(self, address: int) -> None:
        with self.cond:
            self.board(address).power_cycle()
            self.cond.notify_all()

    def host_baudrate(self) -> int | None:
        """The speed the host's serial port is set to (None: unknown, or unplugged)."""
        slave = self._slave
        if slave is None:
            return None
        try:
            return _SPEEDS.get(termios.tcgetattr(slave)[5])
        except termios.error:
            return None

    def handle(self, chunk: bytes) -> bytes | None:
        if self.faults.silent:
            for b in self.boards:
                b._parser.reset()
            return None
        self.bus_log.extend(self._sniffer.feed(chunk))
        host = self.host_baudrate()
        for board in self.boards:
            if board.baudrate == host:
                board.hear(chunk)
            else:
                if not board.undecodable:
                    log.info("board 0x%02X (jumper %d baud) hears the host at %s baud: noise", board.address,
                             board.baudrate, host)
                board.hear_noise(len(chunk))
        return None  # [CANDLE] §3 p.5: no reply packet is provided
