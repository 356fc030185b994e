"""Window keypads (呼叫器): the clerk's keys at a window, with LED and display feedback.

Two families, one kind (``window_keypad``, :mod:`hallctl_drivers.kinds`):

* :mod:`.qsys` -- QSystem-type RS485 keypads (the ``ub485`` "Hohlov device"; facts and sources in
  shared/reference/protocols.md §3.8): several keypads on one bus, by address; a key press is the
  4-byte frame ``01 AA KK 07``; the host answers with LED (``01 AA CC 07``) or display
  (``01 AA BL t.. 07``, cp1251) frames and nothing is ever acknowledged. :mod:`.qsys_codec` holds
  the bytes, :mod:`.qsys_bus` the shared line (one reader for every keypad on a port).
* :mod:`.gpio` -- buttons and LEDs wired to the Pi's GPIO header, one function per button.

:mod:`.emulator` is a bus of QSystem keypads on a pty for tests and the demo; no production
module imports it. Nothing here is imported until a profile names its driver (gpiozero and
pyserial load lazily).
"""
