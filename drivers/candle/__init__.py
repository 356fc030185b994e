"""Candle/QSystem-type RS485 window boards (7-segment "queue control display").

Source: the vendor manual "Электронное табло управления очередью. Техническое описание" (Candle,
2010-2012, in ``alkumaish/apertum-qsystem.rs485-plugin:protokol.pdf``) and QSystem's board plugin
in the same repository; summary in shared/reference/protocols.md §3.7. Host to board only: no
checksum, no reply.

Split by job: :mod:`.codec` (frames, glyphs, a stream parser; bytes only), :mod:`.layout` (which
position is what on each board variant, how a call is written on it), :mod:`.schemas`,
:mod:`.display` (the driver, on a shared :class:`~hallctl_drivers.transports.serial.SerialTransport`)
and :mod:`.emulator` (boards on a pty for tests and the demo; this package does not import it).
"""

from hallctl_drivers.candle.display import CandleDisplay  # noqa: F401

__all__ = ["CandleDisplay"]
