"""Central's retained state on the broker (windows, board, health, KPIs), published from committed
state when it changed, by one task woken after each batch, so no batch waits for these PUBACKs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Iterable

from hallctl.bus.client import Bus


log = logging.getLogger("hallctl.central")


class RetainedPublisher:
    """Publishes ``states()`` (topic -> document) and ``kpis()`` (on ``kpi_topic``), each computed
    through ``committed`` (on committed state), and clears topics no longer in use."""

    def __init__(
        self,
        bus: Bus,
        committed: Callable[[Callable[[], Any]], Awaitable[Any]],
        *,
        states: Callable[[], dict[str, dict[str, Any]]],
        kpis: Callable[[], dict[str, Any]],
        kpi_topic: str,
    ) -> None:
        self._bus = bus
        self._committed = committed
        self._states = states
        self._kpis = kpis
        self._kpi_topic = kpi_topic
        self._published: dict[str, dict[str, Any]] = {}
        #: retained topics to clear (a window removed by a reload), retried until done
        self._stale: set[str] = set()
        #: one publisher of retained state at a time, each computing the state when its turn
        #: comes: a slower one can then never put an older document over a newer one
        self._publishing = asyncio.Lock()
        self._state_dirty = asyncio.Event()
        self._kpi_due = True

    def changed(self) -> None:
        """The state may have changed: publish what did at the next round."""
        self._state_dirty.set()

    def kpis_due(self) -> None:
        """The next round publishes the KPIs too, if they changed."""
        self._kpi_due = True
        self._state_dirty.set()

    def reconnected(self) -> None:
        """Re-publish every retained state (the broker may have restarted empty)."""
        self._published = {}
        self.kpis_due()

    def clear(self, topics: Iterable[str]) -> None:
        """No retained state left behind on ``topics`` (retried until the broker has it)."""
        self._stale.update(topics)

    async def run(self) -> None:
        """Publish retained state after each batch, coalescing: one round at a time, from the
        state committed when the round starts, so no batch ever waits for these PUBACKs."""
        while True:
            await self._state_dirty.wait()
            self._state_dirty.clear()
            try:
                await self.publish_states()
                if self._kpi_due:
                    self._kpi_due = False
                    await self._publish_kpis()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("central could not publish its retained state")

    async def _publish_kpis(self) -> None:
        """Retained on central/kpi when they changed (each housekeeping round; on (re)connect)."""
        async with self._publishing:
            await self._publish_changed({self._kpi_topic: await self._committed(self._kpis)})

    async def publish_states(self) -> None:
        async with self._publishing:
            for topic in sorted(self._stale):
                if await self._bus.try_publish(topic, b"", retain=True):
                    self._stale.discard(topic)
                    self._published.pop(topic, None)
            await self._publish_changed(await self._committed(self._states))

    async def _publish_changed(self, docs: dict[str, dict[str, Any]]) -> None:
        published = self._published  # a reconnect starts a new record; this round fills the old one
        changed = [(topic, doc) for topic, doc in docs.items() if published.get(topic) != doc]
        sent = await asyncio.gather(*(self._bus.try_publish(topic, doc, retain=True) for topic, doc in changed))
        for (topic, doc), ok in zip(changed, sent):
            if ok:
                published[topic] = doc
