"""Onbon/仰邦 BX-5K/6K font-ROM text controllers (window and queue LED bars).

Source: the vendor's "BX-5K/6K 通讯协议" v1.4 (2021-02-28), https://doc.onbonbx.com/zh/k/potocol
(section numbers below are that document's). Summary in shared/reference/protocols.md §3.

Wire format (§3)::

    PHY0 = A5 x8 | escape(PHY1) | 5A
    PHY1 = header (14 B) | data field (N B) | check (2 B, LSB first, over header + data, unescaped)
    header = DstAddr(2) SrcAddr(2) Reserved(3) BarCodeOption(1) CheckMode(1) DisplayMode(1)
             DeviceType(1) ProtocolVersion(1) DataLen(2)          -- all little-endian (§4)
    data field = CmdGroup Cmd Response|CmdError Reserved(2) Data  (§5.1)

The package is split by job: :mod:`.frame` (the wire format), :mod:`.area` (what goes inside
an A3 06 dynamic-area command, and the status reply), :mod:`.display` (the driver, on a shared
serial transport from :mod:`hallctl_drivers.transports`) and :mod:`.emulator` (controllers on a
pty for tests and the demo). The codec is pure (no I/O) and shared by the driver and the
emulator; this package does not import the emulator.
"""

from hallctl_drivers.onbon_bx.area import *  # noqa: F401,F403
from hallctl_drivers.onbon_bx.area import _FONT_RE  # noqa: F401
from hallctl_drivers.onbon_bx.display import OnbonBxDisplay  # noqa: F401
from hallctl_drivers.onbon_bx.frame import *  # noqa: F401,F403
