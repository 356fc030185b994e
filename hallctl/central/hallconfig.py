"""A validated central config file -> the :class:`HallSpec` the core runs on.

Used at start and on reload (SIGHUP): both build the hall the same way, and a model check that
the file's schema cannot express (a class prefix equal to a queue's, ...) names the file.

Every ``[hall]`` setting is passed on by name: :class:`~hallctl.central.config.HallSettings`' fields
are HallSpec keywords, with HallSpec's defaults, so no default is written here.
"""

from __future__ import annotations

from dataclasses import fields

from hallctl.central.config import CentralConfig, HallSettings
from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.errors import ConfigError


def hall_from_config(cfg: CentralConfig) -> HallSpec:
    hs = cfg.hall_settings
    try:
        return HallSpec(
            cfg.hall,
            {q.id: QueueSpec(q.id, q.prefix, q.name, expected_service_s=q.expected_service_s)
             for q in cfg.queues},
            {w.id: WindowSpec(w.id, w.name, tuple(w.queues), kind=w.kind, speed=dict(w.speed), primary=w.primary)
             for w in cfg.windows},
            matters={m.id: MatterSpec(m.id, m.name, m.queue, m.department, m.expected_service_s)
                     for m in cfg.matters},
            departments={d.id: DepartmentSpec(d.id, d.name) for d in cfg.departments},
            **{f.name: getattr(hs, f.name) for f in fields(HallSettings)},
        )
    except ConfigError as exc:  # the model's own checks: say which file
        raise ConfigError(exc.problem, file=cfg.file, key=exc.key) from None
