"""The core as the store says it is: at start, when a commit failed, and under a new config on
reload (the reload path is the restart path). Blocking; the service runs it off the event loop."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from hallctl.central.core import Central
from hallctl.central.history import HISTORY_DAYS, History
from hallctl.central.model import AT_WINDOW, BEFORE_CALL, HallSpec
from hallctl.central.store import Store
from hallctl.errors import ConfigError, HallctlError

log = logging.getLogger("hallctl.central")


def rebuild(store: Store, hall: HallSpec, clock: Callable[[], datetime], history: History) -> tuple[Central, int, int]:
    """The core as the store says it is, with ``history`` (new) filled, and how many events were
    replayed into each. The core starts from the newest day checkpoint and replays the events
    after it; the KPIs replay their newest HISTORY_DAYS days, the staffing history its
    HISTORY_DAYS calendar days (each starting from its day's checkpoint)."""
    core, after = core_at_checkpoint(store, hall, clock)
    start = after
    for seq in (store.nth_newest_day_start(HISTORY_DAYS), store.day_start_seq(history.cutoff())):
        start = min(start, seq - 1 if seq is not None else 0)
    if start > 0:  # the first day folded starts with the windows as they were then
        doc = store.checkpoint_at(start + 1) or {}
        windows = doc.get("windows")
        if isinstance(windows, dict):
            history.kpis.seed_windows({w: (str(v[0]), v[1]) for w, v in windows.items()
                                       if isinstance(v, list) and len(v) == 2})
    replayed = observed = 0
    found: list[tuple[int, str, dict[str, Any]]] = []
    for event in store.load_events(after=start):
        if event.seq > after:
            core.apply(event)
            replayed += 1
            if after == 0 and event.type == "day.started":
                found.append(core.checkpoint())  # type: ignore[arg-type]
        history.observe(event)
        observed += 1
    if found:  # a whole-log replay (a store from before checkpoints, or an unusable one)
        store.add_checkpoints(found)
    return core, replayed, observed


def core_at_checkpoint(store: Store, hall: HallSpec, clock: Callable[[], datetime]) -> tuple[Central, int]:
    """A core at the newest stored checkpoint under ``hall``, and the seq it stands at; a
    fresh core and 0 when there is none (or it cannot be read: then the whole log replays)."""
    cp = store.latest_checkpoint()
    if cp is not None:
        try:
            return Central.from_checkpoint(hall, clock, cp[2]), cp[0]
        except ValueError as exc:
            log.warning("checkpoint at seq %d unusable (%s); replaying the whole log", cp[0], exc)
    return Central(hall, clock), 0


def check_reload(store: Store, clock: Callable[[], datetime], running: Central, old: HallSpec,
                 hall: HallSpec) -> Central:
    """The core the hall would run on under ``hall`` instead of ``old`` (``running``'s): today's
    events replayed into it. Raises ConfigError when the new config would strand someone: a
    queue with tickets waiting or a window that is open or has a ticket at it, removed."""
    if hall.hall_id != old.hall_id:
        raise ConfigError(f"the hall id cannot change from {old.hall_id!r} on reload; restart central",
                          key="central.hall")
    if hall.tz != old.tz:
        raise ConfigError(f"the time zone cannot change from {old.tz!r} on reload; restart central",
                          key="hall.tz")
    problems = []
    for t in running.tickets.values():
        if t.status in BEFORE_CALL and t.queue not in hall.queues:
            problems.append(f"queue {t.queue!r} is removed but {t.number} waits in it")
        if t.status in AT_WINDOW and t.window not in hall.windows:
            problems.append(f"window {t.window!r} is removed but {t.number} is at it")
    for w, live in running.state.windows.items():
        if w in old.windows and w not in hall.windows and live.state != "closed":
            problems.append(f"window {w!r} is removed but {live.state}; close it first")
    if problems:
        raise ConfigError("reload refused: " + "; ".join(problems))
    core, after = core_at_checkpoint(store, hall, clock)
    try:
        core.replay(store.load_events(after=after))
    except HallctlError as exc:
        raise ConfigError(f"reload refused: the stored events do not fit the new config: {exc.message}") from None
    waiting = sorted({t.queue for t in core.tickets.values() if t.status in BEFORE_CALL})
    orphans = [q for q in waiting if not core.capable_windows(q)]
    if orphans:
        raise ConfigError("reload refused: no window could call queue " + ", ".join(map(repr, orphans))
                          + " (tickets wait in it) under the new windows and policy")
    return core
