"""A validated central config file -> the :class:`HallSpec` the core runs on.

Used at start and on reload (SIGHUP): both build the hall the same way, and a model check that
the file's schema cannot express (a class prefix equal to a queue's, ...) names the file.
"""

from __future__ import annotations

from hallctl.central.model import DepartmentSpec, HallSpec, MatterSpec, QueueSpec, WindowSpec
from hallctl.config import CentralConfig
from hallctl.errors import ConfigError


def hall_from_config(cfg: CentralConfig) -> HallSpec:
    hs = cfg.hall_settings
    try:
        return HallSpec(
            cfg.hall,
            {q.id: QueueSpec(q.id, q.prefix, q.name, expected_service_s=float(q.expected_service_s))
             for q in cfg.queues},
            {w.id: WindowSpec(w.id, w.name, tuple(w.queues), kind=w.kind, speed=dict(w.speed), primary=w.primary)
             for w in cfg.windows},
            board_size=hs.board_size,
            tz=hs.tz,
            day_reset_hour=hs.day_reset_hour,
            recall_limit=hs.recall_limit,
            policy=hs.policy,
            elderly_age=hs.elderly_age,
            appointment_grace_s=float(hs.appointment_grace_s),
            appointment_late_s=float(hs.appointment_late_s),
            overflow_after_s=float(hs.overflow_after_s),
            max_wait_boost_s=float(hs.max_wait_boost_s),
            auto_no_show=hs.auto_no_show,
            matters={m.id: MatterSpec(m.id, m.name, m.queue, m.department, m.expected_service_s)
                     for m in cfg.matters},
            departments={d.id: DepartmentSpec(d.id, d.name) for d in cfg.departments},
            class_prefix=dict(hs.class_prefix),
            hours=hs.hours,
        )
    except ConfigError as exc:  # the model's own checks: say which file
        raise ConfigError(exc.problem, file=cfg.file, key=exc.key) from None
