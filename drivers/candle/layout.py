"""What sits where on a Candle board, and how a call is written onto it.

The manual's hardware variants ([CANDLE] §2 p.3, Fig. 1): 4 digits + arrow module + 2 digits,
3 digits + arrow + 2 digits, 4 digits only, 3 digits only. The arrow is an ordinary character
position ([CANDLE] p.5). QSystem fills the whole row in one frame: the ticket left-aligned and
padded with spaces, the arrow, then the window's number ([PLUG] Sender485.java:51-59), which is
what the worked example "A012-5 " shows (shared/reference/protocols.md §3.7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hallctl.errors import BadRequest
from hallctl_drivers.candle.codec import arrow_byte, encode_glyphs

#: window digits after the arrow module ([CANDLE] §2 p.3: always two)
WINDOW_DIGITS = 2
_LEADING_ZEROS = re.compile(r"^(\D*)0+(\d)")


@dataclass(frozen=True)
class Layout:
    """A board variant: ``digits`` ticket positions, then optionally the arrow and 2 digits."""

    digits: int = 4
    arrow_module: bool = True

    @property
    def width(self) -> int:
        return self.digits + (1 + WINDOW_DIGITS if self.arrow_module else 0)

    @property
    def arrow_index(self) -> int | None:
        """The arrow module's position (0-based), None on a board without one."""
        return self.digits if self.arrow_module else None

    def fit_number(self, number: str) -> str:
        """The ticket as it fits ``digits`` positions: as is, else without the zeros after its
        prefix ("A012" -> "A12", as QSystem itself sends tickets). A number that still does not
        fit is refused: cutting it would show another citizen's number."""
        if len(number) <= self.digits:
            return number
        short = _LEADING_ZEROS.sub(r"\1\2", number)
        if len(short) <= self.digits:
            return short
        raise BadRequest(f"ticket {number!r} does not fit the board's {self.digits} digits", field="data.number")

    def call_text(self, number: str, window: str, arrow: str) -> str:
        """The whole row for a call: ticket, arrow, window (``"A012-5 "``). An empty ``number``
        blanks the ticket digits and leaves the window lit, as QSystem does when service ends."""
        ticket = self.fit_number(number).ljust(self.digits)
        if not self.arrow_module:
            return ticket
        if len(window) > WINDOW_DIGITS:
            raise BadRequest(f"window label {window!r} is longer than the board's {WINDOW_DIGITS} window digits "
                             "(set the device option window_label)", field="data.window")
        return ticket + (arrow if window else " ") + window.ljust(WINDOW_DIGITS)

    def encode(self, text: str) -> bytes:
        """Bytes for the whole row ``text`` (padded with spaces to the board's width): glyphs on
        the digit modules, < > - or space on the arrow module. Refuses text wider than the board
        and characters a module cannot show (``bad_request`` naming the character)."""
        if len(text) > self.width:
            raise BadRequest(f"{text!r} is {len(text)} characters; this board shows {self.width}", field="data.lines")
        text = text.ljust(self.width)
        out = bytearray()
        for i, ch in enumerate(text):
            out.append(arrow_byte(ch) if i == self.arrow_index else encode_glyphs(ch)[0])
        return bytes(out)
