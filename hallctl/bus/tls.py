"""TLS for hallctl's MQTT connections: the files a client needs, and the SSL context made of them.

A client verifies the broker's certificate against the hall's CA (``tls_ca``) and the broker's
host name (or IP address) against the certificate's subjectAltName; a client certificate
(``tls_cert``, ``tls_key``) is only for a broker that asks for one. No aiomqtt here: the config
reader checks the files with :meth:`TlsSettings.context` at load.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MQTT_TLS_PORT", "TlsSettings"]

#: MQTT over TLS's port (IANA), the default when a config turns TLS on and names no port
MQTT_TLS_PORT = 8883


@dataclass(frozen=True)
class TlsSettings:
    #: the CA that signed the broker's certificate (PEM)
    ca: Path
    #: this client's certificate (PEM), for a broker that requires one
    cert: Path | None = None
    #: its private key; None: the key is in ``cert``
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2 or later, the broker's certificate and host name checked.
        Reads the files: raises OSError or :class:`ssl.SSLError` when they are missing or wrong."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None:
            ctx.load_cert_chain(str(self.cert), str(self.key) if self.key is not None else None)
        return ctx
