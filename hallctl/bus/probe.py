"""A one-off connection attempt, for ``hallctl doctor``: does the broker take these credentials?"""

from __future__ import annotations

import asyncio
import os
import ssl

import aiomqtt

from hallctl.bus.tls import TlsSettings

#: what a TLS handshake with a plain listener ends in (it reads the ClientHello as MQTT and hangs up)
_NOT_TLS = ("WRONG_VERSION_NUMBER", "Connection reset", "EOF occurred", "UNEXPECTED_EOF")


async def probe_broker(host: str, port: int, *, username: str | None = None, password: str | None = None,
                       timeout: float = 5.0, tls: TlsSettings | None = None) -> str | None:
    """None when the broker accepts a clean-session connection; otherwise what went wrong, in
    words a technician can act on. ``tls``: connect over TLS, checking the broker's certificate."""
    try:
        context = tls.context() if tls is not None else None
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the TLS files (CA {tls.ca}): {getattr(exc, 'strerror', None) or exc}"
    client = aiomqtt.Client(host, port, identifier=f"doctor-{os.getpid()}-{os.urandom(2).hex()}",
                            username=username, password=password, clean_session=True, timeout=timeout,
                            tls_context=context)
    try:
        async with asyncio.timeout(timeout):
            async with client:
                return None
    except TimeoutError:
        if tls is None:
            return f"no answer from {host}:{port} within {timeout:g} s"
        return (f"no answer from {host}:{port} within {timeout:g} s (over TLS: is {port} the broker's TLS "
                "listener? a plain listener never answers a TLS handshake)")
    except aiomqtt.MqttCodeError as exc:
        rc = getattr(exc, "rc", None)
        code = getattr(rc, "value", rc)
        if code in (4, 5, 134, 135):
            return f"the broker refused the credentials (user {username or '(anonymous)'}): {exc}"
        return f"the broker refused the connection: {exc}"
    except aiomqtt.MqttError as exc:
        text = str(exc)
        if tls is not None and "CERTIFICATE_VERIFY_FAILED" in text:
            return (f"the broker's certificate does not verify against {tls.ca} (signed by another CA, "
                    f"or not made for the host name {host}): {text}")
        if tls is not None and any(sign in text for sign in _NOT_TLS):
            return (f"{host}:{port} broke off the TLS handshake: is it a plain MQTT listener? (the broker's "
                    f"TLS listener is usually 8883): {text}")
        return f"cannot connect to {host}:{port}: {text}"
