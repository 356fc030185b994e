"""The call-order board (叫号次序显示屏): the hall's latest calls, waiting counts and notices,
drawn with Pillow for a TV (landscape or portrait, 1080p) or an LED matrix, and shown on the Linux
framebuffer, as PNG files and as a web page for a TV's browser.

Split by job: :mod:`.layout` (size, style, colours), :mod:`.render` (content -> picture, pure),
:mod:`.framebuffer`, :mod:`.png` and :mod:`.web` (the outputs), :mod:`.schemas` (profile
settings, device options) and :mod:`.driver` (the ``call_board`` kind's driver).
"""

from hallctl_drivers.board.driver import CallBoardDriver  # noqa: F401
