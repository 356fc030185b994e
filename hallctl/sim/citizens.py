"""Simulated citizens at the kiosk: they take their tickets by touching the kiosk's page (its
HTTP API, exactly what the page's JavaScript sends), so the demo runs the kiosk's whole path:
the page, central's print-confirmed issuance, the ESC/POS printer (emulated) and back.
Synthetic phone numbers only."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Callable

import aiohttp

from hallctl.sim.traffic import TrafficStats, synthetic_phone

#: screens on which the kiosk cannot issue now: the citizen comes back a little later
_BLOCKED = ("unavailable", "out_of_service", "closed")


class KioskCitizens:
    """Citizens arriving at random (Poisson) times, one at the kiosk at a time."""

    def __init__(self, url: str, rate: float, rng: random.Random, stats: TrafficStats,
                 on_ticket: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.url, self.rate, self.rng, self.stats, self.on_ticket = url, rate, rng, stats, on_ticket

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            while True:
                await asyncio.sleep(self.rng.expovariate(self.rate))
                try:
                    await self._take_ticket(http)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.stats.errors.append(f"kiosk page: {type(exc).__name__}")

    async def _press(self, http: aiohttp.ClientSession, **action: Any) -> dict[str, Any]:
        async with http.post(self.url + "api/press", data=json.dumps(action)) as r:
            r.raise_for_status()
            return await r.json()

    async def _take_ticket(self, http: aiohttp.ClientSession) -> None:
        view = await self._press(http, do="home")
        if view["screen"] in _BLOCKED:
            self.stats.errors.append(f"kiosk: {view['screen']}")
            return
        queue = self.rng.choice(view["queues"])
        view = await self._press(http, do="queue", id=queue["id"])
        if view["screen"] == "matters":
            matters = view["matters"] + [{"id": None}]  # or the whole section
            choice = self.rng.choice(matters)["id"]
            view = await self._press(http, do="matter", **({"id": choice} if choice else {}))
        if self.rng.random() < 0.7:
            for d in synthetic_phone(self.rng):
                await self._press(http, do="digit", d=d)
            view = await self._press(http, do="phone_ok")
        else:
            view = await self._press(http, do="no_sms")
        view = await self._press(http, do="confirm")
        async with asyncio.timeout(25):
            while view["screen"] == "issuing":
                await asyncio.sleep(0.05)
                async with http.get(self.url + "api/view") as r:
                    view = await r.json()
        if view["screen"] == "done":
            self.stats.issued.append(view["result"])
            if self.on_ticket:
                self.on_ticket(view["result"])
        else:
            self.stats.errors.append(f"kiosk: {view['screen']} {view.get('message')}")
        await self._press(http, do="home")  # the citizen walks away; the next one starts afresh
