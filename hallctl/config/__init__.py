"""Configuration files: TOML checked against a fixed schema.

* :mod:`hallctl.config.reader`: the generic reader (field specs, file + key path in every
  error, ``[mqtt]`` and ``[store]``);
* :mod:`hallctl.config.node`: the node config (``hallctl node``).

The central config lives with central, in :mod:`hallctl.central.config`, which builds on the
reader; nothing here imports :mod:`hallctl.central`, so a node never loads the queue engine.
See ``config/node.example.toml`` and ``config/central.example.toml``.
"""

from __future__ import annotations

from hallctl.config.node import DeviceConfig, NodeConfig, load_node_config, parse_node_config
from hallctl.config.reader import (
    DEFAULT_STATE_DIR,
    REQUIRED,
    Field,
    MqttConfig,
    Reader,
    StoreConfig,
    between,
    is_id,
    non_empty,
    parse_mqtt,
    read_toml,
    store_path,
)

__all__ = [
    "MqttConfig",
    "StoreConfig",
    "DeviceConfig",
    "NodeConfig",
    "load_node_config",
    "parse_node_config",
    "DEFAULT_STATE_DIR",
    "REQUIRED",
    "Field",
    "Reader",
    "between",
    "is_id",
    "non_empty",
    "parse_mqtt",
    "read_toml",
    "store_path",
]
