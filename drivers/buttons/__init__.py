"""Push buttons with lamps on GPIO: the buttons-only kiosk (kind ``button_panel``)."""

from hallctl_drivers.buttons.gpio import GpioButtonPanel

__all__ = ["GpioButtonPanel"]
