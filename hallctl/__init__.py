"""hallctl: the hall hardware controller (devices on nodes, central queue logic, MQTT contract v1)."""

__version__ = "0.1.0"
