"""What an ESC/POS printer makes of a byte stream: commands and text, one op at a time. Bytes only.

:class:`Decoder` is incremental (feed it chunks as they arrive; a command cut between two chunks
waits for the rest) and total: any byte string decodes into ops without raising, buffering at
most one command, so garbage on the line can neither crash nor stall the emulator built on it.

It knows the lengths of the commands a ticket printer meets (Epson ESC/POS command reference,
as summarised in shared/reference/protocols.md §2); an unknown ``ESC x``, ``GS x`` or ``FS x``
is taken as two bytes, which is what a printer does with a command it lacks: the bytes after it
print as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ESC, FS, GS, DLE = 0x1B, 0x1C, 0x1D, 0x10
#: ops a printer executes on receipt, ahead of anything buffered
REALTIME = frozenset({"status", "recover", "pulse"})
#: the largest command body buffered whole; a declared length above it is skipped, not stored
MAX_BODY = 1 << 20
#: text is held until a command ends it, or this many bytes (a full line buffer)
MAX_TEXT = 4096

# fixed parameter counts after the command byte
_ESC_ARGS = {0x40: 0, 0x32: 0, 0x21: 1, 0x2D: 1, 0x45: 1, 0x47: 1, 0x4D: 1, 0x52: 1, 0x74: 1, 0x61: 1,
             0x64: 1, 0x4A: 1, 0x33: 1, 0x20: 1, 0x7B: 1, 0x56: 1, 0x3D: 1, 0x65: 1, 0x4B: 1, 0x24: 2,
             0x5C: 2, 0x63: 2, 0x70: 3, 0x42: 2, 0x69: 0, 0x6D: 0}
_GS_ARGS = {0x21: 1, 0x42: 1, 0x48: 1, 0x66: 1, 0x68: 1, 0x77: 1, 0x61: 1, 0x72: 1, 0x49: 1, 0x2F: 1,
            0x4C: 2, 0x57: 2, 0x50: 2, 0x24: 2, 0x5C: 2, 0x3A: 0, 0x5E: 3, 0x54: 1, 0x62: 1}
_FS_ARGS = {0x26: 0, 0x2E: 0, 0x21: 1, 0x2D: 1, 0x57: 1, 0x43: 1, 0x53: 2, 0x70: 2, 0x32: 74}


@dataclass(frozen=True)
class Op:
    """One decoded unit: ``name`` (see :meth:`Decoder.feed`), the bytes it came from, its value."""

    name: str
    raw: bytes
    arg: Any = None


class Decoder:
    """Feed bytes, get ops. Names: ``text`` (bytes), ``lf``, ``init``, ``align`` (0/1/2), ``bold``,
    ``size`` ((w, h)), ``mode`` (ESC ! n), ``chinese`` (True: FS &, False: FS .), ``feed_lines``,
    ``feed_dots``, ``line_spacing`` (None = default), ``raster`` ((m, width_bytes, height, data)),
    ``qr`` ((fn, params) of GS ( k cn 49), ``cut`` (m), ``gs_r`` (n), and the real-time
    ``status`` (DLE EOT n), ``recover`` (DLE ENQ n), ``pulse``; ``other`` for commands a ticket
    printer ignores, ``error`` (a description) for what it cannot take."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes still to drop of an oversized command

    def feed(self, data: bytes) -> list[Op]:
        ops: list[Op] = []
        self._buf += data
        while self._buf:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                continue
            op, used = self._one()
            if used == 0:
                break  # a command cut short: wait for the rest
            del self._buf[:used]
            if op is not None:
                ops.append(op)
        return ops

    def flush(self) -> list[Op]:
        """The stream ended: text still held is printed; a command cut short is dropped."""
        ops = []
        if self._buf and self._buf[0] >= 0x20 and not self._skip:
            n = next((i for i, b in enumerate(self._buf) if b < 0x20), len(self._buf))
            ops.append(Op("text", bytes(self._buf[:n]), bytes(self._buf[:n])))
        self._buf.clear()
        self._skip = 0
        return ops

    def _one(self) -> tuple[Op | None, int]:
        b = self._buf
        c = b[0]
        if c >= 0x20:
            n = 1
            while n < len(b) and b[n] >= 0x20:
                n += 1
            if n == len(b) and n < MAX_TEXT:
                return None, 0  # more text may follow: a 2-byte code must not be split
            n = min(n, MAX_TEXT)
            return Op("text", bytes(b[:n]), bytes(b[:n])), n
        if c == 0x0A:
            return Op("lf", b"\n"), 1
        if c == DLE:
            return self._dle()
        if c in (ESC, GS, FS):
            if len(b) < 2:
                return None, 0
            return {ESC: self._esc, GS: self._gs, FS: self._fs}[c]()
        return None, 1  # CR, HT and other controls: nothing to print

    def _fixed(self, name: str, count: int, value: Any = None) -> tuple[Op | None, int]:
        """A command of ``count`` bytes; ``value`` (callable on its bytes) gives the op's arg."""
        if len(self._buf) < count:
            return None, 0
        raw = bytes(self._buf[:count])
        return Op(name, raw, value(raw) if callable(value) else value), count

    def _dle(self) -> tuple[Op | None, int]:
        b = self._buf
        if len(b) < 2:
            return None, 0
        if b[1] == 0x04:
            return self._fixed("status", 3, lambda r: r[2])
        if b[1] == 0x05:
            return self._fixed("recover", 3, lambda r: r[2])
        if b[1] == 0x14:
            if len(b) < 3:
                return None, 0
            return self._fixed("pulse", {1: 5, 2: 5, 8: 10}.get(b[2], 3))
        return None, 1

    def _esc(self) -> tuple[Op | None, int]:
        cmd = self._buf[1]
        simple = {
            0x40: ("init", None), 0x61: ("align", lambda r: {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(r[2], 0)),
            0x45: ("bold", lambda r: bool(r[2] & 1)), 0x21: ("mode", lambda r: r[2]),
            0x64: ("feed_lines", lambda r: r[2]), 0x4A: ("feed_dots", lambda r: r[2]),
            0x33: ("line_spacing", lambda r: r[2]), 0x32: ("line_spacing", None),
            0x69: ("cut", 0), 0x6D: ("cut", 1),  # ESC i / ESC m: the legacy full / partial cut
        }
        if cmd == 0x2A:  # ESC * m nL nH d1..dk: column bit image
            if len(self._buf) < 5:
                return None, 0
            m, count = self._buf[2], self._buf[3] | self._buf[4] << 8
            return self._body("other", 5, count * (3 if m in (32, 33) else 1))
        if cmd == 0x44:  # ESC D n1..nk NUL: tab positions
            return self._until_nul("other", 2, 33)
        name, value = simple.get(cmd, ("other", None))
        count = _ESC_ARGS.get(cmd, 0)
        return self._fixed(name, 2 + count, value)

    def _gs(self) -> tuple[Op | None, int]:
        b = self._buf
        cmd = b[1]
        if cmd == 0x21:
            return self._fixed("size", 3, lambda r: ((r[2] >> 4 & 7) + 1, (r[2] & 7) + 1))
        if cmd == 0x72:
            return self._fixed("gs_r", 3, lambda r: r[2])
        if cmd == 0x56:  # GS V m [n]
            if len(b) < 3:
                return None, 0
            return self._fixed("cut", 4 if b[2] in (65, 66, 97, 98, 103, 104) else 3, lambda r: r[2])
        if cmd == 0x76:  # GS v 0 m xL xH yL yH d1..dk
            if len(b) < 8:
                return None, 0
            if b[2] != 0x30:
                return Op("error", bytes(b[:3]), "GS v without 0"), 3
            width, height = b[4] | b[5] << 8, b[6] | b[7] << 8
            op, used = self._body("raster", 8, width * height)
            if op is not None and op.name == "raster":
                op = Op("raster", op.raw, (b[3], width, height, op.raw[8:]))
            return op, used
        if cmd == 0x28:  # GS ( x pL pH ...: every function of this family counts its own bytes
            if len(b) < 5:
                return None, 0
            op, used = self._body("qr" if b[2] == 0x6B else "other", 5, b[3] | b[4] << 8)
            if op is not None and op.name == "qr":
                body = op.raw[5:]
                op = Op("qr", op.raw, (body[1], bytes(body[2:])) if len(body) >= 2 and body[0] == 0x31 else (None, b""))
            return op, used
        if cmd == 0x6B:  # GS k m: barcodes (NUL-terminated, or with a count for m >= 65)
            if len(b) < 4:
                return None, 0
            if b[2] >= 65:
                return self._body("other", 4, b[3])
            return self._until_nul("other", 3, 256)
        if cmd == 0x2A:  # GS * x y d1..d(x*y*8): define a downloaded image
            if len(b) < 4:
                return None, 0
            return self._body("other", 4, b[2] * b[3] * 8)
        return self._fixed("other", 2 + _GS_ARGS.get(cmd, 0))

    def _fs(self) -> tuple[Op | None, int]:
        cmd = self._buf[1]
        if cmd in (0x26, 0x2E):
            return self._fixed("chinese", 2, cmd == 0x26)
        return self._fixed("other", 2 + _FS_ARGS.get(cmd, 0))

    def _body(self, name: str, head: int, length: int) -> tuple[Op | None, int]:
        """A command of ``head`` bytes followed by ``length`` data bytes."""
        if length > MAX_BODY:  # drop it as it streams by instead of holding it
            self._skip = head + length
            return Op("error", bytes(self._buf[:head]), f"{length}-byte command body is too large"), self._consume_skip()
        return self._fixed(name, head + length)

    def _consume_skip(self) -> int:
        n = min(self._skip, len(self._buf))
        self._skip -= n
        return n

    def _until_nul(self, name: str, head: int, limit: int) -> tuple[Op | None, int]:
        end = self._buf.find(0, head, head + limit)
        if end < 0:
            if len(self._buf) < head + limit:
                return None, 0
            return Op("error", bytes(self._buf[:head + limit]), "no NUL terminator"), head + limit
        return Op(name, bytes(self._buf[:end + 1])), end + 1
