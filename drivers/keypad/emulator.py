"""An RS485 bus of QSystem-type keypads on a pty, for tests and the demo.

Built as shared/reference/protocols.md §3.8 recommends for an honest emulator: a press is one
atomic 4-byte write ``01 AA 3k 07`` with no retry; the keypads take 4-byte LED commands
(``30``..``3D``) and longer display frames (blink byte + cp1251 text) and keep what a person at
the window would see; nothing is ever acknowledged; ``03 old new 07`` renumbers a keypad; the
``04`` poll gets no reply unless ``poll_reply`` is set (unverified: nobody has documented what a
keypad answers). The driver never imports this module.

    with QsysKeypadBus([0x22, 0x23]) as bus:          # the driver opens bus.port
        bus.press(0x22, "1")                          # 01 22 31 07 on the wire
        bus.wait_for(lambda: bus.keypads[0x22].text == "A12")
        bus.keypads[0x22].led, bus.keypads[0x22].beeps, bus.keypads[0x22].blink
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from hallctl_drivers.keypad.qsys_codec import (
    DisplayCommand, Garbage, HostFrameReader, LedCommand, Poll, Renumber, key_frame, poll_frame,
)
from hallctl_drivers.transports.pty import PtyDevice


@dataclass
class BusFaults:
    """Switches a test flips to make the bus misbehave."""

    #: the keypads hear nothing and their presses never reach the host (an RS485 cable pulled)
    silent: bool = False
    #: written before every press: line noise, a collision's leftovers (e.g. b"\\x01\\x22\\x31")
    garbage: bytes = b""


@dataclass
class Keypad:
    """One keypad: what its LED, beeper and display show, and what it was sent."""

    address: int
    led: str = "off"
    #: 500 ms beeps so far
    beeps: int = 0
    #: the display as sent (3 characters, or 4 spaces when blanked); :attr:`text` is what one reads
    raw_text: str = ""
    #: 0 steady, 1 blinking, n > 1 blinking n - 1 times
    blink: int = 0
    #: every frame addressed to this keypad, raw
    frames: list[bytes] = field(default_factory=list)
    #: ("led", state, beep) and ("show", text, blink) in the order they came
    history: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.raw_text.strip()


class QsysKeypadBus(PtyDevice):
    """Keypads by address on one pty (a multi-drop RS485 line)."""

    def __init__(self, addresses: Iterable[int] = (0x20,), *, poll_reply: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.keypads: dict[int, Keypad] = {a: Keypad(a) for a in addresses}
        self.faults = BusFaults()
        #: unverified: answer a 04 poll by sending the poll frame back (no source says what a keypad does)
        self.poll_reply = poll_reply
        #: frames no keypad could read
        self.garbage: list[bytes] = []
        #: every press written, raw
        self.presses: list[bytes] = []
        self._reader = HostFrameReader()

    # -- the keypads' side --------------------------------------------------------------------

    def press(self, address: int, key: str) -> bytes:
        """A clerk presses ``key`` ('1'..'4') on the keypad at ``address``: one atomic write.
        Returns the bytes written (nothing while silent or unplugged)."""
        with self.cond:
            if address not in self.keypads:
                raise KeyError(f"no keypad at 0x{address:02X} on this bus (have "
                               f"{', '.join(f'0x{a:02X}' for a in sorted(self.keypads))})")
            if self.faults.silent:
                return b""
            data = self.faults.garbage + key_frame(address, key)
            self.presses.append(key_frame(address, key))
        self.send(data)
        return data

    def power_cycle(self, address: int) -> None:
        """The keypad loses power and comes back: display blank, LED off (it keeps nothing, and
        says nothing: the host cannot know)."""
        with self.cond:
            pad = self.keypads[address]
            pad.raw_text, pad.blink, pad.led = "", 0, "off"
            self.cond.notify_all()

    def noise(self, data: bytes) -> None:
        """Put raw bytes on the line (noise between frames)."""
        self.send(data)

    # -- the host's frames --------------------------------------------------------------------

    def handle(self, chunk: bytes) -> bytes | None:
        if self.faults.silent:
            self._reader.reset()
            return None
        reply = b""
        for item in self._reader.feed(chunk):
            if isinstance(item, Garbage):
                self.garbage.append(item.data)
            elif isinstance(item, Renumber):
                self._renumber(item)
            elif isinstance(item, Poll):
                if self.poll_reply and item.address in self.keypads:
                    reply += poll_frame(item.address)
            elif item.address in self.keypads:
                self._apply(self.keypads[item.address], item)
        return reply or None

    def _apply(self, pad: Keypad, item: LedCommand | DisplayCommand) -> None:
        pad.frames.append(item.raw)
        if isinstance(item, LedCommand):
            pad.led = item.state
            pad.beeps += item.beep
            pad.history.append(("led", item.state, int(item.beep)))
        else:
            pad.raw_text, pad.blink = item.text, item.blink
            pad.history.append(("show", item.text.strip(), item.blink))

    def _renumber(self, item: Renumber) -> None:
        pad = self.keypads.get(item.old)
        if pad is None or item.new in self.keypads:
            return  # nobody there, or the new address is taken: no keypad acts on it
        del self.keypads[item.old]
        pad.address = item.new
        self.keypads[item.new] = pad

