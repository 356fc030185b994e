"""Client side of the request/response envelope: send a request, await its response.

Used by the demo's kiosk and clerks, by the tests, and by ``hallctl diag`` to come. A request that
gets no answer is sent again with the same ``request_id`` (the receiver executes it once and
answers every copy), so a lost response never turns into a second ticket.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from hallctl.bus import messages
from hallctl.bus.client import Bus, BusUnavailable, Incoming
from hallctl.errors import DeviceTimeout


class Requester:
    """Correlates responses by request_id. Feed it every message from the response topics."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.bus: Bus | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        # dots, not dashes, between the numbers: "kiosk-15454-539505-1" reads as a phone number
        # (154 5453 9505, dashes allowed between digits) and would be masked wherever it is echoed
        self._prefix = f"{client_id}.{os.getpid()}.{os.urandom(3).hex()}"

    def new_id(self) -> str:
        return f"{self._prefix}.{next(self._ids)}"

    async def on_message(self, incoming: Incoming) -> bool:
        """Resolve the waiting call; True if the message was a response we were waiting for."""
        try:
            doc = messages.decode_object(incoming.payload)
        except Exception:  # noqa: BLE001 - not ours to judge
            return False
        fut = self._pending.get(str(doc.get("request_id")))
        if fut is not None and not fut.done():
            fut.set_result(doc)
            return True
        return False

    async def call(
        self,
        topic: str,
        data: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
    ) -> dict[str, Any]:
        """Publish a request and return the response document (``status`` ok or error)."""
        assert self.bus is not None, "attach a Bus first"
        rid = request_id or self.new_id()
        # after this the caller has given up (and told the citizen): the receiver must not run it
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=timeout * attempts + 2)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            for _ in range(attempts):
                try:
                    await self.bus.publish(topic, messages.request(rid, data, expires_at=expires_at), qos=1)
                except BusUnavailable:
                    await asyncio.sleep(min(timeout, 0.5))
                    continue
                try:
                    async with asyncio.timeout(timeout):
                        return await asyncio.shield(fut)
                except TimeoutError:
                    continue
            raise DeviceTimeout(f"no response to {topic} (request {rid}) after {attempts} attempts")
        finally:
            self._pending.pop(rid, None)
