"""Real-time status of ESC/POS printers: the ``DLE EOT n`` tables, both ways, bytes only.

Our own code, not python-escpos': its 3.1 release validates no reply and reads a printer that
said nothing as "paper adequate" (shared/reference/protocols.md §2.2). Here a reply is exactly
one byte matching ``0xx1xx10`` (``(b & 0x93) == 0x12``), or it is no status at all.

Tables (protocols.md §2.1; Epson TM-L60II, Citizen CT-S2000, SNBC BT-T080 p.41, HPRT TP809 p.32):

====  =====================  ====================  ======================  =====================
 n     bit 2 (0x04)           bit 3 (0x08)          bit 5 (0x20)            bit 6 (0x40)
====  =====================  ====================  ======================  =====================
 1     drawer pin 3           **offline**           waiting for recovery    FEED pressed
 2     **cover open**         FEED feeding          **stopped: paper end**  **error occurred**
 3     vendor (SNBC: jam)     **autocutter error**  **unrecoverable**       **auto-recoverable**
 4     near end (0x0C, bits 2+3)                    paper end (0x60, bits 5+6)
====  =====================  ====================  ======================  =====================

``GS r 1`` (paper sensor status) is not real time: the printer answers it only once everything
received before it has been processed, and not at all while stopped for paper end; its byte has
bit 4 = 0 (near end 0x03, paper end 0x0C), so it can never be mistaken for a DLE EOT reply.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from hallctl.errors import DeviceError

DLE_EOT = b"\x10\x04"  #: + n: transmit real-time status n (1..4)
DLE_ENQ = b"\x10\x05"  #: + n: recover from a recoverable error (1 restart the line, 2 clear buffers)
GS_R = b"\x1d\x72"  #: + n: transmit status in buffer order (1 = paper sensor)
QUERIES = (1, 2, 3, 4)

#: every DLE EOT reply: bits 1 and 4 set, bits 0 and 7 clear
REPLY_MASK, REPLY_FIXED = 0x93, 0x12
#: the GS r 1 reply: bits 4 and 7 clear
GS_R_MASK = 0x90


def query(n: int) -> bytes:
    """``DLE EOT n``."""
    return DLE_EOT + bytes([n])


def recover(clear_buffer: bool) -> bytes:
    """``DLE ENQ 2`` (recover, dropping what was buffered) or ``DLE ENQ 1`` (recover and
    restart from the line where the error occurred)."""
    return DLE_ENQ + (b"\x02" if clear_buffer else b"\x01")


class StatusReplyError(DeviceError):
    """The printer answered a status query with something that is not a status byte."""


def check_reply(n: int, b: int) -> int:
    """``b`` if it is a valid reply to DLE EOT ``n``; :class:`StatusReplyError` otherwise."""
    if (b & REPLY_MASK) != REPLY_FIXED:
        raise StatusReplyError(f"invalid status reply 0x{b:02x} to DLE EOT {n} (expected the pattern 0xx1xx10)")
    return b


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said about itself, decoded from its four DLE EOT replies."""

    online: bool = True
    cover_open: bool = False
    paper_near_end: bool = False
    paper_end: bool = False
    cutter_error: bool = False
    unrecoverable: bool = False
    recoverable: bool = False
    #: the reply bytes to DLE EOT 1..4, in order
    raw: bytes = bytes([REPLY_FIXED] * 4)

    @classmethod
    def decode(cls, replies: bytes) -> "PrinterStatus":
        """From the replies to DLE EOT 1, 2, 3, 4; :class:`StatusReplyError` for one that is not
        a status byte. Either bit of a sensor pair counts: a kiosk warns early rather than late."""
        if len(replies) != len(QUERIES):
            raise StatusReplyError(f"expected {len(QUERIES)} status bytes, got {len(replies)}")
        for n, b in zip(QUERIES, replies):
            check_reply(n, b)
        n1, n2, n3, n4 = replies
        return cls(
            online=not n1 & 0x08,
            cover_open=bool(n2 & 0x04),
            paper_near_end=bool(n4 & 0x0C),
            paper_end=bool(n2 & 0x20 or n4 & 0x60),
            cutter_error=bool(n3 & 0x08),
            unrecoverable=bool(n3 & 0x20),
            recoverable=bool(n3 & 0x40),
            raw=bytes(replies),
        )

    def encode(self) -> bytes:
        """The four reply bytes a printer in this state sends (what the emulator answers)."""
        n1 = REPLY_FIXED | (0 if self.online else 0x08)
        n2 = (REPLY_FIXED | (0x04 if self.cover_open else 0) | (0x20 if self.paper_end else 0)
              | (0x40 if self.cutter_error or self.unrecoverable or self.recoverable else 0))
        n3 = (REPLY_FIXED | (0x08 if self.cutter_error else 0) | (0x20 if self.unrecoverable else 0)
              | (0x40 if self.recoverable else 0))
        # an empty roll also trips the near-end sensor: a paper-out printer answers 7E (§2.1)
        n4 = REPLY_FIXED | (0x0C if self.paper_near_end or self.paper_end else 0) | (0x60 if self.paper_end else 0)
        return bytes([n1, n2, n3, n4])

    @property
    def problems(self) -> list[str]:
        """Why the printer cannot print now, for a technician; empty when it can."""
        out = [text for flag, text in (
            (self.paper_end, "paper out"),
            (self.cover_open, "cover open"),
            (self.cutter_error, "cutter error"),
            (self.unrecoverable, "unrecoverable error"),
            (self.recoverable, "recoverable error (print head hot or lifted)"),
        ) if flag]
        if not self.online and not out:
            out.append("printer offline")
        return out

    @property
    def warnings(self) -> list[str]:
        return ["paper near end"] if self.paper_near_end and not self.paper_end else []

    @property
    def ready(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "raw"}
        out["raw"] = self.raw.hex(" ")
        return out


def gs_r_paper(b: int) -> dict[str, bool]:
    """The ``GS r 1`` reply: paper near end (bits 0/1) and paper end (bits 2/3).
    :class:`StatusReplyError` when bits 4 or 7 are set (not a GS r reply)."""
    if b & GS_R_MASK:
        raise StatusReplyError(f"invalid reply 0x{b:02x} to GS r 1 (bits 4 and 7 must be 0)")
    return {"paper_near_end": bool(b & 0x03), "paper_end": bool(b & 0x0C)}


GS_R_PAPER = GS_R + b"\x01"  #: GS r 1: paper sensor status, answered in buffer order


def gs_r_reply(status: PrinterStatus) -> int:
    """The byte a printer in ``status`` answers to ``GS r 1``."""
    return (0x03 if status.paper_near_end or status.paper_end else 0) | (0x0C if status.paper_end else 0)
