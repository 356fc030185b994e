"""Simulated people for the demo: a kiosk where citizens take tickets, clerks who call and serve.

They talk to central only over MQTT requests, exactly as a real kiosk node and a real window
keypad will, so the demo exercises the whole contract. Synthetic phone numbers only.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hallctl.bus.requests import Requester
from hallctl.bus.topics import Topics
from hallctl.errors import HallctlError


@dataclass
class TrafficStats:
    issued: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (window, ticket)
    completed: int = 0
    errors: list[str] = field(default_factory=list)


def synthetic_phone(rng: random.Random) -> str:
    """A synthetic mainland mobile number (never a real person's: drawn at random in the demo)."""
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


class Kiosk:
    """Issues tickets at random (Poisson) times."""

    def __init__(self, requester: Requester, topics: Topics, queues: Sequence[str], rate: float,
                 rng: random.Random, stats: TrafficStats, on_issue: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.requester, self.topics, self.queues = requester, topics, list(queues)
        self.rate, self.rng, self.stats, self.on_issue = rate, rng, stats, on_issue

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(self.rate))
            data: dict[str, Any] = {"queue": self.rng.choice(self.queues), "channel": "kiosk"}
            if self.rng.random() < 0.7:
                data["phone"] = synthetic_phone(self.rng)
            try:
                res = await self.requester.call(self.topics.central_req(self.requester.client_id, "ticket.issue"), data)
            except HallctlError as exc:  # broker away: the citizen tries again later
                self.stats.errors.append(f"ticket.issue: {exc.code}")
                continue
            if res.get("status") == "ok":
                self.stats.issued.append(res["data"])
                if self.on_issue:
                    self.on_issue(res["data"])
            else:
                self.stats.errors.append(str(res.get("error")))


class Clerk:
    """One window's clerk: call the next ticket, serve it for a random time, complete, repeat."""

    def __init__(self, window: str, requester: Requester, topics: Topics, service_s: float,
                 rng: random.Random, stats: TrafficStats, on_call: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.window, self.requester, self.topics = window, requester, topics
        self.service_s, self.rng, self.stats, self.on_call = service_s, rng, stats, on_call

    async def _do(self, action: str) -> dict[str, Any]:
        try:
            res = await self.requester.call(self.topics.central_req(self.requester.client_id, action),
                                            {"window": self.window})
        except HallctlError as exc:
            self.stats.errors.append(f"{action} at {self.window}: {exc.code}")
            await asyncio.sleep(1.0)
            return {}
        if res.get("status") != "ok":
            self.stats.errors.append(f"{action} at {self.window}: {res.get('error')}")
            return {}
        return res.get("data") or {}

    async def run(self) -> None:
        # the clerk signs in with a (synthetic) staff number: windows start the day closed
        res = await self.requester.call(self.topics.central_req(self.requester.client_id, "window.open"),
                                        {"window": self.window, "clerk": f"s{1000 + int(self.window)}"})
        if res.get("status") != "ok":
            self.stats.errors.append(f"window.open at {self.window}: {res.get('error')}")
        while True:
            data = await self._do("window.call_next")
            ticket = data.get("ticket")
            if not ticket:
                await asyncio.sleep(0.5)
                continue
            self.stats.calls.append((self.window, ticket))
            if self.on_call:
                self.on_call(self.window, ticket)
            await asyncio.sleep(min(2.0, self.rng.uniform(0.5, 1.5)))  # the citizen walks over
            await self._do("window.start")
            await asyncio.sleep(self.rng.expovariate(1.0 / self.service_s))
            await self._do("window.complete")
            self.stats.completed += 1


class WindowStates:
    """The retained ``window/<id>/state`` documents as any subscriber sees them (the demo's
    keypad clerks read their window's state from the bus, as the clerk reads the keypad)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()

    async def on_state(self, window: str, doc: dict[str, Any]) -> None:
        async with self._changed:
            self.states[window] = doc
            self._changed.notify_all()

    async def wait(self, window: str, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The window's state once ``pred`` holds for it, or None after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: pred(self.states.get(window) or {}))
                    return self.states[window]
        except TimeoutError:
            return None


class KeypadClerk(Clerk):
    """A clerk who works the window's keypad (QSystem's four keys: 1 call next, 2 start, 4
    complete): each press goes through the node's keypad app to central, as in a real hall. The
    clerk signs in with a request (at the window's PC) and reads the window's state on the bus."""

    def __init__(self, window: str, requester: Requester, topics: Topics, service_s: float,
                 rng: random.Random, stats: TrafficStats, press: Callable[[str], Any], states: WindowStates,
                 on_call: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        super().__init__(window, requester, topics, service_s, rng, stats, on_call)
        self.press, self.states = press, states

    def _ticket(self, status: str) -> Callable[[dict[str, Any]], bool]:
        return lambda s: (s.get("ticket") or {}).get("status") == status

    async def run(self) -> None:
        res = await self.requester.call(self.topics.central_req(self.requester.client_id, "window.open"),
                                        {"window": self.window, "clerk": f"s{1000 + int(self.window)}"})
        if res.get("status") != "ok":
            self.stats.errors.append(f"window.open at {self.window}: {res.get('error')}")
        while True:
            self.press("1")  # call next
            state = await self.states.wait(self.window, self._ticket("called"), timeout=2.0)
            if state is None:  # nobody waiting (the keypad shows ---): try again shortly
                await asyncio.sleep(1.0)
                continue
            ticket = state["ticket"]
            self.stats.calls.append((self.window, ticket))
            if self.on_call:
                self.on_call(self.window, ticket)
            # the citizen hears the call (chime and sentence, ~4 s) and walks over
            await asyncio.sleep(self.rng.uniform(4.0, 6.0))
            self.press("2")  # start
            if await self.states.wait(self.window, self._ticket("serving"), timeout=5.0) is None:
                self.stats.errors.append(f"start at {self.window}: the keypad's press was not taken")
                continue
            await asyncio.sleep(self.rng.expovariate(1.0 / self.service_s))
            self.press("4")  # complete (key 4 while serving)
            if await self.states.wait(self.window, lambda s: not s.get("ticket"), timeout=5.0) is None:
                self.stats.errors.append(f"complete at {self.window}: the keypad's press was not taken")
                continue
            self.stats.completed += 1
