"""ESC/POS thermal ticket printers (the kiosk's 取号机 printer): Epson TM-T88 class, Chinese kiosk
printers, 58 mm units. Facts and sources: shared/reference/protocols.md §2.

Split by job: :mod:`.document` (a ticket as layout-neutral blocks), :mod:`.codec` (blocks to
the bytes one model prints, native or raster), :mod:`.render` (drawing a ticket dot for dot, for
the raster path and the emulator), :mod:`.status` (DLE EOT tables, both ways), :mod:`.decoder`
(what a printer makes of a byte stream), :mod:`.printer` (the driver) and :mod:`.emulator`
(printers on a pty and on TCP, for tests and the demo; no production module imports it).
"""

from hallctl_drivers.escpos.printer import EscPosPrinter  # noqa: F401
