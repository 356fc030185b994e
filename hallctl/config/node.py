"""The node config file (``hallctl node``): ``[node]``, ``[mqtt]``, ``[store]`` and ``[[device]]``.

See ``config/node.example.toml``; errors name file, key path and problem
(:mod:`hallctl.config.reader`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hallctl.config.reader import (
    STORE_FIELDS,
    Field,
    MqttConfig,
    Reader,
    StoreConfig,
    is_id,
    non_empty,
    parse_mqtt,
    read_toml,
    store_path,
)

__all__ = ["DeviceConfig", "NodeConfig", "parse_node_config", "load_node_config"]


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    #: firmware profile id (a file stem under firmware_profiles/)
    profile: str
    #: the app that drives this device, e.g. "window_display"; None for diagnostics only
    app: str | None = None
    #: device-specific options: the driver's (port, address, ...) and its app's (window, ...)
    options: dict[str, Any] = field(default_factory=dict)
    #: seconds between health probes while the device is idle; None: its driver's
    #: ``probe_interval_s`` (a ticket printer's paper out must show within a second)
    probe_interval_s: float | None = None


@dataclass(frozen=True)
class NodeConfig:
    id: str
    hall: str
    mqtt: MqttConfig
    store: StoreConfig
    devices: tuple[DeviceConfig, ...]
    file: str | None = None
    #: folders of the site's own firmware profiles (*.toml), read after the shipped ones
    profile_dirs: tuple[Path, ...] = ()
    #: Python modules imported at start that register the site's own kinds, drivers and apps
    plugins: tuple[str, ...] = ()


_NODE_FIELDS = (Field("id", str, check=is_id), Field("hall", str, check=is_id),
                Field("profile_dirs", list, None), Field("plugins", list, None))
_DEVICE_FIELDS = (
    Field("id", str, check=is_id),
    Field("profile", str, check=non_empty),
    Field("app", str, None, non_empty),
    Field("options", dict, None),
    Field("probe_interval_s", float, DeviceConfig.probe_interval_s,
          lambda v: None if 0.1 <= v <= 3600 else "must be 0.1..3600 seconds"),
)
_DEVICE_HINT = "device-specific settings go in [device.options]"
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_node_config(data: Mapping[str, Any], *, file: str | None = None) -> NodeConfig:
    """Validate an already-parsed node config (a dict as ``tomllib`` returns it)."""
    r = Reader(file)
    r.top(data, ("node", "mqtt", "store", "device"))
    if "node" not in data:
        raise r.error("node", "missing required section [node]")
    node = r.table(data["node"], "node", _NODE_FIELDS)
    mqtt = parse_mqtt(r, data)
    store = r.table(data.get("store", {}), "store", STORE_FIELDS)
    devices = []
    raw_devices = r.array_of_tables(data.get("device"), "device")
    for i, raw in enumerate(raw_devices):
        where = f"device[{i}]"
        d = r.table(raw, where, _DEVICE_FIELDS, hint=_DEVICE_HINT)
        devices.append(DeviceConfig(
            id=d["id"], profile=d["profile"], app=d["app"], options=dict(d["options"] or {}),
            probe_interval_s=None if d["probe_interval_s"] is None else float(d["probe_interval_s"]),
        ))
    r.unique([(f"device[{i}].id", d.id) for i, d in enumerate(devices)], "device id")
    profile_dirs = []
    for j, d in enumerate(node["profile_dirs"] or []):
        if not isinstance(d, str) or not d.strip():
            raise r.error(f"node.profile_dirs[{j}]", f"expected a folder path, got {d!r}")
        profile_dirs.append(store_path(d, "", file))
    plugins = node["plugins"] or []
    for j, name in enumerate(plugins):
        if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
            raise r.error(f"node.plugins[{j}]", f"expected a Python module name, got {name!r}")
    return NodeConfig(
        id=node["id"],
        hall=node["hall"],
        mqtt=mqtt,
        store=StoreConfig(store_path(store["path"], f"{node['id']}.db", file)),
        devices=tuple(devices),
        file=file,
        profile_dirs=tuple(profile_dirs),
        plugins=tuple(plugins),
    )


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file. Raises :class:`ConfigError`."""
    data, file = read_toml(path)
    return parse_node_config(data, file=file)
