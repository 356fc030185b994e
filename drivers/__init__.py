"""Device drivers, installed as ``hallctl_drivers``.

Drivers know protocols, not MQTT. Each module registers its driver class in :data:`REGISTRY`
under the name a firmware profile's ``driver`` key uses.
"""

from __future__ import annotations

from hallctl_drivers.base import Driver, Health, ProbeResult

REGISTRY: dict[str, str] = {
    # profile "driver" value -> "module:Class", imported lazily (slow imports hurt a Pi's start-up)
    "onbon_bx": "hallctl_drivers.onbon_bx:OnbonBxDisplay",
}


def driver_class(name: str) -> type[Driver]:
    """Resolve a profile's ``driver`` name to its class. Raises KeyError for an unknown name."""
    import importlib

    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Driver", "Health", "ProbeResult", "REGISTRY", "driver_class"]
