"""A one-off connection attempt, for ``hallctl doctor``: does the broker take these credentials?"""

from __future__ import annotations

import asyncio
import os

import aiomqtt


async def probe_broker(host: str, port: int, *, username: str | None = None, password: str | None = None,
                       timeout: float = 5.0) -> str | None:
    """None when the broker accepts a clean-session connection; otherwise what went wrong, in
    words a technician can act on."""
    client = aiomqtt.Client(host, port, identifier=f"doctor-{os.getpid()}-{os.urandom(2).hex()}",
                            username=username, password=password, clean_session=True, timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            async with client:
                return None
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except aiomqtt.MqttCodeError as exc:
        rc = getattr(exc, "rc", None)
        code = getattr(rc, "value", rc)
        if code in (4, 5, 134, 135):
            return f"the broker refused the credentials (user {username or '(anonymous)'}): {exc}"
        return f"the broker refused the connection: {exc}"
    except aiomqtt.MqttError as exc:
        return f"cannot connect to {host}:{port}: {exc}"
