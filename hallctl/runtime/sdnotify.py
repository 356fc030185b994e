"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without a dependency.

The protocol is one datagram per message on the AF_UNIX socket named by ``NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace), newline-separated ``KEY=value`` lines
(sd_notify(3)). When ``NOTIFY_SOCKET`` is unset (tests, a terminal, another init) every method
is a no-op, so callers never need to ask whether systemd is there.

Example::

    notifier = Notifier()
    ...  # connect to MQTT, start every device
    notifier.ready("3 devices, broker connected")
    tg.create_task(notifier.run_watchdog(lambda: bus.connected))
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Callable, Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends readiness, status and watchdog pings to systemd.

    ``environ`` defaults to :data:`os.environ`; pass a dict in tests.
    Sending never raises: a lost notification must not take the daemon down (systemd's watchdog
    will notice if pings really stop).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET") or None
        if raw is not None and raw.startswith("@"):
            raw = "\0" + raw[1:]  # abstract namespace: leading NUL instead of '@'
        self._address: str | None = raw
        self._watchdog_usec = _watchdog_usec(env)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when ``NOTIFY_SOCKET`` is set."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), with an optional status line."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self._send("\n".join(lines))

    def status(self, text: str) -> bool:
        """Set the one-line status ``systemctl status`` shows."""
        return self._send(f"STATUS={_one_line(text)}")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun (``STOPPING=1``)."""
        return self._send("STOPPING=1")

    def watchdog(self) -> bool:
        """One watchdog keep-alive (``WATCHDOG=1``)."""
        return self._send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is set
        for this process."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    async def run_watchdog(self, is_healthy: Callable[[], bool]) -> None:
        """Ping the watchdog every :meth:`watchdog_interval` while ``is_healthy()`` is true.

        While unhealthy the pings stop, so systemd restarts the service once ``WatchdogSec``
        runs out. Returns at once when no watchdog is configured; otherwise runs until cancelled.
        """
        interval = self.watchdog_interval()
        if interval is None or not self.enabled:
            return
        withheld = False
        while True:
            try:
                healthy = bool(is_healthy())
            except Exception:
                log.exception("health check raised; treating the daemon as unhealthy")
                healthy = False
            if healthy:
                if withheld:
                    log.info("daemon healthy again; watchdog pings resumed")
                    withheld = False
                self.watchdog()
            elif not withheld:
                log.warning("daemon unhealthy; withholding watchdog pings so systemd restarts it")
                withheld = True
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close the socket. Idempotent; a later send reopens it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, message: str) -> bool:
        if self._address is None:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)  # never stall the event loop on a full receiver
                self._sock = sock
            self._sock.sendto(message.encode("utf-8"), self._address)
            return True
        except OSError as exc:
            log.debug("sd_notify %r to %r failed: %s", message.split("\n", 1)[0], self._address, exc)
            return False


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` as an int when it applies to this process (``WATCHDOG_PID`` matches)."""
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment in the datagram.
    return " ".join(str(text).splitlines())
