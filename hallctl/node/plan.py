"""What a node config asks for, checked whole before anything runs: no I/O, no MQTT.

For each ``[[device]]``: its profile, kind, driver, app, and its options split between driver and
app, each checked against its schema and by building the driver once (constructors do no I/O, so
a driver's own checks run here too). Anything wrong in the node's own config raises
:class:`ConfigError` naming the file, the key and the problem: ``hallctl node`` exits 78 with it
and systemd does not retry a config that cannot work. A firmware profile file that is broken only
disables the devices using it (the node's other devices keep serving), shown as their health.

``hallctl node`` and ``hallctl doctor`` use the same plan.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from hallctl.apps import APPS, app_class
from hallctl.apps.base import App
from hallctl.config import DeviceConfig, NodeConfig
from hallctl.errors import ConfigError
from hallctl.profiles import Profile, ProfileSet
from hallctl_drivers import Driver, driver_class
from hallctl_drivers.kinds import Action, Kind, get_kind
from hallctl_drivers.schema import SchemaError, check, merge_objects


@dataclass(frozen=True)
class DevicePlan:
    config: DeviceConfig
    index: int
    profile: Profile | None = None
    kind: Kind | None = None
    driver: type[Driver] | None = None
    driver_options: dict[str, Any] = field(default_factory=dict)
    app: type[App] | None = None
    app_options: dict[str, Any] = field(default_factory=dict)
    #: the device's actions (the kind's, narrowed to what its model supports), by name
    actions: dict[str, Action] = field(default_factory=dict)
    #: why the device cannot run (its profile is broken), or None
    disabled: ConfigError | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def probe_interval_s(self) -> float:
        """The node config's interval, else the driver's own."""
        if self.config.probe_interval_s is not None:
            return self.config.probe_interval_s
        return self.driver.probe_interval_s if self.driver is not None else Driver.probe_interval_s

    def build_driver(self) -> Driver:
        assert self.driver is not None and self.profile is not None
        return self.driver(self.profile.settings, self.driver_options, features=self.profile.features)

    def birth_entry(self) -> dict[str, Any]:
        """The device as the node's birth announces it (docs/topics.md)."""
        entry: dict[str, Any] = {
            "id": self.id, "profile": self.config.profile, "app": self.config.app,
            "kind": self.kind.name if self.kind else None,
            "driver": self.profile.driver if self.profile and not self.disabled else None,
            "actions": sorted(self.actions),
        }
        if self.disabled is not None:
            entry["disabled"] = self.disabled.message
            return entry
        assert self.profile is not None
        entry["model"] = {"vendor": self.profile.vendor, "name": self.profile.name}
        entry["features"] = sorted(self.profile.features)
        entry["action_specs"] = {n: a.announce() for n, a in sorted(self.actions.items())}
        return entry


def load_plugins(cfg: NodeConfig) -> None:
    """Import the config's ``plugins`` (modules that register a site's kinds, drivers and apps
    through the public registries); one that cannot be imported is a config error."""
    for j, name in enumerate(cfg.plugins):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the node cannot run as configured
            raise ConfigError(f"cannot import plugin {name!r}: {type(exc).__name__}: {exc}",
                              file=cfg.file, key=f"node.plugins[{j}]") from None


def plan_node(cfg: NodeConfig, profiles: ProfileSet) -> list[DevicePlan]:
    """Check every device of ``cfg``; raises ConfigError for the first problem of the config."""
    plans = [_plan_device(cfg, i, dev, profiles) for i, dev in enumerate(cfg.devices)]
    claimed: dict[str, str] = {}
    for plan in plans:
        if plan.app is None:
            continue
        claim = plan.app.claim(plan.app_options)
        if claim is None:
            continue
        if claim in claimed:
            raise ConfigError(f"{claim} is already driven by device {claimed[claim]!r}",
                              file=cfg.file, key=f"device[{plan.index}].options")
        claimed[claim] = plan.id
    return plans


def _plan_device(cfg: NodeConfig, i: int, dev: DeviceConfig, profiles: ProfileSet) -> DevicePlan:
    where = f"device[{i}]"

    def error(key: str, problem: str) -> ConfigError:
        return ConfigError(problem, file=cfg.file, key=f"{where}.{key}")

    if dev.profile not in profiles.profiles and dev.profile not in profiles.errors:
        close = difflib.get_close_matches(dev.profile, sorted(profiles.profiles), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(profiles.profiles))})"
        raise error("profile", f"unknown firmware profile {dev.profile!r}{hint}")
    app = None
    if dev.app is not None:
        try:
            app = app_class(dev.app)
        except KeyError:
            raise error("app", f"unknown app {dev.app!r} (known: {', '.join(sorted(APPS))})") from None
    if dev.profile in profiles.errors:
        broken = profiles.errors[dev.profile]
        reason = ConfigError(f"firmware profile {dev.profile!r} is broken: {broken.message}")
        return DevicePlan(dev, i, disabled=reason)

    profile = profiles.profiles[dev.profile]
    kind = get_kind(profile.kind)  # known: the profile loaded against its driver
    driver = driver_class(profile.driver)
    if app is not None and profile.kind not in app.kinds:
        raise error("profile", f"profile {dev.profile!r} is a {profile.kind} device, but app {dev.app!r} "
                               f"drives {', '.join(sorted(app.kinds))} devices")

    schema = merge_objects(driver.options_schema, app.options_schema if app else {})
    try:
        check(schema, dev.options, "options")
        if app is not None:
            app_keys = set(app.options_schema.get("properties", {}))
            app.check_options({k: v for k, v in dev.options.items() if k in app_keys})
    except SchemaError as exc:
        key = exc.path if exc.path.startswith("options") else f"options.{exc.path}"
        raise error(key, exc.problem) from None
    app_keys = set(app.options_schema.get("properties", {})) if app else set()
    driver_options = {k: v for k, v in dev.options.items() if k not in app_keys}
    app_options = {k: v for k, v in dev.options.items() if k in app_keys}
    plan = DevicePlan(dev, i, profile, kind, driver, driver_options, app, app_options,
                      actions=kind.actions_for(profile.features))
    try:
        plan.build_driver()  # the driver's own checks (no I/O in a constructor)
    except ConfigError as exc:
        key = exc.key or "options"
        if key.startswith("settings"):
            raise ConfigError(exc.problem, file=profile.file, key=key) from None
        raise error(key, exc.problem) from None
    return plan
